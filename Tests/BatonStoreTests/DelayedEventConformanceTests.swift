import BatonDomain
import BatonProtocol
import BatonStore
import BatonTesting
import Foundation
import Logging
import Synchronization
import Testing

/// Two handles on one store, as two instances of a service would have: the same SQLite file
/// opened twice (`sqlite` opens it), or two connection pools on one PostgreSQL database
/// (`postgres` opens the store on each).
func withTwoStores<Store>(_ backend: StoreBackend, sqlite: (String) throws -> Store,
                          postgres: (PostgresDatabase) async throws -> Store, _ body: (Store, Store) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("baton-store-\(UUID().uuidString.prefix(8))/store.sqlite").path
        try await body(try sqlite(path), try sqlite(path))
    case .postgres:
        let url = try await PostgresServer.freshDatabase()
        let first = PostgresDatabase(configuration: try .init(url: url), logger: Logger(label: "postgres-1"))
        let second = PostgresDatabase(configuration: try .init(url: url), logger: Logger(label: "postgres-2"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await first.run() }
            group.addTask { await second.run() }
            defer { group.cancelAll() }
            try await body(try await postgres(first), try await postgres(second))
        }
    }
}

func withTwoDelayedEventStores(_ backend: StoreBackend, _ body: (any DelayedEventStore, any DelayedEventStore) async throws -> Void) async throws {
    try await withTwoStores(backend, sqlite: { try DispatcherStore(path: $0) as any DelayedEventStore },
                            postgres: { try await PostgresDelayedEventStore(database: $0) }, body)
}

@Suite("Delayed event store conformance: any instance holds or cancels, one delivers, on SQLite and PostgreSQL", .serialized)
struct DelayedEventConformanceTests {
    let now = Date()
    func event(_ id: String, in seconds: Double = 0) -> EventEnvelope {
        EventEnvelope(id: id, name: "n", deliverAt: now.addingTimeInterval(seconds))
    }

    @Test("a cancel sent to the other instance stops the event; a cancel first drops it on arrival; a delivered event stays delivered", arguments: StoreBackend.allCases)
    func cancels(_ backend: StoreBackend) async throws {
        try await withTwoDelayedEventStores(backend) { (a: any DelayedEventStore, b: any DelayedEventStore) async throws in
            try await a.hold(event("e1", in: 60), id: "t/e1", now: now)
            #expect(try await b.cancelDelayed(id: "t/e1", now: now) == (.canceled, true))
            #expect(try await a.claimDueDelayed(owner: "a", now: now.addingTimeInterval(120), lease: .seconds(30), limit: 10).isEmpty)
            #expect(try await b.cancelDelayed(id: "t/e1", now: now) == (.canceled, false), "canceled once")

            #expect(try await b.cancelDelayed(id: "t/e2", now: now) == (.canceled, true), "not seen yet: remembered")
            try await a.hold(event("e2"), id: "t/e2", now: now)
            #expect(try await a.delayedEventStatus(id: "t/e2") == .canceled)
            #expect(try await a.claimDueDelayed(owner: "a", now: now.addingTimeInterval(1), lease: .seconds(30), limit: 10).isEmpty)

            try await a.hold(event("e3"), id: "t/e3", now: now)
            try await b.hold(event("e3", in: 999), id: "t/e3", now: now)  // a second hold changes nothing
            let due = try await b.claimDueDelayed(owner: "b", now: now.addingTimeInterval(1), lease: .seconds(30), limit: 10)
            #expect(due.map(\.id) == ["e3"])
            try await b.markDelivered(id: "t/e3", owner: "b", now: now)
            #expect(try await a.cancelDelayed(id: "t/e3", now: now) == (.delivered, false))
            #expect(try await a.delayedEventStatus(id: "t/none") == nil)
        }
    }

    @Test("three instances racing over 100 due events claim each exactly once; a dead holder's event is taken over after the lease", arguments: StoreBackend.allCases)
    func race(_ backend: StoreBackend) async throws {
        try await withTwoDelayedEventStores(backend) { (a: any DelayedEventStore, b: any DelayedEventStore) async throws in
            for index in 0..<100 { try await (index.isMultiple(of: 2) ? a : b).hold(event("r\(index)"), id: "t/r\(index)", now: now) }
            let count = FiredCount()
            let claims = try await withThrowingTaskGroup(of: [String].self) { group in
                for (owner, store) in [("a", a), ("b", b), ("c", a)] {
                    group.addTask {
                        var mine: [String] = []
                        for _ in 0..<2_000 where count.value.load(ordering: .relaxed) < 100 {
                            let batch = try await store.claimDueDelayed(owner: owner, now: now.addingTimeInterval(1), lease: .seconds(30), limit: 6)
                            if batch.isEmpty {
                                try await Task.sleep(for: .milliseconds(2))
                                continue
                            }
                            for event in batch { try await store.markDelivered(id: "t/\(event.id)", owner: owner, now: now) }
                            mine += batch.map(\.id)
                            count.value.add(batch.count, ordering: .relaxed)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(claims.count == 100 && Set(claims).count == 100, "\(claims.count) claims, \(Set(claims).count) distinct")

            try await a.hold(event("dead"), id: "t/dead", now: now)
            #expect(try await a.claimDueDelayed(owner: "a", now: now.addingTimeInterval(1), lease: .seconds(30), limit: 10).map(\.id) == ["dead"])
            #expect(try await b.claimDueDelayed(owner: "b", now: now.addingTimeInterval(30), lease: .seconds(30), limit: 10).isEmpty)
            #expect(try await b.claimDueDelayed(owner: "b", now: now.addingTimeInterval(32), lease: .seconds(30), limit: 10).map(\.id) == ["dead"])
            try await a.markDelivered(id: "t/dead", owner: "a", now: now)  // late: not a's any more
            #expect(try await a.delayedEventStatus(id: "t/dead") == .pending)
            try await b.markDelivered(id: "t/dead", owner: "b", now: now)
            #expect(try await a.delayedEventStatus(id: "t/dead") == .delivered)
        }
    }

    @Test("a first hold and a first cancel of one id racing on two instances: the event is never delivered", arguments: StoreBackend.allCases)
    func holdCancelRace(_ backend: StoreBackend) async throws {
        try await withTwoDelayedEventStores(backend) { (a: any DelayedEventStore, b: any DelayedEventStore) async throws in
            let ids = (0..<30).map { "race\($0)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in ids {
                    group.addTask { try await a.hold(event(id), id: "t/\(id)", now: now) }
                    group.addTask { _ = try await b.cancelDelayed(id: "t/\(id)", now: now) }
                }
                try await group.waitForAll()
            }
            #expect(try await a.claimDueDelayed(owner: "a", now: now.addingTimeInterval(1), lease: .seconds(30), limit: 100).isEmpty)
            for id in ids { #expect(try await b.delayedEventStatus(id: "t/\(id)") == .canceled, "\(id)") }
        }
    }
}
