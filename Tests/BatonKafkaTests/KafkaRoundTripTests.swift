@testable import BatonKafka
import BatonTesting
import Foundation
import Logging
import Testing

@Suite("Kafka client against a real Tansu broker", .serialized)
struct KafkaRoundTripTests {
    let logger = Logger(label: "test")

    func configuration(_ broker: TansuBroker) -> KafkaConfiguration {
        KafkaConfiguration(bootstrapServers: broker.bootstrapServers, clientID: "kafka-tests", profile: .embeddedBroker,
                           topicPartitions: 2, topicReplicationFactor: 1)
    }

    @Test("KafkaPartitioner names the partition the producer puts each key in; nextBatch returns what one poll fetched")
    func partitionerAgreesWithProducer() async throws {
        let logs = try TestEnvironment.temporaryDirectory("kafka")
        let broker = try await TansuBroker.start(logDirectory: logs)
        let config = KafkaConfiguration(bootstrapServers: broker.bootstrapServers, clientID: "kafka-tests", profile: .embeddedBroker,
                                        topicPartitions: 5, topicReplicationFactor: 1)
        let producer = try KafkaProducer(configuration: config, options: .init(lingerMilliseconds: 0), logger: logger)
        try await producer.createTopics([TopicSpec(name: "keyed")])
        let keys = (0..<60).map { "run_\($0)_\(UUID().uuidString.prefix(4))" }
        // One at a time: Tansu's high watermark is one past the *first* record of the last batch
        // written, so with single-record batches it counts the records (see ReadBarrier).
        for key in keys { try await producer.send(topic: "keyed", key: key, value: Array(key.utf8)) }
        // The high watermark of one partition counts exactly the keys computed to be there.
        var expected: [Int32: Int64] = [:]
        for key in keys { expected[KafkaPartitioner.partition(of: key.utf8, partitionCount: 5), default: 0] += 1 }
        #expect(Set(expected.keys).count > 1, "60 keys spread over several partitions")
        for partition in Int32(0)..<5 {
            let high = try await producer.highWatermark(topic: "keyed", partition: partition)
            #expect(high == expected[partition, default: 0], "partition \(partition): watermark \(high), keys \(expected[partition, default: 0])")
        }
        let consumer = try KafkaConsumer(configuration: config, groupID: "keyed-check", topics: ["keyed"], logger: logger)
        var seen = 0
        while seen < keys.count {
            let batch = try await consumer.nextBatch(max: 1000)
            #expect(!batch.isEmpty)
            for record in batch {
                #expect(record.partition == KafkaPartitioner.partition(of: record.key ?? [], partitionCount: 5), "\(record.keyString ?? "")")
            }
            seen += batch.count
        }
        #expect(seen == keys.count)
        await consumer.close()
        await producer.shutdown()
        try await broker.stop()
    }

    @Test("send awaits the ack; a group consumer reads keys, values and headers in order")
    func roundTrip() async throws {
        let logs = try TestEnvironment.temporaryDirectory("kafka")
        let broker = try await TansuBroker.start(logDirectory: logs)
        let config = configuration(broker)
        let producer = try KafkaProducer(configuration: config, options: .init(lingerMilliseconds: 0), logger: logger)
        try await producer.createTopics([TopicSpec(name: "t1")])
        try await producer.createTopics([TopicSpec(name: "t1")])  // idempotent
        #expect(try await producer.partitionCount(topic: "t1") == 2)
        for index in 0..<20 {
            try await producer.send(topic: "t1", key: "k\(index % 3)", value: Array("v\(index)".utf8),
                                    headers: [KafkaHeader(name: "h", string: "x\(index)")])
        }
        let consumer = try KafkaConsumer(configuration: config, groupID: "g1", topics: ["t1"], logger: logger)
        var seen: [String: [Int]] = [:]
        var count = 0
        for try await record in consumer {
            let value = String(decoding: record.value, as: UTF8.self)
            let index = Int(value.dropFirst())!
            #expect(record.headers == [KafkaHeader(name: "h", string: "x\(index)")])
            #expect(record.keyString == "k\(index % 3)")
            seen[record.keyString!, default: []].append(index)
            try await consumer.commit(record)
            count += 1
            if count == 20 { break }
        }
        for (_, indices) in seen { #expect(indices == indices.sorted()) }  // per-key order
        #expect(seen.values.map(\.count).reduce(0, +) == 20)
        await consumer.close()

        // Committed offsets hold: a new member of the same group sees only new records.
        try await producer.send(topic: "t1", key: "k0", value: Array("v99".utf8))
        let second = try KafkaConsumer(configuration: config, groupID: "g1", topics: ["t1"], logger: logger)
        var iterator = second.makeAsyncIterator()
        let next = try await iterator.next()
        #expect(next.map { String(decoding: $0.value, as: UTF8.self) } == "v99")
        await second.close()
        await producer.shutdown()
        try await broker.stop()
    }

    @Test("enqueued records keep their order; acknowledgements awaited late or out of order arrive, once each")
    func enqueueThenAwait() async throws {
        let broker = try await TansuBroker.start(logDirectory: try TestEnvironment.temporaryDirectory("kafka-enqueue"))
        let config = configuration(broker)
        let producer = try KafkaProducer(configuration: config, options: .init(lingerMilliseconds: 0), logger: logger)
        try await producer.createTopics([TopicSpec(name: "t2")])
        let deliveries = try (0..<50).map { index in
            try producer.enqueue(topic: "t2", key: Array("one-key".utf8), value: Array("v\(index)".utf8))
        }
        // Reports may come before anyone awaits them: wait a little, then await in reverse order.
        try await Task.sleep(for: .milliseconds(200))
        for delivery in deliveries.reversed() { try await delivery.acknowledged() }
        await #expect(throws: KafkaError.self, "a second wait for one acknowledgement is refused") {
            try await deliveries[0].acknowledged()
        }
        let consumer = try KafkaConsumer(configuration: config, groupID: "g-enqueue", topics: ["t2"], logger: logger)
        var values: [String] = []
        for try await record in consumer {
            values.append(String(decoding: record.value, as: UTF8.self))
            if values.count == 50 { break }
        }
        #expect(values == (0..<50).map { "v\($0)" }, "one key, one partition: the order they were enqueued in")
        await consumer.close()
        await producer.shutdown()
        #expect(throws: KafkaError.self) { try producer.enqueue(topic: "t2", key: nil, value: [1]) }
        try await broker.stop()
    }

