import BatonKafka
import ServiceLifecycle

/// Keeps a producer alive for the life of the process and flushes it at shutdown.
///
/// Put it first in the service list: services shut down last-first, so everything that sends
/// through the producer has stopped before it flushes.
public struct ProducerService: Service {
    let producer: KafkaProducer

    public init(producer: KafkaProducer) {
        self.producer = producer
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await producer.shutdown()
    }
}
