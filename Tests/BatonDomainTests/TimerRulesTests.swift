import BatonDomain
import Foundation
import Testing

@Suite("Timer rules (pure)")
struct TimerRulesTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("claimable: due, not fired, lease free or ended; claim leases; only the holder fires")
    func rules() {
        let due = TimerRecord(runId: "r", taskId: "t", dueAt: now)
        #expect(TimerRules.isClaimable(due, by: "b", now: now))
        #expect(!TimerRules.isClaimable(due, by: "b", now: now.addingTimeInterval(-1)), "not yet due")
        var fired = due
        fired.fired = true
        #expect(!TimerRules.isClaimable(fired, by: "b", now: now))
        let claimed = TimerRules.claimed(due, by: "a", now: now, lease: .seconds(30))
        #expect(claimed.leaseOwner == "a" && claimed.leaseUntil == now.addingTimeInterval(30))
        #expect(!TimerRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(30)), "held until the lease ends")
        #expect(TimerRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(30.001)))
        #expect(TimerRules.isClaimable(claimed, by: "a", now: now), "its holder retakes it at once (a failed round, a restart)")
        #expect(TimerRules.fired(claimed, by: "a")?.fired == true)
        #expect(TimerRules.fired(claimed, by: "b") == nil, "another instance's timer")
        #expect(TimerRules.fired(due, by: "a") == nil, "never claimed")
    }
}
