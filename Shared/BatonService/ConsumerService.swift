import BatonKafka
import Logging
import Metrics
import ServiceLifecycle
import Tracing

/// Runs a Kafka consumer loop as a ServiceLifecycle `Service`.
///
/// On graceful shutdown it stops taking new records, lets the record in hand finish, commits and
/// leaves the group. The handler is responsible for committing (or storing) each record's offset
/// after its durable effect, and for never throwing for one bad record: a thrown error stops
/// the service (and the process), which is for failures that retrying cannot fix.
public struct ConsumerService: Service {
    private let consumer: KafkaConsumer
    private let handler: @Sendable (KafkaRecord) async throws -> Void
    private let logger: Logger

    public init(consumer: KafkaConsumer, logger: Logger, handler: @escaping @Sendable (KafkaRecord) async throws -> Void) {
        self.consumer = consumer
        self.logger = logger
        self.handler = handler
    }

    public func run() async throws {
        let consumer = self.consumer
        try await withGracefulShutdownHandler {
            for try await record in consumer {
                // Continues the producer's trace (when a tracer is bootstrapped).
                try await withSpan("\(record.topic) process", context: record.traceContext, ofKind: .consumer) { span in
                    span.attributes["messaging.system"] = "kafka"
                    span.attributes["messaging.destination.name"] = record.topic
                    span.attributes["messaging.kafka.offset"] = Int(record.offset)
                    try await handler(record)
                }
            }
        } onGracefulShutdown: {
            consumer.stopDelivering()
        }
        await consumer.close()
        logger.info("consumer stopped")
    }
}

/// Consumes a topic in batches: each call of `handler` gets everything one poll returned (up to
/// `maxBatch` records), so a stateful consumer can apply them in one transaction with their
/// offsets. After the handler returns, each partition's offset is stored once for the group's
/// commits (what tools show as consumer lag). Stops on graceful shutdown, after the batch in hand.
public struct BatchConsumerService: Service {
    private let consumer: KafkaConsumer
    private let maxBatch: Int
    private let handler: @Sendable ([KafkaRecord]) async throws -> Void
    private let logger: Logger

    public init(consumer: KafkaConsumer, maxBatch: Int = 500, logger: Logger,
                handler: @escaping @Sendable ([KafkaRecord]) async throws -> Void) {
        self.consumer = consumer
        self.maxBatch = max(1, maxBatch)
        self.logger = logger
        self.handler = handler
    }

    public func run() async throws {
        let consumer = self.consumer
        let batchSize = Metrics.Recorder(label: "baton_consumer_batch_records")
        do {
            try await withGracefulShutdownHandler {
                while true {
                    let batch = try await consumer.nextBatch(max: maxBatch)
                    if batch.isEmpty { break }
                    batchSize.record(batch.count)
                    try await handler(batch)
                    var next: [TopicPartition: Int64] = [:]
                    for record in batch {
                        let partition = TopicPartition(topic: record.topic, partition: record.partition)
                        next[partition] = max(next[partition] ?? 0, record.offset + 1)
                    }
                    // A partition revoked meanwhile is refused: its next owner starts from its store.
                    for (partition, offset) in next { try? consumer.storeOffset(partition, next: offset) }
                }
            } onGracefulShutdown: {
                consumer.stopDelivering()
            }
        } catch {
            // Leave the group at once rather than after the session timeout.
            await consumer.close()
            throw error
        }
        await consumer.close()
        logger.info("consumer stopped")
    }
}
