import BatonProtocol
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@Suite("Background fetch over a real broker", .tags(.integration))
struct BackgroundFetchTests {
    @Test("the task-result service performs the request, retries 5xx by the rules, stores the response and resumes the run")
    func backgroundFetch() async throws {
        let flakyCalls = Mutex(0)
        let teapotCalls = Mutex(0)
        let router = Router()
        router.get("/flaky") { _, _ -> Response in
            let call = flakyCalls.withLock { $0 += 1; return $0 }
            if call <= 2 { return Response(status: .serviceUnavailable) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
        }
        router.get("/teapot") { _, _ -> Response in
            teapotCalls.withLock { $0 += 1 }
            return Response(status: .init(code: 418), body: .init(byteBuffer: ByteBuffer(string: "short and stout")))
        }
        let server = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let stack = try await BatonStack.start(label: "fetch")
            try await stack.startExampleJobs()
            func run(_ path: String) async throws -> RunDetails {
                let eventId = "evt_fetch_\(UUID().uuidString.prefix(8))"
                #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"fetch.start","payload":{"url":"http://127.0.0.1:\#(port)\#(path)"}}"#).status == 202)
                let runId = Identifiers.runID(eventID: eventId, jobSlug: "fetch")
                return try await stack.finishedRun(runId, deadline: .seconds(60))
            }
            let ok = try await run("/flaky")
            #expect(ok.status == .completed, "\(ok.error ?? "")")
            #expect(ok.output == #"200 {"ok":true}"#)
            #expect(flakyCalls.withLock { $0 } == 3)
            let task = try #require(ok.tasks.first)
            #expect(task.attempts == 3)
            #expect(task.output?["status"] == 200)
            #expect(task.output?["headers"]?["content-type"] == "application/json")

            let teapot = try await run("/teapot")
            #expect(teapot.output == "418 short and stout")
            #expect(teapotCalls.withLock { $0 } == 1, "no rule for 418: not retried")
            try await stack.stop()
        }
    }

    @Test("canceling a run while its fetch is in flight drops the fetch: no retry, no resume, the run stays CANCELED")
    func cancelDropsFetch() async throws {
        let calls = Mutex(0)
        let released = Mutex(false)
        let router = Router()
        router.get("/hang") { _, _ -> Response in
            calls.withLock { $0 += 1 }
            // Hold the request until the test has canceled the run (bounded), then fail it with a
            // status the job's rules retry every 100 ms.
            for _ in 0..<3_000 where !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
            return Response(status: .serviceUnavailable)
        }
        let server = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let stack = try await BatonStack.start(label: "fetch-cancel")
            try await stack.startExampleJobs()
            let eventId = "evt_fetch_cancel_\(UUID().uuidString.prefix(8))"
            #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"fetch.start","payload":{"url":"http://127.0.0.1:\#(port)/hang"}}"#).status == 202)
            let runId = Identifiers.runID(eventID: eventId, jobSlug: "fetch")
            _ = try await eventually("the fetch to reach the server", deadline: .seconds(30)) { calls.withLock { $0 } == 1 ? true : nil }
            let canceled = try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(runId)/cancel")
            #expect(canceled.status == 200 && canceled.body.contains(#""canceled":true"#), "\(canceled.body)")
            released.withLock { $0 = true }
            // Without the drop, the rules (limit 4, 100 ms apart) call again 4 times within 0.5 s:
            // watch for three times that long.
            let watchEnd = ContinuousClock.now + .milliseconds(1_500)
            while ContinuousClock.now < watchEnd, calls.withLock({ $0 }) == 1 {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(calls.withLock { $0 } == 1, "the canceled run's fetch was retried")
            let run = try #require(try await stack.run(runId))
            #expect(run.status == .canceled)
            #expect(run.tasks.allSatisfy { $0.status != .completed }, "\(run.tasks)")
            try await stack.stop()
        }
    }
}
