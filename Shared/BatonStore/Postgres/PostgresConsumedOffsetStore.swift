import BatonDomain
import Foundation
import Logging
import PostgresNIO

/// Consumed offsets in PostgreSQL, shared by the instances of a service: each partition's row
/// is locked while ``ConsumedOffsetRules`` decide, so concurrent advances settle at the furthest.
public struct PostgresConsumedOffsetStore: ConsumedOffsetStore {
    let database: PostgresDatabase

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "consumed offsets v1", statements: ["""
            CREATE TABLE consumer_offsets (
                topic TEXT NOT NULL,
                partition INTEGER NOT NULL,
                next_offset BIGINT NOT NULL,
                PRIMARY KEY (topic, partition)
            )
            """]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await database.migrate(Self.migrations)
    }

    public func consumedOffsets(topic: String) async throws -> [Int32: Int64] {
        let rows = try await database.client.query("SELECT partition, next_offset FROM consumer_offsets WHERE topic = \(topic)",
                                                   logger: database.logger)
        var offsets: [Int32: Int64] = [:]
        for try await (partition, next) in rows.decode((Int32, Int64).self) { offsets[partition] = next }
        return offsets
    }

    public func advanceOffsets(topic: String, to next: [Int32: Int64]) async throws {
        try await database.transaction { connection, logger in try await Self.advance(topic: topic, to: next, connection, logger) }
    }

    /// Advances `topic`'s partitions in the caller's transaction (see ``advanceOffsets(topic:to:)``).
    static func advance(topic: String, to next: [Int32: Int64], _ connection: PostgresConnection, _ logger: Logger) async throws {
        // In partition order, so two instances advancing the same partitions never deadlock.
        for (partition, offset) in next.sorted(by: { $0.key < $1.key }) {
            try await connection.query("""
                INSERT INTO consumer_offsets (topic, partition, next_offset) VALUES (\(topic), \(partition), -1)
                ON CONFLICT (topic, partition) DO NOTHING
                """, logger: logger)
            let rows = try await connection.query("""
                SELECT next_offset FROM consumer_offsets WHERE topic = \(topic) AND partition = \(partition) FOR UPDATE
                """, logger: logger)
            var current: Int64?
            for try await value in rows.decode(Int64.self) { current = value < 0 ? nil : value }
            if let advanced = ConsumedOffsetRules.advanced(current, to: offset) {
                try await connection.query("""
                    UPDATE consumer_offsets SET next_offset = \(advanced) WHERE topic = \(topic) AND partition = \(partition)
                    """, logger: logger)
            }
        }
    }
}
