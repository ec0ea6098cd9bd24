import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Bootstraps logging for a Baton executable. Call once, from `main`, never from a library.
public func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Runs `services` until SIGTERM or SIGINT, then shuts them down gracefully (last first):
/// consumers stop taking records, in-flight work finishes (or yields) and is committed. The
/// trace exporter (``BatonTracing``), when there is one, runs first and stops last.
///
/// - Parameter shutdownDeadline: how long the graceful shutdown may take. Past it the services
///   are cancelled (work not committed is delivered again after the restart) and this throws,
///   so the process exits non-zero: a supervisor sees that the drain did not finish.
public func runUntilSignalled(_ services: [any Service], shutdownDeadline: Duration = .seconds(30), logger: Logger) async throws {
    let tracing = BatonTracing.exporter.withLock { $0 }.map { [$0] } ?? []
    var configuration = ServiceGroupConfiguration(
        services: (tracing + services).map { .init(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger)
    configuration.maximumGracefulShutdownDuration = shutdownDeadline
    configuration.maximumCancellationDuration = .seconds(5)
    // Past the deadline and the cancellation allowance, the process ends whatever it is doing.
    let watchdogDeadline = shutdownDeadline + .seconds(7)
    ShutdownWatchdog.defaultDeadline = watchdogDeadline
    configuration.services = configuration.services.map {
        .init(service: FailStopService(base: $0.service, deadline: watchdogDeadline, logger: logger))
    }
    let signals = [SIGTERM, SIGINT].map { signalNumber in
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { ShutdownWatchdog.arm(after: watchdogDeadline, reason: "signal \(signalNumber)") }
        source.resume()
        return source
    }
    defer { signals.forEach { $0.cancel() } }
    try await ServiceGroup(configuration: configuration).run()
    logger.info("stopped")
}
