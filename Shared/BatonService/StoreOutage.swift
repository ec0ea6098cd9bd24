import BatonStore
import Logging
import Metrics

/// Runs `body` (idempotent work on the store), again while it fails with a transient store
/// failure (``StoreFailure/isTransient(_:)``: the database restarting, a connection cut) for up
/// to `tolerance`, backing off from 100 ms to 2 s. A database restart of a few seconds then
/// delays a consumer instead of stopping every instance; an outage longer than `tolerance`, or
/// any other error, is thrown (and stops the service: fail-stop).
@discardableResult
public func retryingStoreOutage<T: Sendable>(tolerance: Duration, what: String, logger: Logger,
                                             _ body: () async throws -> T) async throws -> T {
    let clock = ContinuousClock()
    let start = clock.now
    var delay = Duration.milliseconds(100)
    var attempts = 0
    while true {
        do {
            let value = try await body()
            if attempts > 0 {
                logger.notice("the store is back: \(what) goes on", metadata: ["after": "\(clock.now - start)", "attempts": "\(attempts + 1)"])
            }
            return value
        } catch where StoreFailure.isTransient(error) && clock.now - start < tolerance {
            attempts += 1
            Counter(label: "baton_store_retries_total").increment()
            if attempts == 1 || attempts.isMultiple(of: 10) {
                logger.warning("the store failed; \(what) is tried again", metadata: [
                    "error": "\(error)", "attempt": "\(attempts)", "gives.up.after": "\(tolerance)"])
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}
