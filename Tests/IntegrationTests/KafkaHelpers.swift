import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging
import Synchronization

extension BatonStack {
    /// A producer to the stack's broker, for tests that publish straight to Kafka (call
    /// `shutdown()` when done).
    func kafkaProducer() throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, profile: .embeddedBroker),
                          options: .init(lingerMilliseconds: 0), logger: Logger(label: "test"))
    }
}

/// A record of `baton.dead-letter`: its reason and origin headers.
struct DeadLetter {
    var reason: String?
    var origin: String?
}

/// Reads `topic` from the start as a new consumer group, handing each record to `take` until
/// it returns a result or `deadline` passes (then `nil`).
func readTopic<T: Sendable>(bootstrapServers: String, topic: String, deadline: Duration,
                            _ take: @escaping @Sendable (KafkaRecord) -> T?) async throws -> T? {
    let consumer = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, profile: .embeddedBroker),
                                     groupID: "topic-check-\(UUID().uuidString.prefix(6))", topics: [topic], logger: Logger(label: "topic-check"))
    let found = try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            for try await record in consumer {
                if let result = take(record) { return result }
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: deadline)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
    await consumer.close()
    return found
}

/// Reads `baton.dead-letter` on `bootstrapServers` (as a new consumer group) until records with
/// every key in `keys` arrived or `deadline` passed; returns what arrived, by key.
func collectDeadLetters(bootstrapServers: String, keys: Set<String>, deadline: Duration = .seconds(60)) async throws -> [String: DeadLetter] {
    let found = Mutex<[String: DeadLetter]>([:])
    _ = try await readTopic(bootstrapServers: bootstrapServers, topic: Topics().deadLetter, deadline: deadline) { record -> Bool? in
        guard let key = record.keyString, keys.contains(key) else { return nil }
        func header(_ name: String) -> String? {
            record.headers.first { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        let count = found.withLock { found in
            found[key] = DeadLetter(reason: header(DeadLetterQueue.reasonHeader), origin: header(DeadLetterQueue.originHeader))
            return found.count
        }
        return count == keys.count ? true : nil
    }
    return found.withLock { $0 }
}

/// The value of the first record of `topic` with key `key` whose value contains `marker`;
/// `nil` when none came within `deadline`.
func firstRecordValue(bootstrapServers: String, topic: String, key: String, containing marker: String,
                      deadline: Duration = .seconds(30)) async throws -> String? {
    try await readTopic(bootstrapServers: bootstrapServers, topic: topic, deadline: deadline) { record in
        guard record.keyString == key else { return nil }
        let value = String(decoding: record.value, as: UTF8.self)
        return value.contains(marker) ? value : nil
    }
}
