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
}
