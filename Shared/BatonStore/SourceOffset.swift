import BatonDomain
import Foundation
import GRDB

/// Where a consumed record came from: stored with the state change it causes, in one
/// transaction, so a store knows how far it has read each partition.
public struct SourceOffset: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// The `consumer_offsets` table both stores keep: the next offset to read of each partition
/// they consume, written in the transaction of the state change that consumed it.
enum ConsumerOffsetsTable {
    /// The next offset to read of each partition of `topic`.
    static func read(_ db: Database, topic: String) throws -> [Int32: Int64] {
        var result: [Int32: Int64] = [:]
        for row in try Row.fetchAll(try db.cachedStatement(sql: "SELECT partition, next_offset FROM consumer_offsets WHERE topic = ?"), arguments: [topic]) {
            result[row["partition"]] = row["next_offset"]
        }
        return result
    }

    /// Moves `partition`'s next offset to `next` unless it is already further
    /// (``ConsumedOffsetRules/advanced(_:to:)``).
    static func advance(_ db: Database, topic: String, partition: Int32, to next: Int64) throws {
        let current = try Int64.fetchOne(try db.cachedStatement(sql: "SELECT next_offset FROM consumer_offsets WHERE topic = ? AND partition = ?"),
                                         arguments: [topic, partition])
        guard let advanced = ConsumedOffsetRules.advanced(current, to: next) else { return }
        try db.cachedStatement(sql: """
            INSERT INTO consumer_offsets (topic, partition, next_offset) VALUES (?, ?, ?)
            ON CONFLICT(topic, partition) DO UPDATE SET next_offset = excluded.next_offset
            """).execute(arguments: [topic, partition, advanced])
    }

    /// Advances several partitions of `topic` (see ``advance(_:topic:partition:to:)``).
    static func advance(_ db: Database, topic: String, to next: [Int32: Int64]) throws {
        for (partition, offset) in next { try advance(db, topic: topic, partition: partition, to: offset) }
    }
}

/// The `broker_binding` table both stores keep: which broker (and topic shapes) the store was
/// written against, as the service's `BrokerIdentity` JSON. One row.
enum BrokerBindingTable {
    static func create(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE broker_binding (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                identity TEXT NOT NULL,
                bound_at INTEGER NOT NULL
            );
            """)
    }

    static func read(_ writer: some DatabaseWriter) async throws -> String? {
        try await writer.read { db in try String.fetchOne(db, sql: "SELECT identity FROM broker_binding WHERE id = 1") }
    }

    static func write(_ writer: some DatabaseWriter, identity: String) async throws {
        try await writer.write { db in
            try db.execute(sql: """
                INSERT INTO broker_binding (id, identity, bound_at) VALUES (1, ?, ?)
                ON CONFLICT(id) DO UPDATE SET identity = excluded.identity, bound_at = excluded.bound_at
                """, arguments: [identity, Date().millisecondsSince1970])
        }
    }

    /// Erases every table's content and schema, then migrates again: an empty store.
    static func eraseAll(_ writer: some DatabaseWriter, migrator: DatabaseMigrator) async throws {
        try await writer.erase()
        // Migrating blocks: off the cooperative pool.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async { continuation.resume(with: Result { try migrator.migrate(writer) }) }
        }
    }
}

/// The `duty_leases` table: which instance performs a duty only one performs at a time, until
/// when (see ``BatonDomain/DutyLeaseRules``).
enum DutyLeasesTable {
    static func create(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE duty_leases (
                name TEXT PRIMARY KEY NOT NULL,
                owner TEXT NOT NULL,
                lease_until INTEGER NOT NULL
            );
            """)
    }

    /// Takes or renews duty `name` for `owner`: answered from a read while the lease need not
    /// change (most rounds: ``DutyLeaseRules/answerWithoutWriting(_:by:now:lease:)``), so a store
    /// another process holds locked does not block the duty's holder; else in a write
    /// transaction (one writer decides).
    static func acquire(_ pool: DatabasePool, name: String, owner: String, now: Date, lease: Duration) async throws -> Bool {
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let current = try await pool.read { db in try Self.current(db, name: name) }
        if let answer = DutyLeaseRules.answerWithoutWriting(current, by: owner, now: now, lease: lease) { return answer }
        return try await pool.write { db in try Self.acquire(db, name: name, owner: owner, now: now, lease: lease) }
    }

    private static func current(_ db: Database, name: String) throws -> DutyLease? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT owner, lease_until FROM duty_leases WHERE name = ?"), arguments: [name]).map {
            DutyLease(name: name, owner: $0["owner"], until: Date(millisecondsSince1970: $0["lease_until"]))
        }
    }

    /// Takes or renews duty `name` for `owner` in `db`, a write transaction.
    static func acquire(_ db: Database, name: String, owner: String, now: Date, lease: Duration) throws -> Bool {
        guard let lease = DutyLeaseRules.acquire(try current(db, name: name), name: name, by: owner, now: now, lease: lease) else { return false }
        try db.cachedStatement(sql: """
            INSERT INTO duty_leases (name, owner, lease_until) VALUES (?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
            """).execute(arguments: [name, lease.owner, lease.until.millisecondsSince1970])
        return true
    }
}
