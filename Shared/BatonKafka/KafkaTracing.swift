import Tracing

/// Carries a trace context in Kafka record headers (W3C `traceparent`/`tracestate` with the
/// OpenTelemetry propagator), so a trace goes on across processes: HTTP request, event,
/// dispatch, slices, task results.
struct KafkaHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [KafkaHeader]) {
        carrier.removeAll { $0.name == key }
        carrier.append(KafkaHeader(name: key, string: value))
    }
}

struct KafkaHeadersExtractor: Extractor {
    func extract(key: String, from carrier: [KafkaHeader]) -> String? {
        carrier.last { $0.name == key }.flatMap { String(validating: $0.value, as: UTF8.self) }
    }
}

extension KafkaRecord {
    /// The trace context the producer of this record sent along (empty without a tracer).
    public var traceContext: ServiceContext { .extracted(from: headers) }
}

extension ServiceContext {
    /// The context propagated in `headers` (as a trace parent stored with a run), or an empty one.
    public static func extracted(from headers: [KafkaHeader]) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: KafkaHeadersExtractor())
        return context
    }
}
