import BatonDomain
import BatonProtocol
import Foundation
import Logging
import PostgresNIO

/// Delayed events in PostgreSQL, shared by any number of dispatchers: any instance holds an
/// event or takes its cancel, and due events are claimed for delivery with `FOR UPDATE SKIP
/// LOCKED`; ``DelayedEventRules`` decide every change.
public struct PostgresDelayedEventStore: DelayedEventStore {
    let database: PostgresDatabase

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "delayed events v1", statements: ["""
            CREATE TABLE delayed_events (
                event_id TEXT PRIMARY KEY,
                event TEXT,
                deliver_at BIGINT NOT NULL,
                status TEXT NOT NULL,
                lease_owner TEXT,
                lease_until BIGINT,
                updated_at BIGINT NOT NULL
            )
            """, "CREATE INDEX delayed_due ON delayed_events (deliver_at) WHERE status = 'PENDING'"]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await database.migrate(Self.migrations)
    }

    public func hold(_ event: EventEnvelope, id: String, now: Date) async throws {
        try await database.transaction { connection, logger in try await Self.hold(event, id: id, now: now, connection, logger) }
    }

    /// Holds `event` in the caller's transaction (see ``hold(_:id:now:)``).
    static func hold(_ event: EventEnvelope, id: String, now: Date, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let existing = try await lockedRecord(id, placeholder: true, connection, logger)
        if let record = DelayedEventRules.held(existing, id: id, event: event, now: now) { try await write(record, connection, logger) }
    }

    public func cancelDelayed(id: String, now: Date) async throws -> (status: DelayedEventRecord.Status, canceled: Bool) {
        try await withLocked(id) { existing, connection, logger in
            let decision = DelayedEventRules.canceled(existing, id: id, now: now)
            if let record = decision.write { try await Self.write(record, connection, logger) }
            return (decision.status, decision.canceled)
        }
    }

    public func delayedEventStatus(id: String) async throws -> DelayedEventRecord.Status? {
        let rows = try await database.client.query("SELECT status FROM delayed_events WHERE event_id = \(id) AND status != 'NEW'", logger: database.logger)
        for try await status in rows.decode(String.self) { return DelayedEventRecord.Status(rawValue: status) }
        return nil
    }

    public func claimDueDelayed(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [EventEnvelope] {
        let logger = database.logger
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        return try await database.client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                SELECT \(unescaped: Self.columns) FROM delayed_events
                WHERE status = 'PENDING' AND deliver_at <= \(time) AND (lease_until IS NULL OR lease_until < \(time) OR lease_owner = \(owner))
                ORDER BY deliver_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var claimed: [EventEnvelope] = []
            for record in try await Self.records(rows) where DelayedEventRules.isClaimable(record, by: owner, now: now) {
                guard let event = record.event else { continue }
                try await Self.write(DelayedEventRules.claimed(record, by: owner, now: now, lease: lease), connection, logger)
                claimed.append(event)
            }
            return claimed
        }
    }

    public func markDelivered(id: String, owner: String, now: Date) async throws {
        try await withLocked(id, placeholder: false) { existing, connection, logger in
            if let existing, let record = DelayedEventRules.delivered(existing, by: owner, now: now) {
                try await Self.write(record, connection, logger)
            }
        }
    }

    static let columns = "event_id, event, deliver_at, status, lease_owner, lease_until, updated_at"

    /// Runs `body` with the record of `id` (`nil`: none), its row locked until the transaction
    /// ends. An id never seen gets a placeholder row (status `NEW`, not a record) first, so a
    /// first hold and a concurrent first cancel serialise on it instead of both deciding alone.
    private func withLocked<T: Sendable>(_ id: String, placeholder: Bool = true,
                                         _ body: (DelayedEventRecord?, PostgresConnection, Logger) async throws -> T) async throws -> T {
        try await database.transaction { connection, logger in
            try await body(try await Self.lockedRecord(id, placeholder: placeholder, connection, logger), connection, logger)
        }
    }

    /// The record of `id`, its row locked until the transaction ends (see ``withLocked(_:placeholder:_:)``).
    private static func lockedRecord(_ id: String, placeholder: Bool, _ connection: PostgresConnection, _ logger: Logger) async throws -> DelayedEventRecord? {
        if placeholder {
            try await connection.query("""
                INSERT INTO delayed_events (event_id, deliver_at, status, updated_at) VALUES (\(id), 0, 'NEW', 0)
                ON CONFLICT (event_id) DO NOTHING
                """, logger: logger)
        }
        let rows = try await connection.query("SELECT \(unescaped: Self.columns) FROM delayed_events WHERE event_id = \(id) FOR UPDATE",
                                              logger: logger)
        return try await records(rows).first
    }

    private static func records(_ rows: PostgresRowSequence) async throws -> [DelayedEventRecord] {
        var records: [DelayedEventRecord] = []
        for try await (id, event, deliverAt, status, leaseOwner, leaseUntil, updatedAt)
            in rows.decode((String, String?, Int64, String, String?, Int64?, Int64).self) {
            if status == "NEW" { continue }  // a placeholder (see `withLocked`)
            guard let status = DelayedEventRecord.Status(rawValue: status) else {
                throw StoreError("delayed event '\(id)' has an unknown status '\(status)'")
            }
            records.append(DelayedEventRecord(id: id, event: try event.map { try BatonJSON.decoder.decode(EventEnvelope.self, from: Data($0.utf8)) },
                                              deliverAt: Date(millisecondsSince1970: deliverAt), status: status, leaseOwner: leaseOwner,
                                              leaseUntil: leaseUntil.map(Date.init(millisecondsSince1970:)),
                                              updatedAt: Date(millisecondsSince1970: updatedAt)))
        }
        return records
    }

    private static func write(_ record: DelayedEventRecord, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let json = try record.event.map { String(decoding: try BatonJSON.encoder.encode($0), as: UTF8.self) }
        try await connection.query("""
            INSERT INTO delayed_events (event_id, event, deliver_at, status, lease_owner, lease_until, updated_at)
            VALUES (\(record.id), \(json), \(record.deliverAt.millisecondsSince1970), \(record.status.rawValue), \(record.leaseOwner),
                    \(record.leaseUntil?.millisecondsSince1970), \(record.updatedAt.millisecondsSince1970))
            ON CONFLICT (event_id) DO UPDATE SET event = excluded.event, deliver_at = excluded.deliver_at, status = excluded.status,
                lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at
            """, logger: logger)
    }
}
