import BatonDomain
import BatonProtocol
import Foundation
import Logging
import PostgresNIO

/// Deduplication keys in PostgreSQL: each call is one transaction that locks the key's row
/// (`SELECT … FOR UPDATE`), asks ``DeduplicationRules`` and writes what they return, so any
/// number of task-result instances decide one key alike.
public struct PostgresDeduplicationStore: DeduplicationStore {
    let database: PostgresDatabase

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "deduplication v1 keys", statements: ["""
            CREATE TABLE deduplication_keys (
                scoped_key TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                status TEXT NOT NULL,
                output TEXT,
                error TEXT,
                claimed_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await database.migrate(Self.migrations)
    }

    public func claim(_ request: DeduplicationClaimRequest, lease: Duration, now: Date) async throws -> DeduplicationClaim {
        try await transaction { connection, logger in
            // A key never claimed has no row to lock: insert a placeholder (or find the one a
            // concurrent claimant inserted), then lock it.
            let existing = try await Self.lockedRecord(request.scopedKey, placeholder: true, connection, logger)
            let decision = DeduplicationRules.claim(request, existing: existing, now: now, lease: lease)
            if let record = decision.write { try await Self.write(request.scopedKey, record, connection, logger) }
            return decision.answer
        }
    }

    public func recordCompleted(scopedKey: String, output: JSONValue, now: Date) async throws {
        try await transaction { connection, logger in
            if let record = DeduplicationRules.completed(try await Self.lockedRecord(scopedKey, placeholder: false, connection, logger), output: output, now: now) {
                try await Self.write(scopedKey, record, connection, logger)
            }
        }
    }

    public func recordFailed(scopedKey: String, runId: String, taskId: String, error: String, now: Date) async throws {
        try await transaction { connection, logger in
            if let record = DeduplicationRules.failed(try await Self.lockedRecord(scopedKey, placeholder: false, connection, logger),
                                                      runId: runId, taskId: taskId, error: error, now: now) {
                try await Self.write(scopedKey, record, connection, logger)
            }
        }
    }

    private func transaction<T: Sendable>(_ body: (PostgresConnection, Logger) async throws -> T) async throws -> T {
        let logger = database.logger
        return try await database.client.withTransaction(logger: logger) { connection in try await body(connection, logger) }
    }

    /// The key's record, its row locked until the transaction ends; `nil` when never claimed
    /// (a concurrent first claim waits on the row lock of the placeholder `INSERT`).
    static func lockedRecord(_ key: String, placeholder: Bool, _ connection: PostgresConnection,
                                     _ logger: Logger) async throws -> DeduplicationRecord? {
        if placeholder {
            // The placeholder makes the first claimants serialize on one row; its status 'NEW'
            // is not a record (see below) and the claim's write replaces it.
            try await connection.query("""
                INSERT INTO deduplication_keys (scoped_key, run_id, task_id, status, claimed_at, updated_at)
                VALUES (\(key), '', '', 'NEW', 0, 0) ON CONFLICT (scoped_key) DO NOTHING
                """, logger: logger)
        }
        let rows = try await connection.query("""
            SELECT run_id, task_id, status, output, error, claimed_at, updated_at FROM deduplication_keys
            WHERE scoped_key = \(key) FOR UPDATE
            """, logger: logger)
        for try await (runId, taskId, status, output, error, claimedAt, updatedAt)
            in rows.decode((String, String, String, String?, String?, Int64, Int64).self) {
            if status == "NEW" { return nil }
            guard let status = DeduplicationRecord.Status(rawValue: status) else {
                throw StoreError("deduplication key '\(key)' has an unknown status '\(status)'")
            }
            return DeduplicationRecord(runId: runId, taskId: taskId, status: status,
                                       output: try output.map { try BatonJSON.decoder.decode(JSONValue.self, from: Data($0.utf8)) },
                                       error: error, claimedAt: Date(millisecondsSince1970: claimedAt),
                                       updatedAt: Date(millisecondsSince1970: updatedAt))
        }
        return nil
    }

    static func write(_ key: String, _ record: DeduplicationRecord, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let output = try record.output.map { String(decoding: try BatonJSON.encoder.encode($0), as: UTF8.self) }
        try await connection.query("""
            UPDATE deduplication_keys SET run_id = \(record.runId), task_id = \(record.taskId), status = \(record.status.rawValue),
                output = \(output), error = \(record.error), claimed_at = \(record.claimedAt.millisecondsSince1970),
                updated_at = \(record.updatedAt.millisecondsSince1970)
            WHERE scoped_key = \(key)
            """, logger: logger)
    }
}
