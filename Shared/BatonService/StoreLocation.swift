import BatonProtocol
import BatonStore
import Configuration
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Where a service keeps its state: the embedded SQLite file (`store.path`, one instance per
/// file) or a PostgreSQL database (`store.url`, shared by any number of instances).
public enum StoreLocation {
    /// The PostgreSQL settings of `store.url` (`STORE_URL`); `nil` when it is unset (SQLite).
    /// - Throws: `ValidationError` at `store.url` when it is not a usable `postgres://` URL.
    public static func postgres(config: ConfigReader) throws(ValidationError) -> PostgresDatabase.Configuration? {
        guard let url = config.string(forKey: "store.url"), !url.isEmpty else { return nil }
        do {
            return try PostgresDatabase.Configuration(url: url)
        } catch {
            throw ValidationError(path: "store.url", message: "\((error as? StoreError)?.message ?? "\(error)"); give postgres://user:password@host:5432/database (or leave it unset for the embedded SQLite file)")
        }
    }

    /// The default name of a service instance: stable across restarts of the same process on
    /// the same host and store, so a restarted instance retakes its own claims at once instead
    /// of waiting for their leases to end. Instances sharing a PostgreSQL store on one host
    /// must be given names of their own.
    public static func defaultInstance(_ service: String, storePath: String, postgres: PostgresDatabase.Configuration?) -> String {
        let store = postgres.map(\.description) ?? URL(fileURLWithPath: storePath).standardizedFileURL.path
        return Identifiers.digest([service, ProcessInfo.processInfo.hostName, store], length: 16)
    }
}

/// Keeps a PostgreSQL connection pool open for the life of the process: started when created
/// (stores migrate before the service group runs), closed when the group shuts down. List it
/// first among a process's services, so it closes after every service that writes.
public final class PostgresPoolService: Service {
    public let database: PostgresDatabase
    private let pool: Task<Void, Never>

    public init(configuration: PostgresDatabase.Configuration, logger: Logger) {
        let database = PostgresDatabase(configuration: configuration, logger: logger)
        self.database = database
        self.pool = Task { await database.run() }
    }

    public func run() async throws {
        // Returns at graceful shutdown or when cancelled; either way the pool closes.
        try? await gracefulShutdown()
        pool.cancel()
        await pool.value
    }
}

/// Runs async `body` and waits for its result, from a thread outside Swift's cooperative pool:
/// a Dispatch queue on which a C library calls back (librdkafka's rebalance callback asks the
/// store where to start). Never call it from async code: it blocks its thread.
///
/// Waits at most `limit`, then throws ``StoreAttemptTimeout`` and leaves `body` behind
/// (cancelled): the calling thread — the Kafka consumer's poll thread — must not hang with a
/// database call that never returns, or the consumer stops consuming and its group can never
/// rebalance.
public func blockingOutsideCooperativePool<T: Sendable>(limit: Duration, what: String,
                                                        _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    let task = Task {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    guard done.wait(timeout: .now() + limit / .seconds(1)) == .success else {
        task.cancel()
        throw StoreAttemptTimeout(what: what, after: limit)
    }
    return try result.withLock { $0! }.get()
}
