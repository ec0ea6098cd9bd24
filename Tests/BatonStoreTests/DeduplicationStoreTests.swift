import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Deduplication claims in a real SQLite store")
struct DeduplicationStoreTests {
    func store() throws -> TaskResultStore {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-store-\(UUID().uuidString.prefix(8))")
        return try TaskResultStore(path: directory.appendingPathComponent("task-results.sqlite").path)
    }

    func request(_ run: String, skipFailure: Bool = false) -> DeduplicationClaimRequest {
        DeduplicationClaimRequest(scopedKey: "proj:o/p:k", runId: run, taskId: "t", skipFailure: skipFailure)
    }

    func created(_ run: String) -> RunEvent {
        RunEvent(runId: run, body: .runCreated(.init(jobSlug: "j", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(run)", name: "n"))))
    }

    @Test("of many concurrent claimants exactly one executes; the others are told to wait")
    func race() async throws {
        let store = try store()
        let outcomes = try await withThrowingTaskGroup(of: DeduplicationClaim.Outcome.self) { group in
            for index in 0..<20 { group.addTask { try await store.claim(request("r\(index)")).outcome } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == .execute }.count == 1)
        #expect(outcomes.filter { $0 == .busy }.count == 19)
    }

    @Test("completion hands the output to later claimants; the holder may claim again after a crash")
    func completion() async throws {
        let store = try store()
        #expect(try await store.claim(request("r1")).outcome == .execute)
        #expect(try await store.claim(request("r1")).outcome == .execute)  // same run and task: re-execution after a crash
        try await store.apply(created("r1"))
        try await store.apply(RunEvent(runId: "r1", body: .taskCompleted(.init(taskId: "t", key: "k", parentTaskId: nil, output: "done", deduplicationKey: "proj:o/p:k"))))
        let later = try await store.claim(request("r2"))
        #expect(later.outcome == .completed)
        #expect(later.output == "done")
    }

    @Test("after a final failure the next claimant executes, unless it skips failures")
    func failure() async throws {
        let store = try store()
        #expect(try await store.claim(request("r1")).outcome == .execute)
        try await store.apply(created("r1"))
        // A failure with a retry pending keeps the key held.
        try await store.apply(RunEvent(runId: "r1", body: .taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "e1", attempt: 1,
                                                                       retryAt: Date().addingTimeInterval(60), deduplicationKey: "proj:o/p:k"))))
        #expect(try await store.claim(request("r2")).outcome == .busy)
        try await store.apply(RunEvent(runId: "r1", body: .taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "boom", attempt: 2,
                                                                       deduplicationKey: "proj:o/p:k"))))
        let skipped = try await store.claim(request("r2", skipFailure: true))
        #expect(skipped.outcome == .failed)
        #expect(skipped.error == "boom")
        #expect(try await store.claim(request("r3")).outcome == .execute)
    }

    @Test("a claim whose holder never finished is taken over after the lease")
    func lease() async throws {
        let store = try store()
        let start = Date()
        #expect(try await store.claim(request("r1"), now: start).outcome == .execute)
        #expect(try await store.claim(request("r2"), lease: .seconds(300), now: start.addingTimeInterval(10)).outcome == .busy)
        #expect(try await store.claim(request("r2"), lease: .seconds(300), now: start.addingTimeInterval(301)).outcome == .execute)
    }
}
