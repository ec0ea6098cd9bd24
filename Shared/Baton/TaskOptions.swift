import BatonProtocol

/// Options of `io.runTask`.
public struct TaskOptions: Sendable {
    /// Display name in the runs API (defaults to the key).
    public var name: String?
    /// Properties shown with the task.
    public var properties: JSONValue?
    /// Retries after a failure, each after a durable back-off; `nil`: the first failure is final.
    public var retry: RetryPolicy?

    public init(name: String? = nil, properties: JSONValue? = nil, retry: RetryPolicy? = nil) {
        self.name = name
        self.properties = properties
        self.retry = retry
    }
}

/// An error a task body throws to steer retries: ``doNotRetry(_:)`` ends the task at once,
/// ``retryAfter(_:_:)`` overrides the policy's back-off (still within its attempt limit).
public struct TaskFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    var retryable: Bool
    var retryAfter: Duration?

    /// A failure that no retry can fix (bad input, permission denied).
    public static func doNotRetry(_ message: String) -> TaskFailure {
        TaskFailure(message: message, retryable: false, retryAfter: nil)
    }

    /// A failure worth retrying after `delay` (e.g. from a `Retry-After` header).
    public static func retryAfter(_ delay: Duration, _ message: String) -> TaskFailure {
        TaskFailure(message: message, retryable: true, retryAfter: delay)
    }

    public var description: String { message }
}
