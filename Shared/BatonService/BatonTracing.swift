import BatonProtocol
import OTel
import ServiceLifecycle
import Synchronization

/// Distributed tracing of a Baton process: spans are recorded with swift-distributed-tracing
/// (HTTP requests, Kafka sends and consumes, slices, tasks) and exported over OTLP/HTTP by
/// swift-otel when a collector is configured with the standard OpenTelemetry variables:
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and optionally
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, `http/json`), `OTEL_TRACES_SAMPLER`,
/// `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_RESOURCE_ATTRIBUTES`. Without an endpoint nothing is
/// recorded. The trace context travels in `traceparent` HTTP and Kafka headers.
///
/// Only traces go to OTel: metrics stay with Prometheus (``BatonMetrics``) and logs with
/// swift-log, so the `OTEL_METRICS_*` and `OTEL_LOGS_*` variables are ignored.
public enum BatonTracing {
    /// The exporter's service, run beside the process's services by `runUntilSignalled`
    /// (first in, so it stops last and flushes the spans of the shutdown).
    static let exporter = Mutex<(any Service)?>(nil)

    /// Whether `environment` configures a trace collector.
    public static func isConfigured(_ environment: [String: String]) -> Bool {
        guard environment["OTEL_SDK_DISABLED"]?.lowercased() != "true" else { return false }
        return environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil
    }

    /// Bootstraps the tracer when `environment` configures a collector (once per process;
    /// `serviceMain` does it).
    /// - Throws: `ValidationError` naming the variables when swift-otel refuses them.
    public static func bootstrap(serviceName: String, environment: [String: String]) throws(ValidationError) {
        guard isConfigured(environment) else { return }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.traces.enabled = true
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.diagnosticLogLevel = .warning
        let tracesOnly = environment.filter { !$0.key.hasPrefix("OTEL_METRIC") && !$0.key.hasPrefix("OTEL_LOGS") && !$0.key.hasPrefix("OTEL_BLRP") }
        do {
            let service = try OTel.bootstrap(configuration: configuration, environment: tracesOnly)
            exporter.withLock { $0 = service }
        } catch {
            throw ValidationError(path: "OTEL_EXPORTER_OTLP_ENDPOINT", message: "the OpenTelemetry settings were refused: \(error)")
        }
    }
}
