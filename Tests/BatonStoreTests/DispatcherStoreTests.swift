import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Events seen by the dispatcher, in a real SQLite store")
struct DispatcherStoreTests {
    func store() throws -> DispatcherStore {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-dispatcher-\(UUID().uuidString.prefix(8))")
        return try DispatcherStore(path: directory.appendingPathComponent("dispatcher.sqlite").path)
    }

    @Test("the first event with an id wins, per tenant; it counts as dispatched once marked")
    func firstSeenWins() throws {
        let store = try store()
        let at = Date(timeIntervalSince1970: 1_790_000_000.125)  // what JSON keeps: milliseconds
        let first = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 1], timestamp: at)
        let resend = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 2], timestamp: at.addingTimeInterval(5))
        #expect(try store.firstSeen(first) == .init(event: first, dispatched: false, arrivedBefore: false))
        #expect(try store.firstSeen(resend) == .init(event: first, dispatched: false, arrivedBefore: true),
                "a resend before the first one's dispatch finished gets the first one, to finish it")
        try store.markEventDispatched(eventID: first.tenant.scoped(first.id))
        var answered = first
        answered.payload = .null  // once dispatched, what a resend is answered with is kept
        #expect(try store.firstSeen(resend) == .init(event: answered, dispatched: true, arrivedBefore: true))
        #expect(try store.seenEvent(eventID: "e1") == .init(event: answered, dispatched: true))
        // Another tenant's event with the same id is another event.
        let other = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 3], timestamp: at, tenant: try Tenant(project: "beta", environment: "prod"))
        #expect(try store.firstSeen(other) == .init(event: other, dispatched: false, arrivedBefore: false))
        #expect(try store.seenEvent(eventID: "unknown") == nil)
    }

    @Test("pruning forgets dispatched events, dispatched pairs and finished delayed events older than the cutoff; nothing pending")
    func prune() throws {
        let store = try store()
        let old = Date(timeIntervalSince1970: 1_790_000_000)
        let event = EventEnvelope(id: "old", name: "n", timestamp: old)
        _ = try store.firstSeen(event, at: old)
        try store.markEventDispatched(eventID: "old", at: old)
        try store.markDispatched(eventID: "old", jobSlug: "j", runID: "r")  // now: kept
        let pending = EventEnvelope(id: "later", name: "n", deliverAt: Date().addingTimeInterval(3600))
        _ = try store.firstSeen(pending, at: old)
        try store.hold(pending)
        #expect(try store.prune(before: old.addingTimeInterval(1)) == 1)
        #expect(try store.seenEvent(eventID: "old") == nil, "a resend of a forgotten id is a new event")
        #expect(try store.wasDispatched(eventID: "old", jobSlug: "j"))
        #expect(try store.seenEvent(eventID: "later") != nil, "not dispatched yet: kept")
        #expect(try store.delayedStatus(eventID: "later") == .pending)
        #expect(try store.prune(before: Date().addingTimeInterval(60)) == 1, "the dispatched pair")
        #expect(try store.delayedStatus(eventID: "later") == .pending)
    }

    @Test("a batch's effects and offsets commit together; committing the same batch again changes nothing")
    func batchCommit() async throws {
        let store = try store()
        let at = Date(timeIntervalSince1970: 1_790_000_000)
        let event = EventEnvelope(id: "b1", name: "user.created", payload: ["n": 1], timestamp: at)
        let later = EventEnvelope(id: "b2", name: "user.created", timestamp: at, deliverAt: Date().addingTimeInterval(3600))
        var effects = DispatcherStore.BatchEffects()
        effects.firstSeen = [event, later]
        effects.held = [later]
        effects.runsStarted = [(eventID: "b1", jobSlug: "welcome", runID: "run_b1")]
        effects.eventsDispatched = [event.tenant.scoped("b1")]
        effects.consumed = [SourceOffset(topic: "baton.events", partition: 0, offset: 41),
                            SourceOffset(topic: "baton.events", partition: 0, offset: 42),
                            SourceOffset(topic: "baton.events", partition: 2, offset: 7)]
        #expect(try store.consumedOffsets(topic: "baton.events").isEmpty)
        try await store.commit(effects)
        #expect(try store.consumedOffsets(topic: "baton.events") == [0: 43, 2: 8], "one past the highest offset of each partition")
        #expect(try store.wasDispatched(eventID: "b1", jobSlug: "welcome"))
        #expect(try store.seenEvent(eventID: "b1")?.dispatched == true)
        #expect(try store.seenEvent(eventID: "b2")?.dispatched == false)
        #expect(try store.delayedStatus(eventID: "b2") == .pending)

        // Redelivered after a crash before the consumer moved on: nothing changes, offsets never go back.
        var older = effects
        older.consumed = [SourceOffset(topic: "baton.events", partition: 0, offset: 41)]
        try await store.commit(older)
        #expect(try store.consumedOffsets(topic: "baton.events") == [0: 43, 2: 8])
        #expect(try store.seenEvent(eventID: "b1")?.event.payload == .null, "dispatched: its payload is not kept")
        #expect(try await store.claimDueDelayed(owner: "test", now: Date().addingTimeInterval(7200), lease: .seconds(60)).map(\.id) == ["b2"])
    }
}
