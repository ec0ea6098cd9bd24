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

@Suite("Flow-control store conformance: a limit holds across instances, on SQLite and PostgreSQL", .serialized)
struct FlowControlConformanceTests {
    @Test("two instances deciding 40 events of one key at once start exactly 5 (limit 5 a minute); asking again for an event returns its first decision",
          arguments: StoreBackend.allCases)
    func limitAcrossInstances(_ backend: StoreBackend) async throws {
        try await withTwoDispatcherStores(backend) { (first: any DispatcherBackend, second: any DispatcherBackend) async throws in
            let control = FlowControl.rateLimit(5, per: .seconds(60), key: "user")
            let decisions = try await withThrowingTaskGroup(of: (String, FlowDecision).self) { group in
                for index in 0..<40 {
                    let store = index.isMultiple(of: 2) ? first : second
                    group.addTask { ("e\(index)", try await store.decideFlow(jobSlug: "job", key: "u1", control: control, eventID: "e\(index)", at: Date())) }
                }
                return try await group.reduce(into: [String: FlowDecision]()) { $0[$1.0] = $1.1 }
            }
            #expect(decisions.values.filter { $0 == .start }.count == 5, "\(decisions.values.filter { $0 == .start }.count) started")
            #expect(decisions.values.filter { $0 == .drop }.count == 35)
            let started = try #require(decisions.first { $0.value == .start }?.key)
            #expect(try await second.decideFlow(jobSlug: "job", key: "u1", control: control, eventID: started, at: Date()) == .start, "the first decision stays")
            #expect(try await first.decideFlow(jobSlug: "job", key: "u2", control: control, eventID: "other", at: Date()) == .start, "another key has its own limit")
        }
    }
}
