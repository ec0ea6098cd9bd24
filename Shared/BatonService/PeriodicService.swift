import Logging
import ServiceLifecycle

/// Runs `work` every `interval` until graceful shutdown. A failing round is logged and the next
/// round tries again: for loops over durable state (timers, fetches, schedules, stuck runs) whose
/// work is safe to repeat.
public struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let wakeUp: WakeUp?
    let work: @Sendable () async throws -> Void

    /// - Parameter wakeUp: also runs a round as soon as it is signalled (signals that come during
    ///   a round make one more round), instead of only every `interval`.
    public init(_ name: String, every interval: Duration, wakeUp: WakeUp? = nil, logger: Logger,
                work: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.wakeUp = wakeUp
        self.logger = logger
        self.work = work
    }

    public func run() async throws {
        if let wakeUp { return try await run(wakingWith: wakeUp) }
        // Cancelled (the group is going down without a graceful shutdown): stop, never spin.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            guard await round() else { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Runs the work once; a failure is logged (the next round tries again). `false` when the
    /// work was cancelled: the loop stops.
    private func round() async -> Bool {
        do {
            try await work()
        } catch is CancellationError {
            return false
        } catch {
            logger.error("\(name) failed; retrying", metadata: ["error": "\(error)"])
        }
        return true
    }

    /// Rounds on each signal of `wakeUp`, and at least every `interval` (a ticker signals it).
    private func run(wakingWith wakeUp: WakeUp) async throws {
        let interval = interval
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: interval)
                        wakeUp.signal()
                    }
                }
                for await _ in wakeUp.signals {
                    guard await round() else { break }
                }
                group.cancelAll()
            }
        }
    }
}

/// A signal that wakes a ``PeriodicService`` before its next round is due. Signals coalesce:
/// any number of them while a round runs make one more round.
public final class WakeUp: Sendable {
    /// The stream the service's loop (its only consumer) reads.
    let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (signals, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a round as soon as possible.
    public func signal() {
        continuation.yield()
    }
}
