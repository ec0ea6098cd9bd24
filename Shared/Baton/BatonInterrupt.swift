/// Thrown by `io` to end the current execution slice (a wait, a retry back-off, a yield).
///
/// - Important: never catch it and carry on. Let it propagate out of `run`; Baton resumes the
///   run later. Use ``isBatonInterrupt(_:)`` or `io.try` in `catch` blocks that must not swallow
///   it. A run whose code swallows it fails with an error that says so.
public struct BatonInterrupt: Error, Sendable, CustomStringConvertible {
    /// Why the slice ends.
    public var reason: String
    public var description: String { "Baton interrupt (\(reason)): rethrow it; the run resumes later" }
}

/// Whether `error` is the interrupt that ends an execution slice, which must be rethrown.
public func isBatonInterrupt(_ error: any Error) -> Bool {
    error is BatonInterrupt
}

/// A misuse of the `io` API in job code: what is wrong and how to fix it.
public struct JobDefinitionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
