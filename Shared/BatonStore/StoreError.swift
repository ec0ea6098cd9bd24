import PostgresNIO
/// A failure of a Baton store.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "store: \(message)" }
}

/// Which store failures pass: a database that restarts or fails over, a connection cut, a
/// transaction aborted by a conflict. Running the same idempotent work again once the store is
/// back is right for those; every other failure is for an operator.
public enum StoreFailure {
    /// Whether `error` is a transient failure of the store (see ``StoreFailure``).
    public static func isTransient(_ error: any Error) -> Bool {
        if let transaction = error as? PostgresTransactionError {
            return [transaction.beginError, transaction.closureError, transaction.commitError, transaction.rollbackError]
                .compactMap { $0 }.contains(where: isTransient)
        }
        guard let failure = error as? PSQLError else { return false }
        switch failure.code {
        case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown:
            return true
        case .server:
            // 08: connection exceptions; 57P01-57P03: the server shuts down, crashed or is starting;
            // 40001/40P01: serialization failure, deadlock.
            let state = failure.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "40001", "40P01"].contains(state)
        default:
            return false
        }
    }
}
