import BatonService
import Dispatch
import Logging
import Synchronization
import Testing

/// A store call that never returns, even when cancelled (a query on a connection that died
/// without the client noticing): it waits until the test lets it go.
final class HungCall: Sendable {
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])
    let entered = Atomic<Int>(0)

    func hang() async {
        entered.add(1, ordering: .relaxed)
        await withCheckedContinuation { continuation in waiting.withLock { $0.append(continuation) } }
    }

    /// Lets every hung call return.
    func release() {
        for continuation in waiting.withLock({ $0.take() ?? [] }) { continuation.resume() }
    }
}

private extension Array {
    mutating func take() -> [Element]? {
        defer { self = [] }
        return self
    }
}

@Suite("Store work that fails or hangs")
struct StoreOutageTests {
    let logger = Logger(label: "test")

    @Test("work that finishes in time returns its value; its error is thrown as it was")
    func inTime() async throws {
        let value = try await abandoningAfter(.seconds(5), what: "reading") { 42 }
        #expect(value == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await abandoningAfter(.seconds(5), what: "writing") { () async throws -> Int in throw Refused() }
        }
    }

    @Test("work that hangs is abandoned after its limit with a StoreAttemptTimeout naming it")
    func hangIsAbandoned() async throws {
        let call = HungCall()
        defer { call.release() }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: StoreAttemptTimeout.self) {
            try await abandoningAfter(.milliseconds(200), what: "applying run events") { () async throws -> Int in
                await call.hang()
                return 1
            }
        }
        #expect(clock.now - start >= .milliseconds(200))
        #expect(clock.now - start < .seconds(10), "the caller was let go, not held by the hung call")
        #expect(error?.description.contains("applying run events did not finish within 0.2 seconds") == true, "\(String(describing: error))")
        #expect(isTransientStoreError(error!))
    }

    @Test("cancelling the caller of a hung call lets it go with CancellationError")
    func cancelledCaller() async throws {
        let call = HungCall()
        defer { call.release() }
        let task = Task {
            try await abandoningAfter(.seconds(60), what: "reading") { () async throws -> Int in
                await call.hang()
                return 1
            }
        }
        while call.entered.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test("a hung first attempt is abandoned and the work tried again; the late result of the abandoned one is ignored")
    func retriesAfterAHang() async throws {
        let call = HungCall()
        let attempts = Atomic<Int>(0)
        let policy = StoreOutagePolicy(tolerance: .seconds(30), attemptTimeout: .milliseconds(200))
        let value = try await retryingStoreOutage(policy, what: "applying run events", logger: logger) { () async throws -> Int in
            if attempts.add(1, ordering: .relaxed).newValue == 1 {
                await call.hang()
                return -1
            }
            return 7
        }
        #expect(value == 7)
        #expect(attempts.load(ordering: .relaxed) == 2)
        call.release()  // the abandoned attempt now finishes: nobody waits for it any more
        try await Task.sleep(for: .milliseconds(50))
    }

    @Test("a hang is tried again even when the attempt limit exceeds the outage tolerance; a second hang past the tolerance is thrown")
    func hangPastTolerance() async throws {
        let call = HungCall()
        defer { call.release() }
        let attempts = Atomic<Int>(0)
        let policy = StoreOutagePolicy(tolerance: .milliseconds(100), attemptTimeout: .milliseconds(200))
        await #expect(throws: StoreAttemptTimeout.self) {
            try await retryingStoreOutage(policy, what: "marking timers fired", logger: logger) { () async throws -> Int in
                attempts.add(1, ordering: .relaxed)
                await call.hang()
                return 1
            }
        }
        #expect(attempts.load(ordering: .relaxed) == 2)
    }

    @Test("transient store failures are retried until the work succeeds; other errors are thrown at once")
    func transientAndPermanent() async throws {
        let attempts = Atomic<Int>(0)
        let policy = StoreOutagePolicy(tolerance: .seconds(30), attemptTimeout: .seconds(5))
        let value = try await retryingStoreOutage(policy, what: "dispatching events", logger: logger) { () async throws -> Int in
            // A transient failure, as a timed-out attempt is (PostgreSQL's own are covered by the store tests).
            if attempts.add(1, ordering: .relaxed).newValue < 3 { throw StoreAttemptTimeout(what: "dispatching events", after: .seconds(1)) }
            return 3
        }
        #expect(value == 3 && attempts.load(ordering: .relaxed) == 3)

        struct RuleRefused: Error {}
        let refusals = Atomic<Int>(0)
        await #expect(throws: RuleRefused.self) {
            try await retryingStoreOutage(policy, what: "dispatching events", logger: logger) { () async throws -> Int in
                refusals.add(1, ordering: .relaxed)
                throw RuleRefused()
            }
        }
        #expect(refusals.load(ordering: .relaxed) == 1)
    }

    @Test("a blocking wait for the store from a callback thread gives up after its limit instead of holding the thread")
    func blockingWaitGivesUp() async throws {
        let call = HungCall()
        defer { call.release() }
        let outcome: Result<Int, any Error> = await withCheckedContinuation { continuation in
            // As librdkafka's rebalance callback does: a Dispatch queue, not the cooperative pool.
            DispatchQueue(label: "test-poll").async {
                continuation.resume(returning: Result {
                    try blockingOutsideCooperativePool(limit: .milliseconds(200), what: "reading the stored offsets") { () async throws -> Int in
                        await call.hang()
                        return 1
                    }
                })
            }
        }
        #expect(throws: StoreAttemptTimeout.self) { try outcome.get() }
        let answered: Result<Int, any Error> = await withCheckedContinuation { continuation in
            DispatchQueue(label: "test-poll").async {
                continuation.resume(returning: Result {
                    try blockingOutsideCooperativePool(limit: .seconds(5), what: "reading the stored offsets") { 5 }
                })
            }
        }
        #expect(try answered.get() == 5)
    }
}
