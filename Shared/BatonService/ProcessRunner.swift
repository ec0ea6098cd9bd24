import Logging
import ServiceLifecycle
import UnixSignals

/// Bootstraps logging for a Baton executable. Call once, from `main`, never from a library.
public func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

/// Runs `services` until SIGTERM or SIGINT, then shuts them down gracefully (last first).
public func runUntilSignalled(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(
        configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
    try await group.run()
}
