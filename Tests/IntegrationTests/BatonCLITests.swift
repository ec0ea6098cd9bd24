import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import BatonProtocol
import BatonTesting
import Foundation
import Testing

/// Runs `baton` with `arguments`; returns its exit status and output.
func baton(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = TestEnvironment.executable("baton")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

@Suite("The baton command line", .tags(.integration))
struct BatonCLITests {
    @Test("baton dev brings the stack and a job service up; an event sent with the CLI becomes a run the CLI lists and shows; Ctrl-C (SIGINT) leaves no process behind")
    func devStack() async throws {
        let logs = try TestEnvironment.temporaryDirectory("baton-dev")
        let dev = try ChildProcess(name: "baton-dev", executable: TestEnvironment.executable("baton"),
                                   arguments: ["dev", "--job-service", TestEnvironment.executable("baton-example-jobs").path],
                                   environment: ["EXAMPLE_OUTBOX": logs.appendingPathComponent("outbox.txt").path], logDirectory: logs)
        let ready = try await eventually("baton dev to be ready", deadline: .seconds(90)) { () -> String? in
            try dev.requireRunning()
            return dev.output().contains("Ctrl-C stops everything.") ? dev.output() : nil
        }
        func value(after label: String) throws -> String {
            let line = try #require(ready.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) })
            return String(line.trimmingCharacters(in: .whitespaces).dropFirst(label.count).trimmingCharacters(in: .whitespaces))
        }
        let ingester = try #require(try value(after: "ingester").split(separator: " ").first.map(String.init))
        let taskResults = try #require(try value(after: "task results").split(separator: " ").first.map(String.init))
        let dispatcher = try #require(try value(after: "dispatcher").split(separator: " ").first.map(String.init))
        let pids = try value(after: "processes").split(separator: " ").compactMap { $0.split(separator: "=").last.flatMap { Int32($0) } }
        #expect(pids.count == 6, "Tansu, three services, the dashboard and the job service: \(pids)")
        let dashboard = try #require(try value(after: "dashboard").split(separator: " ").first.map(String.init)).replacingOccurrences(of: "/runs", with: "")

        // The job service registers its jobs; then an event through the CLI.
        _ = try await eventually("the jobs to be registered", deadline: .seconds(60)) { () -> Bool? in
            try baton(["jobs", "list", "--dispatcher", dispatcher]).output.contains("many-steps") ? true : nil
        }
        let sent = try baton(["events", "send", "--ingester", ingester, "--name", "steps.start", "--payload", #"{"steps":2}"#])
        #expect(sent.status == 0, "\(sent.output)")
        let eventId = sent.output.trimmingCharacters(in: .whitespacesAndNewlines)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        _ = try await eventually("the run to complete, as the CLI lists it", deadline: .seconds(60)) { () -> Bool? in
            let listed = try baton(["runs", "list", "--task-results", taskResults, "--job", "many-steps", "--status", "COMPLETED"])
            return listed.output.contains(runId) ? true : nil
        }
        // A second run, then every page one run at a time: progress on standard error.
        let second = try baton(["events", "send", "--ingester", ingester, "--name", "steps.start", "--payload", #"{"steps":1}"#])
        let secondRun = Identifiers.runID(eventID: second.output.trimmingCharacters(in: .whitespacesAndNewlines), jobSlug: "many-steps")
        let paged = try await eventually("both runs, listed a page at a time", deadline: .seconds(60)) { () -> String? in
            let listed = try baton(["runs", "list", "--task-results", taskResults, "--job", "many-steps", "--limit", "1", "--all"])
            return listed.output.contains(secondRun) && listed.output.contains(runId) ? listed.output : nil
        }
        #expect(paged.contains("baton: 1 runs in 1 pages so far, reading on…") && paged.contains("baton: 2 runs in 2 pages"), "\(paged)")

        let shown = try baton(["runs", "show", runId, "--task-results", taskResults])
        #expect(shown.status == 0 && shown.output.contains("COMPLETED") && shown.output.contains("many-steps@"), "\(shown.output)")
        #expect(shown.output.contains("└─ "), "the tasks as a tree: \(shown.output)")
        let json = try baton(["runs", "show", runId, "--task-results", taskResults, "--json"])
        #expect(try BatonJSON.decoder.decode(RunDetails.self, from: Data(json.output.utf8)).id == runId)
        #expect(try baton(["runs", "show", "run_nope", "--task-results", taskResults]).status != 0)
        // The same run in the dashboard: its list and its page.
        var page = HTTPClientRequest(url: dashboard + "/runs/" + runId)
        page.method = .GET
        let answer = try await HTTPClient.shared.execute(page, timeout: .seconds(30))
        let html = String(buffer: try await answer.body.collect(upTo: 4 << 20))
        #expect(answer.status == .ok && html.contains(#"data-status="COMPLETED""#) && html.contains("many-steps"), "\(answer.status) \(html.prefix(400))")
        let list = try await HTTPClient.shared.execute(HTTPClientRequest(url: dashboard + "/runs?job=many-steps"), timeout: .seconds(30))
        #expect(String(buffer: try await list.body.collect(upTo: 4 << 20)).contains(#"data-run="\#(runId)""#))

        // Ctrl-C: everything stops, nothing is left behind.
        kill(dev.pid, SIGINT)
        _ = try await eventually("baton dev to exit", deadline: .seconds(60)) { () -> Bool? in dev.isRunning ? nil : true }
        #expect(dev.terminationStatus == 0, "\(dev.output().suffix(2000))")
        #expect(dev.output().contains("baton dev: stopped"))
        for pid in pids {
            _ = try await eventually("process \(pid) to be gone", deadline: .seconds(30)) { () -> Bool? in
                kill(pid, 0) == -1 && errno == ESRCH ? true : nil
            }
        }
    }

    @Test("baton keys creates, lists and revokes keys in the file baton-keys reads and writes; a bad tenant is refused")
    func keys() throws {
        let file = try TestEnvironment.temporaryDirectory("baton-keys").appendingPathComponent("keys.json").path
        let created = try baton(["keys", "create", "--file", file, "--project", "alpha", "--environment", "prod", "--id", "ci"])
        #expect(created.status == 0 && created.output.contains("created ci for alpha/prod"), "\(created.output)")
        let listing = Process()
        listing.executableURL = TestEnvironment.executable("baton-keys")
        listing.arguments = ["list", "--file", file]
        let pipe = Pipe()
        listing.standardOutput = pipe
        try listing.run()
        let listed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        listing.waitUntilExit()
        #expect(listed == "ci\talpha\tprod\n", "baton-keys reads what baton keys wrote: \(listed)")
        #expect(try baton(["keys", "create", "--file", file, "--project", "Not A Slug", "--environment", "prod"]).status != 0)
        #expect(try baton(["keys", "revoke", "--file", file, "--id", "ci"]).status == 0)
        #expect(try baton(["keys", "list", "--file", file]).output.isEmpty)
    }
}
