import BatonStore
import Logging
import Metrics
import Synchronization

/// How a service rides out a store that fails or hangs: work on the store is tried again while
/// it fails transiently, for up to `tolerance`, and each attempt that takes longer than
/// `attemptTimeout` is abandoned and counted as a transient failure.
public struct StoreOutagePolicy: Sendable {
    /// How long transient failures are retried before the work's error is thrown (fail-stop).
    public var tolerance: Duration
    /// How long one attempt may take before it is abandoned (a call hung in the database client).
    public var attemptTimeout: Duration

    public init(tolerance: Duration, attemptTimeout: Duration) {
        self.tolerance = tolerance
        self.attemptTimeout = attemptTimeout
    }
}

/// Store work that did not finish within its time: the attempt was abandoned (see
/// ``abandoningAfter(_:what:_:)``). Transient: the work is idempotent and is tried again.
public struct StoreAttemptTimeout: Error, CustomStringConvertible, Sendable {
    /// What was attempted.
    public var what: String
    /// How long it was given.
    public var after: Duration

    public init(what: String, after: Duration) {
        self.what = what
        self.after = after
    }

    public var description: String {
        "\(what) did not finish within \(after) and was abandoned: the database, or the connection to it, hangs. "
            + "It is tried again; if this repeats, check the database's health and the network to it"
    }
}

/// Runs `body` in a task of its own and returns its result, or throws ``StoreAttemptTimeout``
/// once `limit` has passed. The task is then cancelled and left behind: a call stuck in a
/// database client (a connection that died without the client noticing) cannot stop its caller
/// forever. Only for idempotent work, since the abandoned task may still finish later.
public func abandoningAfter<T: Sendable>(_ limit: Duration, what: String,
                                         _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let call = AbandonableCall<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            call.start(continuation, limit: limit, what: what, body)
        }
    } onCancel: {
        call.cancel()
    }
}

/// The state of one ``abandoningAfter(_:what:_:)`` call: the waiting caller, resumed once (by
/// the result, the time limit or cancellation), and the tasks racing to resume it.
private final class AbandonableCall<T: Sendable>: Sendable {
    private struct State {
        var caller: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var cancelled = false
    }

    private let state = Mutex(State())

    func start(_ caller: CheckedContinuation<T, any Error>, limit: Duration, what: String,
               _ body: @escaping @Sendable () async throws -> T) {
        let cancelled = state.withLock { state -> Bool in
            state.caller = caller
            return state.cancelled
        }
        if cancelled { return resume(throwing: CancellationError()) }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            self.state.withLock { $0.timer }?.cancel()
            self.resume(with: result)
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            work.cancel()
            self.resume(throwing: StoreAttemptTimeout(what: what, after: limit))
        }
        let (stop, finished) = state.withLock { state -> (Bool, Bool) in
            state.work = work
            state.timer = timer
            return (state.cancelled, state.caller == nil)
        }
        // Cancelled meanwhile: stop both. Finished (or timed out) meanwhile: the timer has no one to wake.
        if stop {
            work.cancel()
            timer.cancel()
        } else if finished {
            timer.cancel()
        }
    }

    func cancel() {
        let (work, timer) = state.withLock { state in
            state.cancelled = true
            return (state.work, state.timer)
        }
        work?.cancel()
        timer?.cancel()
        resume(throwing: CancellationError())
    }

    private func resume(throwing error: any Error) { resume(with: .failure(error)) }

    private func resume(with result: Result<T, any Error>) {
        state.withLock { $0.caller.take() }?.resume(with: result)
    }
}

/// Whether `error` is worth trying the work again for: a transient store failure
/// (``StoreFailure/isTransient(_:)``) or an abandoned attempt.
public func isTransientStoreError(_ error: any Error) -> Bool {
    error is StoreAttemptTimeout || StoreFailure.isTransient(error)
}

/// Runs `body` (idempotent work on the store), again while it fails with a transient store
/// failure (``isTransientStoreError(_:)``: the database restarting, a connection cut, an
/// attempt abandoned after `policy.attemptTimeout`) for up to `policy.tolerance`, backing off
/// from 100 ms to 2 s. A database restart of a few seconds then delays a consumer instead of
/// stopping every instance; an outage longer than the tolerance, or any other error, is thrown
/// (and stops the service: fail-stop). A first attempt that hangs is always tried once more.
@discardableResult
public func retryingStoreOutage<T: Sendable>(_ policy: StoreOutagePolicy, what: String, logger: Logger,
                                             _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let clock = ContinuousClock()
    let start = clock.now
    var delay = Duration.milliseconds(100)
    var attempts = 0
    while true {
        do {
            let value = try await abandoningAfter(policy.attemptTimeout, what: what, body)
            if attempts > 0 {
                logger.notice("the store is back: \(what) goes on", metadata: ["after": "\(clock.now - start)", "attempts": "\(attempts + 1)"])
            }
            return value
        } catch where isTransientStoreError(error) && (clock.now - start < policy.tolerance || (attempts == 0 && error is StoreAttemptTimeout)) {
            attempts += 1
            Counter(label: "baton_store_retries_total").increment()
            if error is StoreAttemptTimeout {
                Counter(label: "baton_store_abandoned_attempts_total").increment()
            }
            if attempts == 1 || attempts.isMultiple(of: 10) || error is StoreAttemptTimeout {
                logger.warning("the store failed; \(what) is tried again", metadata: [
                    "error": "\(error)", "attempt": "\(attempts)", "gives.up.after": "\(policy.tolerance)"])
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}
