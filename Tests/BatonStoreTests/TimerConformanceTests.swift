import BatonDomain
import BatonStore
import Foundation
import Synchronization
import Testing

/// How many timers the racing claimants fired so far.
final class FiredCount: Sendable {
    let value = Atomic<Int>(0)
}

func withTimerStore(_ backend: StoreBackend, _ body: (any TimerStore) async throws -> Void) async throws {
    try await withStore(backend, sqlite: { $0 as any TimerStore }, postgres: { try await PostgresTimerStore(database: $0) }, body)
}

@Suite("Timer store conformance: one claimant per due timer, leases taken over, on SQLite and PostgreSQL", .serialized)
struct TimerConformanceTests {
    let now = Date()

    @Test("three claimants racing over 300 due timers claim each exactly once", arguments: StoreBackend.allCases)
    func race(_ backend: StoreBackend) async throws {
        try await withTimerStore(backend) { (store: any TimerStore) async throws in
            for index in 0..<300 { try await store.schedule(runId: "run-\(index)", taskId: "wait", dueAt: now.addingTimeInterval(-Double(index % 7))) }
            // With SKIP LOCKED a claimant may find nothing while others hold the rest: each
            // keeps claiming until all 300 fired (bounded rounds).
            let firedCount = FiredCount()
            let claims = try await withThrowingTaskGroup(of: [ClaimedTimer].self) { group in
                for owner in ["a", "b", "c"] {
                    group.addTask {
                        var mine: [ClaimedTimer] = []
                        for _ in 0..<2_000 where firedCount.value.load(ordering: .relaxed) < 300 {
                            let batch = try await store.claimDueTimers(owner: owner, now: now, lease: .seconds(30), limit: 7)
                            if batch.isEmpty {
                                try await Task.sleep(for: .milliseconds(2))
                                continue
                            }
                            mine += batch
                            try await store.markFired(batch, owner: owner)
                            firedCount.value.add(batch.count, ordering: .relaxed)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [ClaimedTimer]()) { $0 += $1 }
            }
            let runs = claims.map(\.runId)
            #expect(runs.count == 300, "claimed \(runs.count) times")
            #expect(Set(runs).count == 300, "\(runs.count - Set(runs).count) timers claimed twice")
            #expect(try await store.claimDueTimers(owner: "d", now: now.addingTimeInterval(3600), lease: .seconds(30), limit: 500).isEmpty,
                    "fired timers are never claimed again")
        }
    }

    @Test("a lease held by a claimant that died is taken over once it ends; only the holder marks it fired", arguments: StoreBackend.allCases)
    func leaseTakeover(_ backend: StoreBackend) async throws {
        try await withTimerStore(backend) { (store: any TimerStore) async throws in
            try await store.schedule(runId: "r", taskId: "w", dueAt: now)
            try await store.schedule(runId: "r", taskId: "w", dueAt: now.addingTimeInterval(-100))  // once
            #expect(try await store.claimDueTimers(owner: "a", now: now, lease: .seconds(30), limit: 10).map(\.taskId) == ["w"])
            #expect(try await store.claimDueTimers(owner: "b", now: now.addingTimeInterval(29), lease: .seconds(30), limit: 10).isEmpty)
            let takenOver = try await store.claimDueTimers(owner: "b", now: now.addingTimeInterval(31), lease: .seconds(30), limit: 10)
            #expect(takenOver.map(\.taskId) == ["w"])
            try await store.markFired(takenOver, owner: "a")  // the old holder, late: not its timer any more
            #expect(try await store.claimDueTimers(owner: "c", now: now.addingTimeInterval(62), lease: .seconds(30), limit: 10).map(\.taskId) == ["w"],
                    "still not fired: after b's lease, c takes it")
            try await store.markFired(takenOver, owner: "c")
            #expect(try await store.claimDueTimers(owner: "d", now: now.addingTimeInterval(100), lease: .seconds(30), limit: 10).isEmpty)
        }
    }

    @Test("timers not yet due are not claimed", arguments: StoreBackend.allCases)
    func notDue(_ backend: StoreBackend) async throws {
        try await withTimerStore(backend) { (store: any TimerStore) async throws in
            try await store.schedule(runId: "r", taskId: "later", dueAt: now.addingTimeInterval(60))
            #expect(try await store.claimDueTimers(owner: "a", now: now, lease: .seconds(30), limit: 10).isEmpty)
            #expect(try await store.claimDueTimers(owner: "a", now: now.addingTimeInterval(60), lease: .seconds(30), limit: 10).count == 1)
        }
    }

    @Test("an instance retakes its own claim at once; a canceled run's timers are never claimed", arguments: StoreBackend.allCases)
    func retakeAndCancel(_ backend: StoreBackend) async throws {
        try await withTimerStore(backend) { (store: any TimerStore) async throws in
            try await store.schedule(runId: "r1", taskId: "w", dueAt: now)
            #expect(try await store.claimDueTimers(owner: "a", now: now, lease: .seconds(60), limit: 10).count == 1)
            // Its round failed before marking: the next round (or a restart under the same name) retakes it.
            #expect(try await store.claimDueTimers(owner: "b", now: now.addingTimeInterval(1), lease: .seconds(60), limit: 10).isEmpty)
            #expect(try await store.claimDueTimers(owner: "a", now: now.addingTimeInterval(1), lease: .seconds(60), limit: 10).count == 1)
            try await store.schedule(runId: "r2", taskId: "w", dueAt: now)
            try await store.cancelTimers(runId: "r2")
            #expect(try await store.claimDueTimers(owner: "c", now: now.addingTimeInterval(3600), lease: .seconds(60), limit: 10).map(\.runId) == ["r1"],
                    "r1 (a's lease ended), never r2")
        }
    }
}
