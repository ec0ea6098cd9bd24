import Foundation
import Logging
import PostgresNIO

/// A PostgreSQL database of Baton (postgres-nio's connection pool), with its migrations.
///
/// Run ``run()`` in a long-running task (a service) for as long as the database is used: the
/// pool opens and keeps its connections there.
public final class PostgresDatabase: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// The database's name (for messages).
    let name: String

    /// Settings: where the server is and how many connections to keep.
    public struct Configuration: Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// Most connections the pool opens.
        public var maximumConnections: Int
        /// `true`: require TLS (verifying the server's certificate); `false`: no TLS.
        public var requireTLS: Bool

        public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
                    maximumConnections: Int = 10, requireTLS: Bool = false) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.maximumConnections = maximumConnections
            self.requireTLS = requireTLS
        }

        /// Reads `postgres://user:password@host:port/database?sslmode=require&pool=10`.
        /// - Throws: `StoreError` naming what is wrong.
        public init(url: String) throws {
            guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
                  let host = components.host, !host.isEmpty else {
                throw StoreError("'\(Self.redacted(url))' is not a postgres:// URL (postgres://user:password@host:5432/database)")
            }
            let database = String(components.path.drop { $0 == "/" })
            guard !database.isEmpty else { throw StoreError("the store URL '\(Self.redacted(url))' names no database") }
            let query = Dictionary(components.queryItems?.map { ($0.name, $0.value ?? "") } ?? [], uniquingKeysWith: { _, last in last })
            let pool = Int(query["pool"] ?? "10") ?? 0
            guard pool >= 1 else { throw StoreError("the store URL's pool must be a positive number, got '\(query["pool"] ?? "")'") }
            self.init(host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                      password: components.password, database: database, maximumConnections: pool,
                      requireTLS: ["require", "verify-full"].contains(query["sslmode"] ?? ""))
        }

        /// Where the database is, without the password: `postgres://user@host:port/database`.
        public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }

        /// `url` without its password.
        static func redacted(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "…"
            return components.string ?? url
        }
    }

    /// A migration: an identifier (never changed once shipped) and its SQL statements (one per
    /// string: the extended protocol runs one statement per query).
    struct Migration: Sendable {
        let id: String
        let statements: [String]
    }

    public init(configuration: Configuration, logger: Logger) {
        var client = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database,
            tls: configuration.requireTLS ? .require(.makeClientConfiguration()) : .disable)
        client.options.maximumConnections = configuration.maximumConnections
        self.client = PostgresClient(configuration: client, backgroundLogger: logger)
        self.logger = logger
        self.name = configuration.database
    }

    /// Keeps the pool's connections; returns when the task is cancelled.
    public func run() async {
        await client.run()
    }

    /// The advisory lock every Baton migration takes ("baton"): one migrates at a time, whichever
    /// store or instance.
    static let migrationLock: Int64 = 0x6261_746f_6e

    /// Applies the migrations not applied yet, in order, each in its own transaction. Several
    /// stores and instances may start at once: an advisory lock lets one migrate at a time.
    func migrate(_ migrations: [Migration]) async throws {
        let lockKey = Self.migrationLock
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
            do {
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS baton_migrations (id TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """, logger: logger)
                var applied: Set<String> = []
                for try await id in try await connection.query("SELECT id FROM baton_migrations", logger: logger).decode(String.self) {
                    applied.insert(id)
                }
                for migration in migrations where !applied.contains(migration.id) {
                    try await connection.withTransaction(logger: logger) { connection in
                        for statement in migration.statements {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await connection.query("INSERT INTO baton_migrations (id) VALUES (\(migration.id))", logger: logger)
                    }
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
        }
    }

    /// Runs `body` in a transaction, again (up to 5 times) when PostgreSQL aborted it to break a
    /// deadlock or a serialization conflict with another instance: those abort one transaction
    /// whole, so running it again is safe.
    func transaction<T: Sendable>(_ body: (PostgresConnection, Logger) async throws -> T) async throws -> T {
        let logger = logger
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withTransaction(logger: logger) { connection in try await body(connection, logger) }
            } catch let error as PostgresTransactionError {
                if attempt < 5 && Self.isConflict(error) {
                    logger.debug("transaction aborted by a conflict with another one: running it again", metadata: ["attempt": "\(attempt)"])
                    try await Task.sleep(for: .milliseconds(5 * attempt))
                    continue
                }
                // The body's own error (e.g. a rule refusing a change), once rolled back, as it was thrown.
                if let thrown = error.closureError, error.rollbackError == nil { throw thrown }
                throw error
            }
        }
    }

    /// Whether the transaction was aborted by a deadlock (40P01) or a serialization failure (40001).
    private static func isConflict(_ error: PostgresTransactionError) -> Bool {
        guard let failure = (error.closureError ?? error.commitError) as? PSQLError,
              let state = failure.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }
}
