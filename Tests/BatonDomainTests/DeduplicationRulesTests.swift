import BatonDomain
import BatonProtocol
import Foundation
import Testing

@Suite("Deduplication rules (pure)")
struct DeduplicationRulesTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let lease = Duration.seconds(300)
    func request(_ run: String, task: String = "t", skipFailure: Bool = false) -> DeduplicationClaimRequest {
        DeduplicationClaimRequest(scopedKey: "proj:o/p:k", runId: run, taskId: task, skipFailure: skipFailure)
    }
    func record(_ run: String, _ status: DeduplicationRecord.Status, claimedSecondsAgo: Double = 1) -> DeduplicationRecord {
        DeduplicationRecord(runId: run, taskId: "t", status: status, output: status == .completed ? "out" : nil,
                            error: status == .failed ? "boom" : nil,
                            claimedAt: now.addingTimeInterval(-claimedSecondsAgo), updatedAt: now)
    }

    @Test("claims: first takes; completed answers; failed is taken unless skipped; running is busy unless holder or lapsed")
    func claims() {
        let first = DeduplicationRules.claim(request("r1"), existing: nil, now: now, lease: lease)
        #expect(first.answer.outcome == .execute && first.write?.runId == "r1" && first.write?.status == .running && first.write?.claimedAt == now)

        let completed = DeduplicationRules.claim(request("r2"), existing: record("r1", .completed), now: now, lease: lease)
        #expect(completed.answer == DeduplicationClaim(outcome: .completed, output: "out") && completed.write == nil)

        #expect(DeduplicationRules.claim(request("r2"), existing: record("r1", .failed), now: now, lease: lease).answer.outcome == .execute)
        let skipped = DeduplicationRules.claim(request("r2", skipFailure: true), existing: record("r1", .failed), now: now, lease: lease)
        #expect(skipped.answer == DeduplicationClaim(outcome: .failed, error: "boom") && skipped.write == nil)

        let busy = DeduplicationRules.claim(request("r2"), existing: record("r1", .running), now: now, lease: lease)
        #expect(busy.answer.outcome == .busy && busy.write == nil)
        #expect(DeduplicationRules.claim(request("r1"), existing: record("r1", .running), now: now, lease: lease).answer.outcome == .execute,
                "the holder itself, after a crash")
        #expect(DeduplicationRules.claim(request("r1", task: "other"), existing: record("r1", .running), now: now, lease: lease).answer.outcome == .busy,
                "another task of the same run is not the holder")
        #expect(DeduplicationRules.claim(request("r2"), existing: record("r1", .running, claimedSecondsAgo: 301), now: now, lease: lease).answer.outcome == .execute,
                "a lapsed lease is taken over")
        #expect(DeduplicationRules.claim(request("r2"), existing: record("r1", .running, claimedSecondsAgo: 299), now: now, lease: lease).answer.outcome == .busy)
    }

    @Test("completion keeps the first output; only the holder's failure of a running key counts")
    func endings() {
        #expect(DeduplicationRules.completed(nil, output: "x", now: now) == nil)
        #expect(DeduplicationRules.completed(record("r1", .running), output: "x", now: now)?.output == "x")
        #expect(DeduplicationRules.completed(record("r1", .completed), output: "x", now: now) == nil, "the first output stays")
        #expect(DeduplicationRules.completed(record("r1", .failed), output: "x", now: now)?.status == .completed)

        #expect(DeduplicationRules.failed(record("r1", .running), runId: "r1", taskId: "t", error: "e", now: now)?.status == .failed)
        #expect(DeduplicationRules.failed(record("r2", .running), runId: "r1", taskId: "t", error: "e", now: now) == nil,
                "a former holder's late failure never releases a key taken since")
        #expect(DeduplicationRules.failed(record("r1", .completed), runId: "r1", taskId: "t", error: "e", now: now) == nil)
        #expect(DeduplicationRules.failed(nil, runId: "r1", taskId: "t", error: "e", now: now) == nil)
    }
}
