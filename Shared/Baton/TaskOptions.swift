import BatonProtocol

/// Options of `io.runTask`.
public struct TaskOptions: Sendable {
    /// Display name in the runs API (defaults to the key).
    public var name: String?
    /// Properties shown with the task.
    public var properties: JSONValue?
    /// Retries after a failure, each after a durable back-off; `nil`: the first failure is final.
    public var retry: RetryPolicy?
    /// Runs the task once in the whole scope (not just the run): a task that completed under
    /// this key anywhere in the scope returns that output; one that failed is executed again
    /// (see ``skipFailure``); two runs racing on the key execute it once.
    public var deduplicationKey: String?
    /// Where ``deduplicationKey`` is unique; default `.project`.
    public var deduplicationScope: DeduplicationScope
    /// With a deduplication key: when a task failed under the key, return that failure instead
    /// of executing again (`IO.runTaskSkippingFailure` returns `nil`; `runTask` throws
    /// `EarlierFailure`).
    public var skipFailure: Bool
    /// Runs even when the slice's time budget is used up (Baton's own hooks, which must run in
    /// the slice that decided the run's outcome).
    var ignoresSliceBudget = false

    public init(name: String? = nil, properties: JSONValue? = nil, retry: RetryPolicy? = nil,
                deduplicationKey: String? = nil, deduplicationScope: DeduplicationScope = .project, skipFailure: Bool = false) {
        self.name = name
        self.properties = properties
        self.retry = retry
        self.deduplicationKey = deduplicationKey
        self.deduplicationScope = deduplicationScope
        self.skipFailure = skipFailure
    }
}

/// A task with `skipFailure` found a failure stored under its deduplication key and did not run.
public struct EarlierFailure: Error, Sendable, CustomStringConvertible {
    /// The error of the task that failed under the key.
    public var error: String
    public var description: String { "a task failed earlier under this deduplication key: \(error)" }
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
