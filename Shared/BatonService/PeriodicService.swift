import Logging
import ServiceLifecycle

/// Runs `work` every `interval` until graceful shutdown. A failing round is logged and the next
/// round tries again: for loops over durable state (timers, fetches, schedules, stuck runs) whose
/// work is safe to repeat.
public struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let work: @Sendable () async throws -> Void

    public init(_ name: String, every interval: Duration, logger: Logger, work: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.logger = logger
        self.work = work
    }

    public func run() async throws {
        // Cancelled (the group is going down without a graceful shutdown): stop, never spin.
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await work()
            } catch is CancellationError {
                return
            } catch {
                logger.error("\(name) failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
