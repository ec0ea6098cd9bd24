import Baton
import BatonProtocol
import BatonTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("The dashboard in a real browser (chromium through chromium-driver, driven by selenium) against the live stack",
       .tags(.integration))
struct DashboardTests {
    @Test("after the seeds' flows: the run page shows the task tree nested, the version, logs and output; runs filter by status; cancel from the page cancels; another tenant's key sees nothing")
    func browser() async throws {
        let keys = try TestKeys(directory: FileManager.default.temporaryDirectory.appendingPathComponent("baton-keys"))
        let stack = try await BatonStack.start(label: "dashboard", environment: ["AUTH_KEYS_FILE": keys.file.path])
        try await stack.startExampleJobs(waitSeconds: 0.3, environment: ["BATON_PROJECT": "alpha", "BATON_ENVIRONMENT": "prod", "BATON_API_KEY": keys.alphaProd],
                                         jobs: ["new-user-welcome", "github-stars", "many-steps", "parallel", "batch-import", "fulfil-order", "charge-card", "pack-item"])
        let dashboard = try await stack.startDashboard()
        func send(_ name: String, _ payload: String, extra: String = "") async throws -> String {
            let id = "evt_dash_\(UUID().uuidString.prefix(8).lowercased())"
            let answer = try await stack.sendEvent(#"{"id":"\#(id)","name":"\#(name)","payload":\#(payload)\#(extra)}"#, apiKey: keys.alphaProd)
            try #require(answer.status == 202, "\(answer)")
            return id
        }
        let welcomeRun = Identifiers.runID(eventID: try await send("user.created", #"{"id":"u1","email":"ada@example.org","name":"Ada"}"#), jobSlug: "new-user-welcome")
        let starsRun = Identifiers.runID(eventID: try await send("github.star", #"{"starredBy":"ada","repoName":"baton","waitSeconds":0.05}"#), jobSlug: "github-stars")
        let stepsRun = Identifiers.runID(eventID: try await send("steps.start", #"{"steps":2}"#), jobSlug: "many-steps")
        let parallelRun = Identifiers.runID(eventID: try await send("parallel.start", #"{"waitA":0.4,"waitB":0.6}"#), jobSlug: "parallel")
        let waitingRun = Identifiers.runID(eventID: try await send("github.star", #"{"starredBy":"bob","repoName":"baton","waitSeconds":600}"#), jobSlug: "github-stars")
        let delayedEvent = try await send("user.created", #"{"id":"u2","email":"later@example.org","name":"Later"}"#, extra: #","deliverAfter":3600"#)
        let importRun = Identifiers.runID(eventID: try await send("import.requested", #"{"batches":2}"#), jobSlug: "batch-import")
        let orderRun = Identifiers.runID(eventID: try await send("order.placed", #"{"orderId":"D","cents":100,"skus":["a"]}"#), jobSlug: "fulfil-order")
        // A job registered disabled (over HTTP, as non-Swift tooling does).
        let disabled = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/paused-sync", method: .PUT,
                                               body: #"{"name":"Paused sync","version":"1.0.0","trigger":{"type":"event","eventName":"sync.requested"},"enabled":false,"concurrencyLimit":{"limit":2,"key":"account"},"flowControl":{"kind":"throttle","limit":5,"periodSeconds":60}}"#,
                                               apiKey: keys.alphaProd)
        #expect(disabled.status == 200, "\(disabled.body)")
        _ = try await eventually("the dispatcher to hold the disabled job", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/paused-sync", apiKey: keys.alphaProd).status == 200 ? true : nil
        }
        for run in [welcomeRun, starsRun, stepsRun, parallelRun, importRun, orderRun] {
            #expect(try await stack.finishedRun(run, apiKey: keys.alphaProd).status == .completed)
        }
        _ = try await eventually("the run to cancel to wait", deadline: .seconds(60)) {
            try await stack.run(waitingRun, apiKey: keys.alphaProd)?.status == .waiting ? true : nil
        }

        // A run of about 15 s (ten 1.5-s waits) that is still running when the browser opens it.
        let liveRun = Identifiers.runID(eventID: try await send("github.star", #"{"starredBy":"cy","repoName":"baton","waitSeconds":1.5}"#), jobSlug: "github-stars")
        let screenshots = TestEnvironment.repositoryRoot.appendingPathComponent(".artifacts/screenshots/dashboard")
        let arguments: [String: any Sendable] = [
            "url": "http://127.0.0.1:\(dashboard.port)", "chromium": "/usr/bin/chromium", "chromedriver": "/usr/bin/chromedriver",
            "screenshots": screenshots.path, "alphaKey": keys.alphaProd, "betaKey": keys.betaProd,
            "starsRun": starsRun, "parallelRun": parallelRun, "welcomeRun": welcomeRun, "waitingRun": waitingRun, "liveRun": liveRun, "delayedEvent": delayedEvent,
            "importRun": importRun, "orderRun": orderRun, "disabledJob": "paused-sync",
            "jobs": ["new-user-welcome", "github-stars", "many-steps", "paused-sync"],
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let tools = ProcessInfo.processInfo.environment["BATON_DEPLOY_TOOLS"]
            ?? TestEnvironment.repositoryRoot.appendingPathComponent(".local/deploy-tools").path
        let (status, output) = try await runPython(["Tests/Browser/dashboard_check.py", json], path: "\(tools)/browser", deadline: .seconds(180))
        #expect(status == 0, "the browser checks failed:\n\(output)\n\(stack.allOutput())")
        print(output)

        // From outside, through the APIs: what the clicks did.
        let runs = RunsClient(baseURL: "http://127.0.0.1:\(stack.taskResultsPort)", apiKey: keys.alphaProd)
        #expect(try await runs.run(id: waitingRun)?.status == .canceled, "canceled from the page")
        let event = try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(delayedEvent)", apiKey: keys.alphaProd)
        #expect(event.body.contains(#""delayedStatus":"CANCELED""#), "the delayed event canceled from the page: \(event)")
        let shots = (try? FileManager.default.contentsOfDirectory(atPath: screenshots.path)) ?? []
        #expect(Set(["jobs.png", "run-github-stars.png", "run-parallel.png", "run-new-user-welcome.png", "run-batch-import.png", "runs-waiting.png", "run-canceled.png", "events.png", "other-tenant.png"])
            .isSubset(of: Set(shots)), "screenshots saved: \(shots)")
        try await stack.stop()
    }
}

/// Runs `python3 arguments` from the repository root with `path` (a folder `deploy/local/setup`
/// installed packages into) as its `PYTHONPATH`, without blocking a thread of the cooperative
/// pool while it runs; returns its exit status and output. Kills it after `deadline`.
func runPython(_ arguments: [String], path: String, deadline: Duration) async throws -> (status: Int32, output: String) {
    let log = try TestEnvironment.temporaryDirectory("python").appendingPathComponent("python.log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    defer { try? handle.close() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    process.currentDirectoryURL = TestEnvironment.repositoryRoot
    process.environment = ProcessInfo.processInfo.environment.merging(["PYTHONPATH": path, "SE_OFFLINE": "true",
                                                                        "PYTHONUNBUFFERED": "1"]) { _, new in new }
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let started = ContinuousClock.now
    while process.isRunning {
        if ContinuousClock.now - started > deadline {
            process.terminate()
            try await Task.sleep(for: .seconds(1))
            break
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
    return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
}
