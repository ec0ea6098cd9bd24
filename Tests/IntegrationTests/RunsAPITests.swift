import Baton
import BatonProtocol
import BatonTesting
import Foundation
import Testing

/// A page of `GET /api/v1/runs`.
struct RunPage: Decodable {
    var runs: [RunDetails]
    var nextCursor: String?
}

@Suite("The runs API over a real broker: filters and cursor paging", .tags(.integration))
struct RunsAPITests {
    @Test("runs listed by job, status and creation time, newest first; paging while runs are being created skips and repeats none")
    func listAndPage() async throws {
        let stack = try await BatonStack.start(label: "runs-api")
        try await stack.startExampleJobs(waitSeconds: 0, jobs: ["many-steps", "new-user-welcome"])
        func page(_ path: String) async throws -> RunPage {
            let (status, body) = try await stack.get(port: stack.taskResultsPort, path)
            try #require(status == 200, "\(path): \(status) \(body)")
            return try BatonJSON.decoder.decode(RunPage.self, from: Data(body.utf8))
        }
        func send(_ name: String, _ payload: String) async throws -> String {
            let id = "evt_runs_api_\(UUID().uuidString.prefix(8))"
            #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"\#(name)","payload":\#(payload)}"#).status == 202)
            return id
        }
        var steps: [String] = []
        for _ in 0..<12 { steps.append(Identifiers.runID(eventID: try await send("steps.start", #"{"steps":1}"#), jobSlug: "many-steps")) }
        var welcomes: [String] = []
        for index in 0..<5 {
            welcomes.append(Identifiers.runID(eventID: try await send("user.created", #"{"id":"u\#(index)","name":"U","email":"u@example.com"}"#),
                                              jobSlug: "new-user-welcome"))
        }
        for run in steps + welcomes { _ = try await stack.finishedRun(run, deadline: .seconds(60)) }

        // Page through many-steps' runs 5 at a time, creating more of them between pages.
        var listed: [String] = []
        var cursor: String?
        var later: [String] = []
        repeat {
            let current = try await page("/api/v1/jobs/many-steps/runs?limit=5" + (cursor.map { "&cursor=\($0)" } ?? ""))
            listed += current.runs.map(\.id)
            #expect(current.runs.allSatisfy { $0.jobId == "many-steps" })
            cursor = current.nextCursor
            later.append(Identifiers.runID(eventID: try await send("steps.start", #"{"steps":1}"#), jobSlug: "many-steps"))
        } while cursor != nil && listed.count < 100
        #expect(listed.count == 12 && Set(listed) == Set(steps), "every run once: \(listed)")
        for run in later { _ = try await stack.finishedRun(run, deadline: .seconds(60)) }
        // The SDK's typed client from here on.
        let client = RunsClient(baseURL: "http://127.0.0.1:\(stack.taskResultsPort)")
        let newest = try await client.list(.init(job: "many-steps", limit: later.count))
        #expect(Set(newest.runs.map(\.id)) == Set(later), "runs created while paging come first")

        let completed = try await client.list(.init(job: "new-user-welcome", statuses: [.completed, .failed]))
        #expect(Set(completed.runs.map(\.id)) == Set(welcomes) && completed.nextCursor == nil)
        #expect(completed.runs.allSatisfy { !$0.jobVersion.isEmpty && $0.status == .completed }, "each run with the version it was created with")
        #expect(try await client.list(.init(createdFrom: Date().addingTimeInterval(3600))).runs.isEmpty)
        let all = try await client.list(.init(limit: 100))
        #expect(all.runs.count == 12 + later.count + 5)
        #expect(zip(all.runs, all.runs.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt.addingTimeInterval(-1) }, "newest first")
        let stats = try await client.stats(jobId: "many-steps")
        #expect(stats.runs == 12 + later.count && stats.runsByStatus == ["COMPLETED": 12 + later.count])
        #expect(stats.versions.map(\.runs) == [12 + later.count] && stats.lastRun?.id == all.runs.first { $0.jobId == "many-steps" }?.id)
        await #expect(throws: BatonClientError.self) { try await client.list(.init(limit: 101)) }
        let refused = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?limit=101")
        #expect(refused.status == 422 && refused.body.contains("\"path\":\"limit\""))
        try await stack.stop()
    }

    @Test("replay starts a new run of the same job version and payload, linked to the first, once per replay id; cancel-runs cancels every run of an event")
    func replayAndCancelRuns() async throws {
        let stack = try await BatonStack.start(label: "replay")
        try await stack.startExampleJobs(waitSeconds: 30, jobs: ["many-steps", "new-user-welcome"])
        let first = "evt_replay_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(first)","name":"steps.start","payload":{"steps":2}}"#).status == 202)
        let original = try await stack.finishedRun(Identifiers.runID(eventID: first, jobSlug: "many-steps"))
        #expect(original.status == .completed)

        let client = RunsClient(baseURL: "http://127.0.0.1:\(stack.taskResultsPort)")
        let replayID = "evt_replayed_\(UUID().uuidString.prefix(8))"
        var replays: [ReplayResponse] = []
        for _ in 0..<2 { replays.append(try await client.replay(runId: original.id, id: replayID)) }  // the same replay id twice: one run
        #expect(replays[0].runId == replays[1].runId && replays[0].replayOf == original.id && replays[0].jobVersion == original.jobVersion)
        let replayed = try await stack.finishedRun(replays[0].runId)
        #expect(replayed.status == .completed && replayed.output == original.output)
        #expect(replayed.replayOf == original.id && replayed.jobVersion == original.jobVersion && replayed.id != original.id)
        #expect(stack.outboxLines().filter { $0.hasPrefix("step \(replayed.id) ") }.count == 2, "each step of the replay ran once")
        #expect(try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/run_nope/replay").status == 404)
        #expect(try await client.run(id: "run_nope") == nil)
        #expect(try await client.run(id: replayed.id)?.replayOf == original.id)

        // A run waiting 30 s, cancelled through its event.
        let waiting = "evt_cancel_runs_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(waiting)","name":"user.created","payload":{"id":"w","name":"W","email":"w@example.com"}}"#).status == 202)
        let run = Identifiers.runID(eventID: waiting, jobSlug: "new-user-welcome")
        _ = try await eventually("the run to wait", deadline: .seconds(60)) { () -> Bool? in try await stack.run(run)?.status == .waiting ? true : nil }
        let canceled = try await client.cancelRuns(eventId: waiting)
        #expect(canceled.runs.map(\.id) == [run] && canceled.runs.allSatisfy { $0.canceled && $0.status == .canceled })
        #expect(try await stack.run(run)?.status == .canceled)
        #expect(try await client.cancelRuns(eventId: waiting).runs.map(\.canceled) == [false], "canceled once")
        #expect(try await client.cancelRuns(eventId: "evt_never_sent").runs.isEmpty)
        #expect(try await client.cancel(runId: run).canceled == false)
        try await stack.stop()
    }
}
