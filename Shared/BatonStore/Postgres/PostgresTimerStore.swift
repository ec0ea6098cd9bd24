import BatonDomain
import Foundation
import Logging
import PostgresNIO

/// Timers in PostgreSQL, shared by any number of task-result instances: a claim locks due
/// rows with `FOR UPDATE SKIP LOCKED` (concurrent claimants take different rows, never wait for
/// each other), asks ``TimerRules`` which are claimable and leases those to the claimant.
public struct PostgresTimerStore: TimerStore {
    let database: PostgresDatabase

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "timers v1", statements: ["""
            CREATE TABLE timers (
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                due_at BIGINT NOT NULL,
                fired BOOLEAN NOT NULL DEFAULT false,
                lease_owner TEXT,
                lease_until BIGINT,
                PRIMARY KEY (run_id, task_id)
            )
            """, "CREATE INDEX timers_due ON timers (due_at) WHERE NOT fired"]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await database.migrate(Self.migrations)
    }

    public func schedule(runId: String, taskId: String, dueAt: Date) async throws {
        try await database.client.query("""
            INSERT INTO timers (run_id, task_id, due_at) VALUES (\(runId), \(taskId), \(dueAt.millisecondsSince1970))
            ON CONFLICT (run_id, task_id) DO NOTHING
            """, logger: database.logger)
    }

    public func claimDueTimers(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedTimer] {
        let logger = database.logger
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        return try await database.client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT run_id, task_id, due_at, fired, lease_owner, lease_until FROM timers
                WHERE NOT fired AND due_at <= \(time) AND (lease_until IS NULL OR lease_until < \(time) OR lease_owner = \(owner))
                ORDER BY due_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            let candidates = try await Self.records(rows)
            var claimed: [ClaimedTimer] = []
            for timer in candidates where TimerRules.isClaimable(timer, by: owner, now: now) {
                let record = TimerRules.claimed(timer, by: owner, now: now, lease: lease)
                try await connection.query("""
                    UPDATE timers SET lease_owner = \(record.leaseOwner), lease_until = \(record.leaseUntil?.millisecondsSince1970)
                    WHERE run_id = \(record.runId) AND task_id = \(record.taskId)
                    """, logger: logger)
                claimed.append(ClaimedTimer(runId: timer.runId, taskId: timer.taskId, dueAt: timer.dueAt))
            }
            return claimed
        }
    }

    public func cancelTimers(runId: String) async throws {
        try await database.client.query("UPDATE timers SET fired = true WHERE run_id = \(runId) AND NOT fired", logger: database.logger)
    }

    public func markFired(_ timers: [ClaimedTimer], owner: String) async throws {
        let logger = database.logger
        try await database.client.withTransaction(logger: logger) { connection in
            for timer in timers {
                let rows = try await connection.query("""
                    SELECT run_id, task_id, due_at, fired, lease_owner, lease_until FROM timers
                    WHERE run_id = \(timer.runId) AND task_id = \(timer.taskId) FOR UPDATE
                    """, logger: logger)
                guard let current = try await Self.records(rows).first, TimerRules.fired(current, by: owner) != nil else { continue }
                try await connection.query("UPDATE timers SET fired = true WHERE run_id = \(timer.runId) AND task_id = \(timer.taskId)", logger: logger)
            }
        }
    }

    /// Timer records of rows selected as `run_id, task_id, due_at, fired, lease_owner, lease_until`.
    private static func records(_ rows: PostgresRowSequence) async throws -> [TimerRecord] {
        var records: [TimerRecord] = []
        for try await (runId, taskId, dueAt, fired, leaseOwner, leaseUntil) in rows.decode((String, String, Int64, Bool, String?, Int64?).self) {
            records.append(TimerRecord(runId: runId, taskId: taskId, dueAt: Date(millisecondsSince1970: dueAt), fired: fired,
                                       leaseOwner: leaseOwner, leaseUntil: leaseUntil.map(Date.init(millisecondsSince1970:))))
        }
        return records
    }
}
