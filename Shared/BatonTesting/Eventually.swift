import Foundation

/// A condition that did not hold before its deadline.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public var what: String
    public var deadline: Duration
    public var lastError: String?
    public var description: String {
        "\(what) did not happen within \(deadline)" + (lastError.map { "; last error: \($0)" } ?? "")
    }
}

/// An error that ends ``eventually(_:deadline:every:_:)`` at once instead of counting as
/// "not yet": waiting longer cannot help (for example, the process being waited for exited).
public protocol StopWaiting: Error {}

/// A child process exited while a test waited for it.
public struct ProcessExited: StopWaiting, CustomStringConvertible {
    public var name: String
    public var status: Int32
    public var outputTail: String
    public var description: String { "\(name) exited with status \(status); last output:\n\(outputTail)" }
}

/// Polls `condition` until it returns a value, or throws `DeadlineExceeded` after `deadline`.
///
/// Errors thrown by `condition` count as "not yet" and the last one is reported on timeout,
/// except ``StopWaiting`` errors, which are rethrown at once.
public func eventually<T>(
    _ what: String,
    deadline: Duration = .seconds(30),
    every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var lastError: String?
    while true {
        do {
            if let value = try await condition() { return value }
        } catch let error as any StopWaiting {
            throw error
        } catch {
            lastError = "\(error)"
        }
        if clock.now >= end { throw DeadlineExceeded(what: what, deadline: deadline, lastError: lastError) }
        try await Task.sleep(for: interval)
    }
}
