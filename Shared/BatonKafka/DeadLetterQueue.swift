import Crypto
import Foundation
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

    /// Header with the original record's size in bytes, when the dead letter had to be trimmed.
    public static let originalSizeHeader = "baton-dead-letter-original-bytes"
    /// Largest dead letter sent whole (key, value and headers); larger ones are trimmed so they
    /// fit under the producer's and the broker's `message.max.bytes` (1,000,000 by default).
    public static let maxWholeBytes = 900_000
    /// What is kept of a trimmed record's value.
    public static let trimmedValueBytes = 64 << 10

    /// Publishes `record` with `reason`; returns once the broker acknowledged it. A record too
    /// large to send whole with Baton's headers is trimmed (the first 64 KiB of its value, no
    /// original headers) and the reason says so with its size and SHA-256. When even that is not
    /// acknowledged, the record is skipped with an error line and
    /// `baton_dead_letters_failed_total`: the partition always moves on.
    public func send(_ record: KafkaRecord, reason: String) async throws {
        Counter(label: "baton_dead_letters_total", dimensions: [("consumer", consumerName), ("topic", record.topic)]).increment()
        logger.warning("record sent to dead-letter topic", metadata: [
            "kafka.topic": "\(record.topic)", "kafka.partition": "\(record.partition)",
            "kafka.offset": "\(record.offset)", "kafka.bytes": "\(Self.size(of: record))", "reason": "\(reason)",
        ])
        let whole = Self.size(of: record) + reason.utf8.count + 512 <= Self.maxWholeBytes
        if whole {
            do {
                try await publish(record, value: record.value, headers: record.headers, reason: reason)
                return
            } catch {
                logger.warning("dead letter not accepted whole; sending it trimmed", metadata: ["error": "\(error)"])
            }
        }
        let digest = SHA256.hash(data: record.value).map { String(format: "%02x", $0) }.joined()
        let trimmedReason = String(reason.prefix(16 << 10))
            + " (trimmed: the record had \(record.value.count) value bytes and \(record.headers.count) headers, \(Self.size(of: record)) bytes in all; value SHA-256 \(digest); kept the first \(min(record.value.count, Self.trimmedValueBytes)) value bytes and no original headers)"
        do {
            try await publish(record, value: Array(record.value.prefix(Self.trimmedValueBytes)), headers: [
                KafkaHeader(name: Self.originalSizeHeader, string: "\(Self.size(of: record))"),
            ], reason: trimmedReason)
        } catch {
            Counter(label: "baton_dead_letters_failed_total", dimensions: [("consumer", consumerName), ("topic", record.topic)]).increment()
            logger.error("record skipped: not even its trimmed dead letter was accepted", metadata: [
                "kafka.topic": "\(record.topic)", "kafka.partition": "\(record.partition)", "kafka.offset": "\(record.offset)",
                "reason": "\(reason.prefix(1000))", "error": "\(error)",
            ])
        }
    }

    private func publish(_ record: KafkaRecord, value: [UInt8], headers: [KafkaHeader], reason: String) async throws {
        try await producer.send(
            topic: topic, key: record.key.map { Array($0.prefix(16 << 10)) }, value: value,
            headers: headers + [
                KafkaHeader(name: Self.reasonHeader, string: reason),
                KafkaHeader(name: Self.originHeader, string: "\(record.topic)/\(record.partition)/\(record.offset)"),
                KafkaHeader(name: Self.consumerHeader, string: consumerName),
            ])
    }

    /// Key, value and headers of `record`, in bytes.
    static func size(of record: KafkaRecord) -> Int {
        (record.key?.count ?? 0) + record.value.count + record.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.count + 8 }
    }
}
