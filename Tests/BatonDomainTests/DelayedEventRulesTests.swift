import BatonDomain
import BatonProtocol
import Foundation
import Testing

@Suite("Delayed event rules (pure)")
struct DelayedEventRulesTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("hold, cancel, claim and deliver")
    func rules() {
        let event = EventEnvelope(id: "e", name: "n", deliverAt: now.addingTimeInterval(10))
        let held = DelayedEventRules.held(nil, id: "t/e", event: event, now: now)
        #expect(held?.status == .pending && held?.deliverAt == now.addingTimeInterval(10))
        #expect(DelayedEventRules.held(held, id: "t/e", event: event, now: now) == nil, "a second hold changes nothing")
        let tombstone = DelayedEventRules.canceled(nil, id: "t/e", now: now)
        #expect(tombstone.write?.status == .canceled && tombstone.write?.event == nil && tombstone.canceled)
        let arrived = DelayedEventRules.held(tombstone.write, id: "t/e", event: event, now: now)
        #expect(arrived?.status == .canceled && arrived?.event == event, "canceled first: kept, never delivered")
        #expect(!DelayedEventRules.isClaimable(arrived!, by: "b", now: now.addingTimeInterval(20)))

        #expect(!DelayedEventRules.isClaimable(held!, by: "b", now: now), "not due")
        #expect(DelayedEventRules.isClaimable(held!, by: "b", now: now.addingTimeInterval(10)))
        let claimed = DelayedEventRules.claimed(held!, by: "a", now: now.addingTimeInterval(10), lease: .seconds(30))
        #expect(!DelayedEventRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(40)))
        #expect(DelayedEventRules.isClaimable(claimed, by: "b", now: now.addingTimeInterval(40.001)))
        #expect(DelayedEventRules.delivered(claimed, by: "b", now: now) == nil)
        let delivered = DelayedEventRules.delivered(claimed, by: "a", now: now)
        #expect(delivered?.status == .delivered)
        let late = DelayedEventRules.canceled(delivered, id: "t/e", now: now)
        #expect(late.write == nil && late.status == .delivered && !late.canceled)
    }
}

@Suite("Consumed offset rules (pure)")
struct ConsumedOffsetRulesTests {
    @Test("offsets start anywhere and only move forward")
    func rules() {
        #expect(ConsumedOffsetRules.advanced(nil, to: 7) == 7)
        #expect(ConsumedOffsetRules.advanced(7, to: 9) == 9)
        #expect(ConsumedOffsetRules.advanced(9, to: 9) == nil)
        #expect(ConsumedOffsetRules.advanced(9, to: 3) == nil, "a redelivered batch never rewinds")
    }
}
