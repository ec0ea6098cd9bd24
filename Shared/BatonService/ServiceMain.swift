import BatonProtocol
import Foundation

/// Runs the body of a Baton executable's `main`. An error that ends it is reported on standard
/// error as one line that says what went wrong, and the process exits with a status operators
/// and supervisors can act on — instead of the runtime's crash report for an uncaught error.
///
/// Exit statuses: 0 after a clean shutdown; 78 (`EX_CONFIG`) for invalid configuration: fix it
/// before restarting; 1 for anything else (e.g. the broker did not answer at start-up): a
/// supervisor may restart the process.
///
/// It also bootstraps swift-metrics into ``BatonMetrics/registry`` (served at `GET /metrics`)
/// and, when a collector is configured, the tracer (``BatonTracing``).
public func serviceMain(_ name: String, _ body: @Sendable () async throws -> Void) async -> Never {
    BatonMetrics.bootstrap()
    do {
        try BatonTracing.bootstrap(serviceName: name, environment: ProcessInfo.processInfo.environment)
        try await body()
        exit(0)
    } catch let error as ValidationError {
        FileHandle.standardError.write(Data("\(name): invalid configuration: \(error)\n".utf8))
        exit(78)
    } catch {
        FileHandle.standardError.write(Data("\(name): stopped: \(error)\n".utf8))
        exit(1)
    }
}
