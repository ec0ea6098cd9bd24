import BatonDomain
import BatonProtocol
import BatonStore
import BatonTesting
import Foundation
import Logging
import Testing

/// The store backends every conformance suite runs against.
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres
    var testDescription: String { rawValue }
}

/// Runs `body` with a fresh store of `backend`: a new SQLite file (`sqlite` picks the protocol
/// view of the task-result store), or a new database on the test process's PostgreSQL server
/// (`postgres` opens the store on it); then releases it.
func withStore<Store>(_ backend: StoreBackend, sqlite: (TaskResultStore) -> Store,
                      postgres: (PostgresDatabase) async throws -> Store, _ body: (Store) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-store-\(UUID().uuidString.prefix(8))")
        try await body(sqlite(try TaskResultStore(path: directory.appendingPathComponent("task-results.sqlite").path)))
    case .postgres:
        let database = PostgresDatabase(configuration: try .init(url: try await PostgresServer.freshDatabase()), logger: Logger(label: "postgres"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            try await body(try await postgres(database))
        }
    }
}

func withDeduplicationStore(_ backend: StoreBackend, _ body: (any DeduplicationStore) async throws -> Void) async throws {
    try await withStore(backend, sqlite: { $0 as any DeduplicationStore },
                        postgres: { try await PostgresDeduplicationStore(database: $0) }, body)
}

@Suite("Deduplication store conformance: SQLite and PostgreSQL decide alike", .serialized)
struct DeduplicationConformanceTests {
    let now = Date()
    func request(_ run: String, skipFailure: Bool = false) -> DeduplicationClaimRequest {
        DeduplicationClaimRequest(scopedKey: "proj:o/p:k", runId: run, taskId: "t", skipFailure: skipFailure)
    }

    @Test("of 20 concurrent claimants exactly one executes; the others are told to wait", arguments: StoreBackend.allCases)
    func race(_ backend: StoreBackend) async throws {
        try await withDeduplicationStore(backend) { (store: any DeduplicationStore) async throws in
            let outcomes = try await withThrowingTaskGroup(of: DeduplicationClaim.Outcome.self) { group in
                for index in 0..<20 { group.addTask { try await store.claim(request("r\(index)"), lease: .seconds(300), now: now).outcome } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .execute }.count == 1)
            #expect(outcomes.filter { $0 == .busy }.count == 19)
        }
    }

    @Test("of 20 concurrent claimants of a failed key exactly one executes it again", arguments: StoreBackend.allCases)
    func raceAfterFailure(_ backend: StoreBackend) async throws {
        try await withDeduplicationStore(backend) { (store: any DeduplicationStore) async throws in
            #expect(try await store.claim(request("r0"), lease: .seconds(300), now: now).outcome == .execute)
            try await store.recordFailed(scopedKey: "proj:o/p:k", runId: "r0", taskId: "t", error: "boom", now: now)
            let outcomes = try await withThrowingTaskGroup(of: DeduplicationClaim.Outcome.self) { group in
                for index in 1...20 { group.addTask { try await store.claim(request("r\(index)"), lease: .seconds(300), now: now).outcome } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .execute }.count == 1, "\(outcomes)")
        }
    }

    @Test("completion hands the first output to later claimants; the holder may claim again after a crash", arguments: StoreBackend.allCases)
    func completion(_ backend: StoreBackend) async throws {
        try await withDeduplicationStore(backend) { (store: any DeduplicationStore) async throws in
            #expect(try await store.claim(request("r1"), lease: .seconds(300), now: now).outcome == .execute)
            #expect(try await store.claim(request("r1"), lease: .seconds(300), now: now).outcome == .execute)
            try await store.recordCompleted(scopedKey: "proj:o/p:k", output: "done", now: now)
            try await store.recordCompleted(scopedKey: "proj:o/p:k", output: "again", now: now)
            let later = try await store.claim(request("r2"), lease: .seconds(300), now: now)
            #expect(later == DeduplicationClaim(outcome: .completed, output: "done"))
            // Completing a key nobody claimed creates nothing.
            try await store.recordCompleted(scopedKey: "proj:o/p:other", output: "x", now: now)
            #expect(try await store.claim(DeduplicationClaimRequest(scopedKey: "proj:o/p:other", runId: "r9", taskId: "t", skipFailure: false),
                                          lease: .seconds(300), now: now).outcome == .execute)
        }
    }

    @Test("after a final failure the next claimant executes, unless it skips failures; a former holder's failure changes nothing", arguments: StoreBackend.allCases)
    func failure(_ backend: StoreBackend) async throws {
        try await withDeduplicationStore(backend) { (store: any DeduplicationStore) async throws in
            #expect(try await store.claim(request("r1"), lease: .seconds(300), now: now).outcome == .execute)
            try await store.recordFailed(scopedKey: "proj:o/p:k", runId: "r1", taskId: "t", error: "boom", now: now)
            let skipped = try await store.claim(request("r2", skipFailure: true), lease: .seconds(300), now: now)
            #expect(skipped == DeduplicationClaim(outcome: .failed, error: "boom"))
            #expect(try await store.claim(request("r3"), lease: .seconds(300), now: now).outcome == .execute)
            try await store.recordFailed(scopedKey: "proj:o/p:k", runId: "r1", taskId: "t", error: "late", now: now)
            #expect(try await store.claim(request("r4"), lease: .seconds(300), now: now).outcome == .busy, "r3 still holds it")
        }
    }

    @Test("a claim whose holder never finished is taken over after the lease", arguments: StoreBackend.allCases)
    func lease(_ backend: StoreBackend) async throws {
        try await withDeduplicationStore(backend) { (store: any DeduplicationStore) async throws in
            #expect(try await store.claim(request("r1"), lease: .seconds(60), now: now).outcome == .execute)
            #expect(try await store.claim(request("r2"), lease: .seconds(60), now: now.addingTimeInterval(59)).outcome == .busy)
            #expect(try await store.claim(request("r2"), lease: .seconds(60), now: now.addingTimeInterval(61)).outcome == .execute)
            #expect(try await store.claim(request("r1"), lease: .seconds(60), now: now.addingTimeInterval(62)).outcome == .busy,
                    "the old holder lost it")
        }
    }
}