    @Test("a fatal producer error fails waiting sends at once and every later send; unawaited reports are not kept")
    func fatalErrorAndUnawaitedDeliveries() async throws {
        let broker = try await TansuBroker.start(logDirectory: try TestEnvironment.temporaryDirectory("kafka-fatal"))
        let producer = try KafkaProducer(configuration: configuration(broker), options: .init(lingerMilliseconds: 0), logger: logger)
        try await producer.createTopics([TopicSpec(name: "t3")])
        // Deliveries nobody awaits: their reports are dropped when they come.
        for index in 0..<50 { _ = try producer.enqueue(topic: "t3", key: nil, value: Array("v\(index)".utf8)) }
        let awaited = try producer.enqueue(topic: "t3", key: nil, value: [1])
        try await awaited.acknowledged()
        _ = try await eventually("the unawaited reports to be dropped", deadline: .seconds(10)) { producer.inFlightCount == 0 ? true : nil }

        // A record that cannot be delivered (no such topic, and no auto-creation) waits up to
        // the 30 s delivery timeout, unless a fatal error ends it first.
        let stuck = try producer.enqueue(topic: "no-such-topic", key: nil, value: [2])
        let waiting = Task { () -> KafkaError? in
            do { try await stuck.acknowledged(); return nil } catch let error as KafkaError { return error } catch { return nil }
        }
        let raisedAt = ContinuousClock.now
        producer.raiseFatalErrorForTesting("test: the broker lost this producer's state")
        let failure = await waiting.value
        #expect(failure?.code == .fatal, "the waiting send fails with the fatal error: \(String(describing: failure))")
        #expect(ContinuousClock.now - raisedAt < .seconds(10), "at once, not after the 30 s delivery timeout")
        #expect(producer.fatalError?.code == .fatal)
        #expect(throws: KafkaError.self, "a later send fails at once") { try producer.enqueue(topic: "t3", key: nil, value: [3]) }
        await producer.shutdown(timeout: .milliseconds(100))
        try await broker.stop()
    }

    @Test("send fails with a delivery error when no broker acknowledges")
    func deliveryFailure() async throws {
        let port = try freeLoopbackPort()  // nothing listens here
        let config = KafkaConfiguration(bootstrapServers: "127.0.0.1:\(port)", profile: .embeddedBroker)
        let producer = try KafkaProducer(configuration: config, options: .init(deliveryTimeout: .seconds(1)), logger: logger)
        await #expect(throws: KafkaError.self) {
            try await producer.send(topic: "nowhere", key: "k", value: [1, 2, 3])
        }
        // A record enqueued and never acknowledged: its wait fails too, also when it starts late.
        let delivery = try producer.enqueue(topic: "nowhere", key: nil, value: [4])
        try await Task.sleep(for: .milliseconds(1500))
        await #expect(throws: KafkaError.self) { try await delivery.acknowledged() }
        await producer.shutdown(timeout: .milliseconds(100))
    }

    @Test("an unknown librdkafka property is a configuration error naming it")
    func badProperty() throws {
        let config = KafkaConfiguration(bootstrapServers: "127.0.0.1:1", properties: ["no.such.property": "1"])
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: config, logger: logger)
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("no.such.property") == true)
    }
}
