import BatonKafka
import Foundation
import Histogram
import Logging

/// The Kafka floor on the stack's own broker, measured with the clients Baton uses (librdkafka,
/// idempotent, acks=all, embedded-broker profile): what one acknowledged produce and one hop
/// (produce until a consumer receives the record) cost, so the stack's latencies can be read
/// as multiples of them.
enum KafkaFloor {
    /// Size of each record's value: about a task-completion run event.
    static let recordBytes = 300
    /// Produces and hops made before those recorded (connection set-up, the consumer's group join).
    static let produceWarmup = 100
    static let hopWarmup = 20

    /// Measures `produces` sequential acked produces, then `hops` sequential hops, each on a topic
    /// of its own with one partition.
    /// - Throws: ``LoadError/floor(_:)`` or ``LoadError/deadline(_:)`` saying what failed.
    static func measure(bootstrapServers: String, produces: Int, hops: Int, logger: Logger) async throws -> FloorResult {
        let configuration = KafkaConfiguration(bootstrapServers: bootstrapServers, clientID: "baton-load-floor", profile: .embeddedBroker,
                                               topicPartitions: 1, topicReplicationFactor: 1)
        let producer: KafkaProducer
        do {
            producer = try KafkaProducer(configuration: configuration, options: .init(lingerMilliseconds: 0), logger: logger)
        } catch {
            throw LoadError.floor("cannot create a producer: \(error)")
        }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let produceTopic = "baton-load.floor-produce-\(suffix)"
        let hopTopic = "baton-load.floor-hop-\(suffix)"
        do {
            try await producer.createTopics([TopicSpec(name: produceTopic), TopicSpec(name: hopTopic)])
            progress("floor: \(produces) acked produces")
            let produce = try await ackedProduce(producer, topic: produceTopic, count: produces)
            progress("floor: \(hops) hops")
            let hop = try await roundTrips(producer, configuration: configuration, topic: hopTopic, count: hops, logger: logger)
            await producer.shutdown()
            return FloorResult(ackedProduce: produce, hop: hop, recordBytes: recordBytes)
        } catch {
            await producer.shutdown()
            if error is LoadError { throw error }
            throw LoadError.floor("\(error)")
        }
    }

    /// `count` sends one after another, each timed until the broker acknowledged it.
    static func ackedProduce(_ producer: KafkaProducer, topic: String, count: Int) async throws -> Percentiles {
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
        let clock = ContinuousClock()
        var histogram = Stats.histogram()
        for index in 0..<(produceWarmup + count) {
            let start = clock.now
            try await producer.send(topic: topic, key: "floor", value: value)
            if index >= produceWarmup { histogram.record(Stats.microseconds(clock.now - start)) }
        }
        return Percentiles(histogram)
    }

    /// `count` hops one after another: each record is produced, then timed until a consumer of a
    /// group of its own receives it (its acknowledgement is awaited after that, untimed).
    static func roundTrips(_ producer: KafkaProducer, configuration: KafkaConfiguration, topic: String, count: Int,
                           logger: Logger) async throws -> Percentiles {
        let consumer = try KafkaConsumer(configuration: configuration, groupID: "baton-load-hop-\(UUID().uuidString.prefix(8))",
                                         topics: [topic], logger: logger)
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
        let total = hopWarmup + count
        do {
            let histogram = try await withDeadline("\(total) Kafka hops", .seconds(120 + count / 10)) { () async throws -> Histogram<UInt64> in
                let clock = ContinuousClock()
                var histogram = Stats.histogram()
                var iterator = consumer.makeAsyncIterator()
                for index in 0..<total {
                    let key = "hop-\(index)"
                    let start = clock.now
                    let delivery = try producer.enqueue(topic: topic, key: Array(key.utf8), value: value)
                    while true {
                        guard let record = try await iterator.next() else {
                            throw LoadError.floor("the hop consumer stopped delivering records")
                        }
                        if record.keyString == key { break }
                    }
                    let elapsed = clock.now - start
                    try await delivery.acknowledged()
                    if index >= hopWarmup { histogram.record(Stats.microseconds(elapsed)) }
                }
                return histogram
            }
            await consumer.close()
            return Percentiles(histogram)
        } catch {
            await consumer.close()
            throw error
        }
    }
}

/// Runs `body`, and throws ``LoadError/deadline(_:)`` (cancelling it) when it has not finished
/// within `deadline`.
func withDeadline<T: Sendable>(_ what: String, _ deadline: Duration,
                               _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self, returning: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw LoadError.deadline("\(what) did not finish within \(deadline)")
        }
        return value
    }
}
