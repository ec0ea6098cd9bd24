import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Synchronization
import Testing

/// How a test makes a fetch's run exist, and end.
struct RunControl: Sendable {
    let create: @Sendable (String) async throws -> Void
    let end: @Sendable (String) async throws -> Void
}

/// A fetch store, and how a test makes runs exist and end for it: the SQLite store reads the
/// run with its fetch; the PostgreSQL fetch store is told (`endFetches`).
func withFetchStore(_ backend: StoreBackend, _ body: (any FetchStore, RunControl) async throws -> Void) async throws {
    try await withStore(backend, sqlite: { store -> (any FetchStore, RunControl) in
        (store, RunControl(create: { runId in
            try await store.apply(RunEvent(runId: runId, body: .runCreated(.init(jobSlug: "j", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(runId)", name: "n")))))
        }, end: { runId in
            try await store.apply(RunEvent(runId: runId, body: .runCompleted(.init(output: .null))))
            try await store.endFetches(runId: runId)
        }))
    }, postgres: { database in
        let store = try await PostgresFetchStore(database: database)
        return (store, RunControl(create: { _ in }, end: { runId in try await store.endFetches(runId: runId) }))
    }) { store, runs in try await body(store, runs) }
}

@Suite("Fetch store conformance: one performer per due fetch, leases taken over, on SQLite and PostgreSQL", .serialized)
struct FetchConformanceTests {
    let now = Date()
    let request = BackgroundFetchRequest(url: "https://example.com/x", retry: ["5xx": RetryPolicy(limit: 3)])

    @Test("three instances racing over 120 due fetches perform each exactly once", arguments: StoreBackend.allCases)
    func race(_ backend: StoreBackend) async throws {
        try await withFetchStore(backend) { store, runs in
            for index in 0..<120 {
                try await runs.create("run-\(index)")
                try await store.scheduleFetch(runId: "run-\(index)", taskId: "fetch", request: request, now: now)
            }
            let done = FiredCount()
            let performed = try await withThrowingTaskGroup(of: [String].self) { group in
                for owner in ["a", "b", "c"] {
                    group.addTask {
                        var mine: [String] = []
                        for _ in 0..<2_000 where done.value.load(ordering: .relaxed) < 120 {
                            let batch = try await store.claimDueFetches(owner: owner, now: now, lease: .seconds(60), limit: 5)
                            if batch.isEmpty {
                                try await Task.sleep(for: .milliseconds(2))
                                continue
                            }
                            for fetch in batch {
                                let response = BackgroundFetchResponse(status: 200, headers: [:], body: owner, attempts: fetch.attempts + 1)
                                if try await store.completeFetch(fetch, owner: owner, response: response, now: now) { mine.append(fetch.runId) }
                            }
                            done.value.add(batch.count, ordering: .relaxed)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(performed.count == 120 && Set(performed).count == 120, "\(performed.count) performed, \(Set(performed).count) distinct")
            #expect(try await store.claimDueFetches(owner: "d", now: now.addingTimeInterval(3600), lease: .seconds(60), limit: 500).isEmpty)
        }
    }

    @Test("a retry releases the fetch until its next attempt; a dead holder's fetch is taken over after the lease and its late outcome is dropped", arguments: StoreBackend.allCases)
    func retriesAndLeases(_ backend: StoreBackend) async throws {
        try await withFetchStore(backend) { store, runs in
            try await runs.create("r")
            try await store.scheduleFetch(runId: "r", taskId: "f", request: request, now: now)
            let first = try await store.claimDueFetches(owner: "a", now: now, lease: .seconds(60), limit: 10)
            #expect(first.map(\.attempts) == [0] && first.first?.request == request)
            #expect(try await store.rescheduleFetch(first[0], owner: "a", next: now.addingTimeInterval(10)))
            #expect(try await store.claimDueFetches(owner: "b", now: now.addingTimeInterval(9), lease: .seconds(60), limit: 10).isEmpty)
            let second = try await store.claimDueFetches(owner: "b", now: now.addingTimeInterval(10), lease: .seconds(60), limit: 10)
            #expect(second.map(\.attempts) == [1], "the retry counts the attempt")
            // b dies holding it; after the lease c takes it over.
            let third = try await store.claimDueFetches(owner: "c", now: now.addingTimeInterval(71), lease: .seconds(60), limit: 10)
            #expect(third.count == 1)
            let late = BackgroundFetchResponse(status: 200, headers: [:], body: "b", attempts: 2)
            #expect(try await store.completeFetch(second[0], owner: "b", response: late, now: now) == false, "b's late response is dropped")
            #expect(try await store.rescheduleFetch(second[0], owner: "b", next: now) == false)
            let final = BackgroundFetchResponse(status: 200, headers: [:], body: "c", attempts: 2)
            #expect(try await store.completeFetch(third[0], owner: "c", response: final, now: now))
            #expect(try await store.claimDueFetches(owner: "d", now: now.addingTimeInterval(3600), lease: .seconds(60), limit: 10).isEmpty)
        }
    }

    @Test("fetches of ended runs are never performed, and many of them do not hold up a live one", arguments: StoreBackend.allCases)
    func endedRuns(_ backend: StoreBackend) async throws {
        try await withFetchStore(backend) { store, runs in
            for index in 0..<60 {
                try await runs.create("ended-\(index)")
                try await store.scheduleFetch(runId: "ended-\(index)", taskId: "f", request: request, now: now.addingTimeInterval(-10))
                try await runs.end("ended-\(index)")
            }
            try await runs.create("live")
            try await store.scheduleFetch(runId: "live", taskId: "f", request: request, now: now)
            #expect(try await store.claimDueFetches(owner: "a", now: now, lease: .seconds(60), limit: 50).map(\.runId) == ["live"])
        }
    }
}
