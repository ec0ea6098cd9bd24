import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Whether this process can do its work: `GET /health` answers 503 with the reason once a
/// service stopped for good (fail-stop: the process is on its way out).
public enum BatonHealth {
    private static let failure = Mutex<String?>(nil)

    /// Why the process is unhealthy, or `nil` while it is healthy.
    public static var problem: String? { failure.withLock { $0 } }

    /// Marks the process unhealthy (the first reason stays).
    public static func markUnhealthy(_ reason: String) {
        failure.withLock { if $0 == nil { $0 = reason } }
    }
}

/// Ends the process when a shutdown overruns. A service stuck in a blocking call keeps a
/// ServiceGroup (and so the process) alive forever, still holding its port and its partitions:
/// half-alive. Once armed, the watchdog exits the process with status 1 after `after`, whatever
/// state it is in, so a supervisor restarts it.
public enum ShutdownWatchdog {
    private static let armed = Mutex(false)
    private static let deadline = Mutex<Duration>(.seconds(37))

    /// The deadline `runUntilSignalled` arms it with: the shutdown deadline plus the
    /// cancellation allowance and a margin.
    public static var defaultDeadline: Duration {
        get { deadline.withLock { $0 } }
        set { deadline.withLock { $0 = newValue } }
    }

    /// Starts the countdown (once; later calls do nothing). Runs on a thread of its own, not on
    /// the cooperative pool, so a starved or blocked pool cannot hold it up.
    public static func arm(after deadline: Duration, reason: String) {
        let first = armed.withLock { armed -> Bool in
            defer { armed = true }
            return !armed
        }
        guard first else { return }
        let thread = Thread {
            Thread.sleep(forTimeInterval: deadline / .seconds(1))
            FileHandle.standardError.write(Data("shutdown did not finish within \(deadline) after \(reason): exiting with status 1\n".utf8))
            exit(1)
        }
        thread.name = "baton-shutdown-watchdog"
        thread.start()
    }
}

/// Runs a service so that its failure is fail-stop: one log line saying what stopped and why,
/// `/health` unhealthy, and the shutdown watchdog armed; then the error ends the service group.
struct FailStopService: Service, CustomStringConvertible {
    let base: any Service
    /// `nil`: ``ShutdownWatchdog/defaultDeadline`` when the service fails.
    let deadline: Duration?
    let logger: Logger

    var description: String { "\(base)" }

    /// How long a failed process keeps answering `/health` with 503 before it shuts down.
    static let noticePeriod: Duration = .seconds(2)

    func run() async throws {
        do {
            try await base.run()
        } catch {
            let reason = "\(base) stopped: \(error)"
            ShutdownWatchdog.arm(after: deadline ?? ShutdownWatchdog.defaultDeadline, reason: reason)
            // Nested services (an application's services inside the process's group) report a
            // failure once: where it happened.
            if !(error is CancellationError), BatonHealth.problem == nil {
                logger.critical("service stopped for good; the process exits", metadata: ["service": "\(base)", "error": "\(error)"])
                BatonHealth.markUnhealthy(reason)
                // Serve `/health` 503 for a moment before the listener closes, so health checks
                // and load balancers see why this instance goes away.
                try? await Task.sleep(for: Self.noticePeriod)
            }
            throw error
        }
    }
}
