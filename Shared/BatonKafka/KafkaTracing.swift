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

    /// The record's W3C `traceparent` header, if it has one (to store, and continue later with
    /// ``ServiceContext/continuing(traceParent:)``).
    public var traceParent: String? { KafkaHeadersExtractor().extract(key: KafkaHeader.traceParentName, from: headers) }
}

extension KafkaHeader {
    /// The W3C trace-context header.
    public static let traceParentName = "traceparent"
}

extension ServiceContext {
    /// The context of a stored W3C `traceParent` (see ``KafkaRecord/traceParent``).
    public static func continuing(traceParent: String) -> ServiceContext {
        .extracted(from: [KafkaHeader(name: KafkaHeader.traceParentName, string: traceParent)])
    }

    /// The context propagated in `headers`, or an empty one.
    public static func extracted(from headers: [KafkaHeader]) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(headers, into: &context, using: KafkaHeadersExtractor())
        return context
    }
}
