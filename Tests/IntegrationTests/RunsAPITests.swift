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
        let newest = try await page("/api/v1/runs?job=many-steps&limit=\(later.count)")
        #expect(Set(newest.runs.map(\.id)) == Set(later), "runs created while paging come first")

        let completed = try await page("/api/v1/runs?status=COMPLETED,FAILED&job=new-user-welcome")
        #expect(Set(completed.runs.map(\.id)) == Set(welcomes) && completed.nextCursor == nil)
        #expect(completed.runs.allSatisfy { !$0.jobVersion.isEmpty && $0.status == .completed }, "each run with the version it was created with")
        let future = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        #expect(try await page("/api/v1/runs?createdFrom=\(future)").runs.isEmpty)
        let all = try await page("/api/v1/runs?limit=100")
        #expect(all.runs.count == 12 + later.count + 5)
        #expect(zip(all.runs, all.runs.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt.addingTimeInterval(-1) }, "newest first")
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

        struct Replay: Decodable { var runId: String; var replayOf: String; var jobVersion: String }
        let replayID = "evt_replayed_\(UUID().uuidString.prefix(8))"
        var replays: [Replay] = []
        for _ in 0..<2 {  // the same replay id twice: one run
            let answer = try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(original.id)/replay", body: #"{"id":"\#(replayID)"}"#)
            #expect(answer.status == 202, "\(answer.body)")
            replays.append(try BatonJSON.decoder.decode(Replay.self, from: Data(answer.body.utf8)))
        }
        #expect(replays[0].runId == replays[1].runId && replays[0].replayOf == original.id && replays[0].jobVersion == original.jobVersion)
        let replayed = try await stack.finishedRun(replays[0].runId)
        #expect(replayed.status == .completed && replayed.output == original.output)
        #expect(replayed.replayOf == original.id && replayed.jobVersion == original.jobVersion && replayed.id != original.id)
        #expect(stack.outboxLines().filter { $0.hasPrefix("step \(replayed.id) ") }.count == 2, "each step of the replay ran once")
        #expect(try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/run_nope/replay").status == 404)

        // A run waiting 30 s, cancelled through its event.
        let waiting = "evt_cancel_runs_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(waiting)","name":"user.created","payload":{"id":"w","name":"W","email":"w@example.com"}}"#).status == 202)
        let run = Identifiers.runID(eventID: waiting, jobSlug: "new-user-welcome")
        _ = try await eventually("the run to wait", deadline: .seconds(60)) { () -> Bool? in try await stack.run(run)?.status == .waiting ? true : nil }
        struct Canceled: Decodable { struct Run: Decodable { var id: String; var status: String; var canceled: Bool }; var eventId: String; var runs: [Run] }
        let canceled = try BatonJSON.decoder.decode(Canceled.self, from: Data(try await stack.post(
            port: stack.taskResultsPort, "/api/v1/events/\(waiting)/cancel-runs").body.utf8))
        #expect(canceled.runs.map(\.id) == [run] && canceled.runs.allSatisfy { $0.canceled && $0.status == "CANCELED" })
        #expect(try await stack.run(run)?.status == .canceled)
        let again = try BatonJSON.decoder.decode(Canceled.self, from: Data(try await stack.post(
            port: stack.taskResultsPort, "/api/v1/events/\(waiting)/cancel-runs").body.utf8))
        #expect(again.runs.map(\.canceled) == [false], "canceled once")
        let none = try BatonJSON.decoder.decode(Canceled.self, from: Data(try await stack.post(
            port: stack.taskResultsPort, "/api/v1/events/evt_never_sent/cancel-runs").body.utf8))
        #expect(none.runs.isEmpty)
        try await stack.stop()
    }
}
