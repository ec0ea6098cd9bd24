import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Event-wait store conformance: a wait and its event committed at once by two instances always meet, on SQLite and PostgreSQL", .serialized)
struct EventWaitConformanceTests {
    func registration(_ run: String, expense: String, since: Date) throws -> EventWaitRecord {
        EventWaitRecord(tenant: .default, request: EventWaitRequest(runId: run, taskId: "t", name: "approved",
                                                                    filter: try EventFilter(["id": [.string(expense)]]),
                                                                    since: since, timeoutAt: since.addingTimeInterval(60)))
    }

    func approval(_ expense: String) -> EventEnvelope {
        EventEnvelope(id: "evt-\(expense)-\(UUID().uuidString.prefix(6))", name: "approved", payload: ["id": .string(expense)])
    }

    @Test("60 rounds: one instance registers a wait while the other receives its event, at the same moment; every wait gets its event exactly once", arguments: StoreBackend.allCases)
    func race(_ backend: StoreBackend) async throws {
        try await withTwoDispatcherStores(backend) { (first: any DispatcherBackend, second: any DispatcherBackend) async throws in
            var delivered: [String: Int] = [:]
            for round in 0..<60 {
                let since = Date()
                var waits = DispatchBatch()
                waits.waitsRegistered = [try registration("run-\(round)", expense: "e\(round)", since: since)]
                var events = DispatchBatch()
                events.waitableEvents = [approval("e\(round)")]
                // Alternate which instance takes which part.
                let (a, b) = round.isMultiple(of: 2) ? (first, second) : (second, first)
                async let registered = a.commit(waits, at: Date())
                async let received = b.commit(events, at: Date())
                for match in try await registered + received { delivered[match.runId, default: 0] += 1 }
            }
            #expect(delivered.count == 60, "every wait got its event: \(60 - delivered.count) missed")
            #expect(delivered.values.allSatisfy { $0 == 1 }, "none twice: \(delivered.filter { $0.value > 1 })")
        }
    }

    @Test("several waits for one event each get it once; a resent registration matches nothing new; undelivered matches are listed until marked delivered", arguments: StoreBackend.allCases)
    func fanOutAndDelivery(_ backend: StoreBackend) async throws {
        try await withDispatcherStore(backend) { (store: any DispatcherBackend) async throws in
            let since = Date()
            var waits = DispatchBatch()
            waits.waitsRegistered = try (0..<3).map { try registration("run-\($0)", expense: "shared", since: since) }
            #expect(try await store.commit(waits, at: Date()).isEmpty)
            var events = DispatchBatch()
            events.waitableEvents = [approval("shared"), approval("shared")]
            let matches = try await store.commit(events, at: Date())
            #expect(Set(matches.map(\.runId)) == ["run-0", "run-1", "run-2"] && matches.count == 3)
            #expect(try await store.commit(waits, at: Date()).isEmpty, "a resent registration is not new: it scans nothing")
            let undelivered = try await store.undeliveredWaitMatches(before: Date().addingTimeInterval(1), limit: 10)
            #expect(Set(undelivered.map(\.id)) == Set(matches.map(\.id)))
            try await store.markWaitMatchesDelivered(ids: matches.map(\.id), at: Date())
            #expect(try await store.undeliveredWaitMatches(before: Date().addingTimeInterval(1), limit: 10).isEmpty)
            // Old records go: recent events and delivered waits.
            #expect(try await store.pruneEventWaits(receivedBefore: Date().addingTimeInterval(1), endedBefore: Date().addingTimeInterval(1)) == 5)
        }
    }
}
