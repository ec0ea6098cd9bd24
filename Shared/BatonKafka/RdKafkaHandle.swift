import CRdKafka
import Logging
import Synchronization
import Foundation

/// Owns one `rd_kafka_t` and destroys it in `deinit`.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe ("all librdkafka API
/// calls are thread safe" except where noted); the pointer itself is immutable after `init`,
/// and `deinit` runs only once no Swift reference (and so no caller) remains.
final class RdKafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    let kind: rd_kafka_type_t

    /// Creates a client. Takes ownership of `conf` (librdkafka does, on success).
    init(kind: rd_kafka_type_t, properties: [String: String], events: Int32) throws(KafkaError) {
        // librdkafka's own log lines become LOG events on the polled queue, so they reach
        // swift-log (see `forwardLog`) instead of stderr.
        var properties = properties
        properties["log.queue"] = "true"
        let conf = try Self.makeConf(properties)
        rd_kafka_conf_set_events(conf, events | Int32(RD_KAFKA_EVENT_LOG))
        var errstr = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(kind, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(.configuration, "cannot create Kafka client: \(cString(errstr))")
        }
        self.pointer = rk
        self.kind = kind
        _ = rd_kafka_set_log_queue(rk, nil)  // the main queue (forwarded to the consumer queue)
    }

    deinit {
        rd_kafka_destroy(pointer)
    }

    static func makeConf(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(.configuration, "Kafka property '\(key)'='\(value)' rejected: \(cString(errstr))")
            }
        }
        return conf
    }
}

/// Error name and text of a librdkafka error code.
func describe(_ code: rd_kafka_resp_err_t) -> (name: String, text: String) {
    (String(cString: rd_kafka_err2name(code)), String(cString: rd_kafka_err2str(code)))
}

/// Makes a `KafkaError` from a librdkafka error code.
func kafkaError(_ code: KafkaError.Code, _ context: String, _ err: rd_kafka_resp_err_t, retriable: Bool = false) -> KafkaError {
    let (name, text) = describe(err)
    return KafkaError(code, "\(context): \(text)", librdkafkaError: name, isRetriable: retriable)
}

/// A stop flag shared with a polling thread.
final class StopFlag: Sendable {
    private let state = Mutex(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}



/// The text in a NUL-terminated C buffer.
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Owns a `rd_kafka_queue_t` and destroys it in `deinit`.
///
/// `@unchecked Sendable`: librdkafka queues are thread-safe; the pointer is immutable, and the
/// queue keeps its client alive through `owner`, so it is destroyed before the client.
final class RdKafkaQueue: @unchecked Sendable {
    let pointer: OpaquePointer
    let owner: RdKafkaHandle
    init(_ pointer: OpaquePointer, owner: RdKafkaHandle) {
        self.pointer = pointer
        self.owner = owner
    }
    deinit { rd_kafka_queue_destroy(pointer) }
}

/// Forwards a librdkafka LOG event to `logger`. Syslog levels 0–2 are errors; 3 (connection
/// failures, which librdkafka retries) and 4 are warnings; 5 and up are debug.
func forwardLog(_ event: OpaquePointer, to logger: Logger) {
    var facility: UnsafePointer<CChar>?
    var text: UnsafePointer<CChar>?
    var level: Int32 = 0
    guard rd_kafka_event_log(event, &facility, &text, &level) == 0 else { return }
    let message = text.map { String(cString: $0) } ?? ""
    let metadata: Logger.Metadata = ["librdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
    switch level {
    case ...2: logger.error("librdkafka: \(message)", metadata: metadata)
    case 3, 4: logger.warning("librdkafka: \(message)", metadata: metadata)
    default: logger.debug("librdkafka: \(message)", metadata: metadata)
    }
}
