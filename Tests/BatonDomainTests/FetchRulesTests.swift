import BatonDomain
import Foundation
import Testing

@Suite("Fetch rules (pure)")
struct FetchRulesTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("claimable: due, not done, run not ended, lease free or ended; only the holder reschedules or completes")
    func rules() {
        let due = FetchRecord(runId: "r", taskId: "f", attempts: 0, nextAttemptAt: now)
        #expect(FetchRules.isClaimable(due, by: "b", now: now))
        #expect(!FetchRules.isClaimable(due, by: "b", now: now.addingTimeInterval(-1)))
        var ended = due
        ended.runEnded = true
        #expect(!FetchRules.isClaimable(ended, by: "b", now: now), "a fetch of an ended run is never performed")
        let claimed = FetchRules.claimed(due, by: "a", now: now, lease: .seconds(60))
        #expect(!FetchRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(60)))
        #expect(FetchRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(60.001)))
        #expect(FetchRules.isClaimable(claimed, by: "a", now: now), "its holder retakes it at once")
        let retried = FetchRules.rescheduled(claimed, by: "a", next: now.addingTimeInterval(5))
        #expect(retried?.attempts == 1 && retried?.leaseOwner == nil && retried?.nextAttemptAt == now.addingTimeInterval(5))
        #expect(FetchRules.rescheduled(claimed, by: "b", next: now) == nil)
        #expect(FetchRules.completed(claimed, by: "a", attempts: 3)?.done == true)
        #expect(FetchRules.completed(claimed, by: "b", attempts: 3) == nil)
        #expect(FetchRules.completed(due, by: "a", attempts: 1) == nil, "never claimed")
    }
}
