import Logging
import Metrics

/// Sends records no consumer can process to the dead-letter topic, with the reason in headers.
///
/// The original key, value and headers are kept; Baton adds `baton-dead-letter-reason`,
/// `baton-dead-letter-origin` (`topic/partition/offset`) and `baton-dead-letter-consumer`.
public struct DeadLetterQueue: Sendable {
    /// Header with the reason the record was rejected.
    public static let reasonHeader = "baton-dead-letter-reason"
    /// Header with `topic/partition/offset` of the original record.
    public static let originHeader = "baton-dead-letter-origin"
    /// Header with the name of the consumer that rejected it.
    public static let consumerHeader = "baton-dead-letter-consumer"

    let producer: KafkaProducer
    let topic: String
    let consumerName: String
    let logger: Logger

    public init(producer: KafkaProducer, topic: String, consumerName: String, logger: Logger) {
        self.producer = producer
        self.topic = topic
        self.consumerName = consumerName
        self.logger = logger
    }

    /// Decodes `record` with `decode`; when that fails, dead-letters the record with
    /// "invalid `what`: error" and returns `nil`, so the caller moves on.
    public func decode<T>(_ record: KafkaRecord, as what: String, _ decode: (KafkaRecord) throws -> T) async throws -> T? {
        do {
            return try decode(record)
        } catch {
            try await send(record, reason: "invalid \(what): \(error)")
            return nil
        }
    }

    /// Publishes `record` with `reason`; returns once the broker acknowledged it.
    public func send(_ record: KafkaRecord, reason: String) async throws {
        Counter(label: "baton_dead_letters_total", dimensions: [("consumer", consumerName), ("topic", record.topic)]).increment()
        logger.warning("record sent to dead-letter topic", metadata: [
            "kafka.topic": "\(record.topic)", "kafka.partition": "\(record.partition)",
            "kafka.offset": "\(record.offset)", "reason": "\(reason)",
        ])
        try await producer.send(
            topic: topic, key: record.key, value: record.value,
            headers: record.headers + [
                KafkaHeader(name: Self.reasonHeader, string: reason),
                KafkaHeader(name: Self.originHeader, string: "\(record.topic)/\(record.partition)/\(record.offset)"),
                KafkaHeader(name: Self.consumerHeader, string: consumerName),
            ])
    }
}
