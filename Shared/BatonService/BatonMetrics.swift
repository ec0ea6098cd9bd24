import Hummingbird
import Metrics
import NIOCore
import Prometheus

/// Metrics of a Baton process: recorded with swift-metrics, served in the Prometheus text format
/// at `GET /metrics` on the process's HTTP port.
///
/// Every Baton metric is named `baton_…` (see docs/operations.md for the list); Hummingbird's
/// `MetricsMiddleware` adds the HTTP request metrics (`hb_requests`, `http_server_request_duration`).
public enum BatonMetrics {
    /// The registry every metric of this process is recorded in.
    public static let registry = PrometheusCollectorRegistry()

    /// Makes swift-metrics record into ``registry``. Call once per process, before any metric is
    /// recorded (`serviceMain` does).
    public static func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // An acknowledged send takes a fraction of a millisecond on a healthy cluster: the
        // default buckets (from 5 ms) would put every one in the first.
        factory.durationHistogramBuckets["baton_kafka_produce_duration_seconds"] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// The current value of every metric, in the Prometheus text exposition format.
    public static func exposition() -> ByteBuffer {
        ByteBuffer(bytes: registry.emitToBuffer())
    }

    /// Adds `GET /metrics` to `router`.
    public static func register(on router: Router<BasicRequestContext>) {
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: exposition()))
        }
    }
}
