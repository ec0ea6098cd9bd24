import BatonDomain
import BatonProtocol
import Foundation
import Logging
import PostgresNIO

/// Background fetches in PostgreSQL, shared by any number of task-result instances: a claim
/// locks due rows with `FOR UPDATE SKIP LOCKED`, asks ``FetchRules`` which are claimable and
/// leases those; only the holder's outcome is stored.
public struct PostgresFetchStore: FetchStore {
    let database: PostgresDatabase

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "fetches v1", statements: ["""
            CREATE TABLE fetches (
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                request TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                done BOOLEAN NOT NULL DEFAULT false,
                response TEXT,
                lease_owner TEXT,
                lease_until BIGINT,
                run_ended BOOLEAN NOT NULL DEFAULT false,
                PRIMARY KEY (run_id, task_id)
            )
            """, "CREATE INDEX fetches_due ON fetches (next_attempt_at) WHERE NOT done AND NOT run_ended"]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await database.migrate(Self.migrations)
    }

    public func scheduleFetch(runId: String, taskId: String, request: BackgroundFetchRequest, now: Date) async throws {
        let json = String(decoding: try BatonJSON.encoder.encode(request), as: UTF8.self)
        try await database.client.query("""
            INSERT INTO fetches (run_id, task_id, request, next_attempt_at) VALUES (\(runId), \(taskId), \(json), \(now.millisecondsSince1970))
            ON CONFLICT (run_id, task_id) DO NOTHING
            """, logger: database.logger)
    }

    public func claimDueFetches(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedFetch] {
        let logger = database.logger
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        return try await database.client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT run_id, task_id, attempts, next_attempt_at, done, lease_owner, lease_until, request, run_ended FROM fetches
                WHERE NOT done AND NOT run_ended AND next_attempt_at <= \(time) AND (lease_until IS NULL OR lease_until < \(time) OR lease_owner = \(owner))
                ORDER BY next_attempt_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var claimed: [ClaimedFetch] = []
            for (fetch, request) in try await Self.records(rows) where FetchRules.isClaimable(fetch, by: owner, now: now) {
                let record = FetchRules.claimed(fetch, by: owner, now: now, lease: lease)
                try await connection.query("""
                    UPDATE fetches SET lease_owner = \(record.leaseOwner), lease_until = \(record.leaseUntil?.millisecondsSince1970)
                    WHERE run_id = \(record.runId) AND task_id = \(record.taskId)
                    """, logger: logger)
                claimed.append(ClaimedFetch(runId: fetch.runId, taskId: fetch.taskId,
                                            request: try BatonJSON.decoder.decode(BackgroundFetchRequest.self, from: Data(request.utf8)),
                                            attempts: fetch.attempts))
            }
            return claimed
        }
    }

    public func endFetches(runId: String) async throws {
        try await database.client.query("UPDATE fetches SET run_ended = true WHERE run_id = \(runId)", logger: database.logger)
    }

    public func rescheduleFetch(_ fetch: ClaimedFetch, owner: String, next: Date) async throws -> Bool {
        try await withLocked(fetch) { current, connection, logger in
            guard let record = FetchRules.rescheduled(current, by: owner, next: next) else { return false }
            try await connection.query("""
                UPDATE fetches SET attempts = \(record.attempts), next_attempt_at = \(next.millisecondsSince1970), lease_owner = NULL, lease_until = NULL
                WHERE run_id = \(fetch.runId) AND task_id = \(fetch.taskId)
                """, logger: logger)
            return true
        }
    }

    public func completeFetch(_ fetch: ClaimedFetch, owner: String, response: BackgroundFetchResponse, now: Date) async throws -> Bool {
        try await database.transaction { connection, logger in try await Self.complete(fetch, owner: owner, response: response, connection, logger) }
    }

    /// Stores `response` with the fetch, done, in the caller's transaction, when `owner` still
    /// holds it (``FetchRules/completed(_:by:attempts:)``); `false` otherwise.
    static func complete(_ fetch: ClaimedFetch, owner: String, response: BackgroundFetchResponse, _ connection: PostgresConnection,
                         _ logger: Logger) async throws -> Bool {
        let json = String(decoding: try BatonJSON.encoder.encode(response), as: UTF8.self)
        guard let current = try await lockedRecord(fetch, connection, logger),
              FetchRules.completed(current, by: owner, attempts: response.attempts) != nil else { return false }
        try await connection.query("""
            UPDATE fetches SET done = true, attempts = \(response.attempts), response = \(json)
            WHERE run_id = \(fetch.runId) AND task_id = \(fetch.taskId)
            """, logger: logger)
        return true
    }

    /// The fetch's record, its row locked until the transaction ends; `nil` when there is no such fetch.
    private static func lockedRecord(_ fetch: ClaimedFetch, _ connection: PostgresConnection, _ logger: Logger) async throws -> FetchRecord? {
        let rows = try await connection.query("""
            SELECT run_id, task_id, attempts, next_attempt_at, done, lease_owner, lease_until, request, run_ended FROM fetches
            WHERE run_id = \(fetch.runId) AND task_id = \(fetch.taskId) FOR UPDATE
            """, logger: logger)
        return try await records(rows).first?.record
    }

    /// Runs `body` with the fetch's record, its row locked until the transaction ends; `false`
    /// when there is no such fetch.
    private func withLocked(_ fetch: ClaimedFetch, _ body: (FetchRecord, PostgresConnection, Logger) async throws -> Bool) async throws -> Bool {
        try await database.transaction { connection, logger in
            guard let current = try await Self.lockedRecord(fetch, connection, logger) else { return false }
            return try await body(current, connection, logger)
        }
    }

    /// Records (and request JSON) of rows selected as
    /// `run_id, task_id, attempts, next_attempt_at, done, lease_owner, lease_until, request, run_ended`.
    private static func records(_ rows: PostgresRowSequence) async throws -> [(record: FetchRecord, request: String)] {
        var records: [(record: FetchRecord, request: String)] = []
        for try await (runId, taskId, attempts, nextAttemptAt, done, leaseOwner, leaseUntil, request, runEnded)
            in rows.decode((String, String, Int32, Int64, Bool, String?, Int64?, String, Bool).self) {
            records.append((FetchRecord(runId: runId, taskId: taskId, attempts: Int(attempts),
                                        nextAttemptAt: Date(millisecondsSince1970: nextAttemptAt), done: done, runEnded: runEnded,
                                        leaseOwner: leaseOwner, leaseUntil: leaseUntil.map(Date.init(millisecondsSince1970:))), request))
        }
        return records
    }
}
