import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging

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

/// Reads `baton.dead-letter` on `bootstrapServers` (as a new consumer group) until records with
/// every key in `keys` arrived or `deadline` passed; returns what arrived, by key.
func collectDeadLetters(bootstrapServers: String, keys: Set<String>, deadline: Duration = .seconds(60)) async throws -> [String: DeadLetter] {
    let consumer = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, profile: .embeddedBroker),
                                     groupID: "dlq-check-\(UUID().uuidString.prefix(6))", topics: [Topics().deadLetter],
                                     logger: Logger(label: "dead-letters"))
    let found = try await withThrowingTaskGroup(of: [String: DeadLetter]?.self) { group in
        group.addTask {
            var found: [String: DeadLetter] = [:]
            for try await record in consumer {
                guard let key = record.keyString, keys.contains(key) else { continue }
                func header(_ name: String) -> String? {
                    record.headers.first { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
                }
                found[key] = DeadLetter(reason: header(DeadLetterQueue.reasonHeader), origin: header(DeadLetterQueue.originHeader))
                if found.count == keys.count { break }
            }
            return found
        }
        group.addTask {
            try await Task.sleep(for: deadline)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first ?? [:]
    }
    await consumer.close()
    return found
}

/// The value of the first record of `topic` with key `key` whose value contains `marker`, read
/// by a new consumer group from the start; `nil` when none came within `deadline`.
func firstRecordValue(bootstrapServers: String, topic: String, key: String, containing marker: String,
                      deadline: Duration = .seconds(30)) async throws -> String? {
    let consumer = try KafkaConsumer(configuration: KafkaConfiguration(bootstrapServers: bootstrapServers, profile: .embeddedBroker),
                                     groupID: "record-check-\(UUID().uuidString.prefix(6))", topics: [topic], logger: Logger(label: "record-check"))
    let found = try await withThrowingTaskGroup(of: String?.self) { group in
        group.addTask {
            for try await record in consumer where record.keyString == key {
                let value = String(decoding: record.value, as: UTF8.self)
                if value.contains(marker) { return value }
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
