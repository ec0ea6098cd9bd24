import CRdKafka
import Foundation
import Logging

/// Which broker a service's state belongs to, and the shape of the topics it reads.
///
/// A store written against one broker is wrong against another: its offsets point into logs
/// that are not there, its runs wait for records that will never come. That happens when an
/// embedded (memory) broker restarts, or a cluster is replaced or restored. Baton recognises its
/// broker by three things:
/// - the cluster id (a replaced Kafka cluster has a new one; Tansu's is configured, often fixed);
/// - a **marker**: the first record of the marker topic (`<prefix>.broker`), written once by the
///   first Baton service that found the topic empty. A broker that lost its data loses the
///   marker, and the next one written differs;
/// - the partition count of each topic, since keys (runs, schedules) are placed by it.
///
/// Pure value: compare a bound identity with an observed one with ``differences(from:)``.
public struct BrokerIdentity: Codable, Sendable, Hashable {
    /// The cluster id the broker reported, if any.
    public var clusterID: String?
    /// The marker record's value (see above); `nil` when not read.
    public var marker: String?
    /// Partition count by topic name; a missing topic is absent.
    public var partitions: [String: Int]

    public init(clusterID: String?, marker: String?, partitions: [String: Int]) {
        self.clusterID = clusterID
        self.marker = marker
        self.partitions = partitions
    }

    /// What differs between this (bound) identity and `observed`, one sentence each; empty when
    /// `observed` is the same broker with the same topic shapes. Only what both sides know is
    /// compared: a `nil` cluster id or marker, or a topic `self` does not name, is no difference.
    public func differences(from observed: BrokerIdentity) -> [String] {
        var result: [String] = []
        if let bound = clusterID, let now = observed.clusterID, bound != now {
            result.append("the broker's cluster id is '\(now)', not '\(bound)'")
        }
        if let bound = marker, let now = observed.marker, bound != now {
            result.append("the broker's marker record differs (its data was lost or it is another broker)")
        }
        for (topic, count) in partitions.sorted(by: { $0.key < $1.key }) {
            guard let now = observed.partitions[topic] else {
                result.append("topic '\(topic)' no longer exists on the broker")
                continue
            }
            if now != count {
                result.append("topic '\(topic)' has \(now) partitions, not \(count)")
            }
        }
        return result
    }

    /// Whether `observed` is another broker (cluster id or marker differ), not only other
    /// topic shapes.
    public func isAnotherBroker(than observed: BrokerIdentity) -> Bool {
        if let bound = clusterID, let now = observed.clusterID, bound != now { return true }
        if let bound = marker, let now = observed.marker, bound != now { return true }
        return false
    }

    /// The identity as stored (JSON).
    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Reads a stored identity.
    /// - Throws: `DecodingError` when `text` is not one.
    public static func decode(_ text: String) throws -> BrokerIdentity {
        try JSONDecoder().decode(BrokerIdentity.self, from: Data(text.utf8))
    }
}

/// What a service with a store does at start-up when the store was written against another
/// broker, or against other topic shapes (`store.on.broker.change`, `STORE_ON_BROKER_CHANGE`).
public enum BrokerChangePolicy: String, Sendable, CaseIterable {
    /// Refuse to start, saying what differs and how to proceed (the production default).
    case refuse
    /// Say so, erase the store and start afresh: its runs and offsets are lost (the embedded
    /// default, where the broker keeps topics in memory and loses them when it restarts). Only
    /// for another broker (cluster id or marker differ); other topic shapes on the same broker
    /// keep the store, as `rebind` does.
    case reset
    /// Say so and keep the store, bound to the broker as it is now: after a planned change such
    /// as more partitions, or a cluster restored together with its offsets.
    case rebind
}

/// What a service does with its store at start-up, given the identity it was bound to, the one
/// it sees, and its policy. Pure.
public enum BrokerBindingAction: Sendable, Hashable {
    /// The same broker, the same topics: nothing to do.
    case keep
    /// Bind (again) without a word: never bound, or only more is known now (e.g. a new topic).
    case bind
    /// Refuse to start: these differ.
    case refuse([String])
    /// Another broker under `reset`: say so, erase the store and bind it.
    case erase([String])
    /// Say so, keep the store and bind it: `rebind`, or other topic shapes on the same broker
    /// under `reset` (its data is there).
    case rebind([String])

    /// What differs, for the actions that say so.
    public var differences: [String]? {
        switch self {
        case .keep, .bind: nil
        case .refuse(let found), .erase(let found), .rebind(let found): found
        }
    }

    public static func decide(bound: BrokerIdentity?, observed: BrokerIdentity, policy: BrokerChangePolicy) -> BrokerBindingAction {
        guard let bound else { return .bind }
        let differences = bound.differences(from: observed)
        guard !differences.isEmpty else { return bound == observed ? .keep : .bind }
        switch policy {
        case .refuse: return .refuse(differences)
        case .reset where bound.isAnotherBroker(than: observed): return .erase(differences)
        case .reset, .rebind: return .rebind(differences)
        }
    }
}

/// The broker changed under a running service, or is not the one its store was written against.
public struct BrokerChangedError: Error, Sendable, CustomStringConvertible {
    /// What differs, one sentence each.
    public var differences: [String]
    /// What to do about it.
    public var remedy: String

    public init(differences: [String], remedy: String) {
        self.differences = differences
        self.remedy = remedy
    }

    public var description: String {
        "the Kafka broker changed: \(differences.joined(separator: "; ")). \(remedy)"
    }
}

extension KafkaProducer {
    /// What the broker says now: its cluster id and the partition counts of `topics` (from
    /// metadata of all topics, which never creates one). The marker is not read.
    /// - Throws: `KafkaError` with code `.metadata` when the broker does not answer.
    public func observeBroker(topics: [String], timeout: Duration = .seconds(10)) async throws -> BrokerIdentity {
        let handle = self.handle
        return try await runBlocking {
            let milliseconds = timeout.librdkafkaMilliseconds
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle.pointer, 1, nil, &metadata, milliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw kafkaError(.metadata, "cluster metadata", err, retriable: true)
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            let wanted = Set(topics)
            var partitions: [String: Int] = [:]
            for index in 0..<Int(metadata.pointee.topic_cnt) {
                let topic = metadata.pointee.topics[index]
                let name = String(cString: topic.topic)
                guard wanted.contains(name) else { continue }
                switch topic.err {
                case RD_KAFKA_RESP_ERR_NO_ERROR:
                    partitions[name] = Int(topic.partition_cnt)
                case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
                    break  // missing
                default:
                    // Not an answer about the topic (leader election, authorization, a broker
                    // still loading): never read as "missing".
                    throw kafkaError(.metadata, "metadata of topic '\(name)'", topic.err, retriable: true)
                }
            }
            var clusterID: String?
            if let id = rd_kafka_clusterid(handle.pointer, milliseconds) {
                clusterID = String(cString: id)
                rd_kafka_mem_free(handle.pointer, id)
            }
            return BrokerIdentity(clusterID: clusterID, marker: nil, partitions: partitions)
        }
    }

    /// The broker's marker: the first record of `topic` (one partition, kept forever), written
    /// by this call when the topic is empty. When several services race to write it, every one
    /// reads the same first record.
    /// - Throws: `KafkaError` when the topic cannot be created, written or read.
    public func brokerMarker(topic: String, timeout: Duration = .seconds(15)) async throws -> String {
        try await createTopics([TopicSpec(name: topic, partitions: 1,
                                          config: ["cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"])])
        if try await highWatermark(topic: topic, partition: 0) == 0 {
            let value = "{\"marker\":\"\(UUID().uuidString)\",\"writtenAt\":\"\(Date().ISO8601Format())\",\"writtenBy\":\"\(configuration.clientID)\"}"
            try await send(topic: topic, key: "marker", value: Array(value.utf8))
        }
        let configuration = self.configuration
        let record = try await runBlocking { try Self.firstRecord(configuration: configuration, topic: topic, timeout: timeout) }
        guard let record else { throw KafkaError(.metadata, "the marker topic '\(topic)' has no record to read within \(timeout)", isRetriable: true) }
        return String(decoding: record, as: UTF8.self)
    }

    /// The value of the first record of partition 0 of `topic`, read by a consumer that joins no
    /// group and commits nothing; `nil` when none comes within `timeout`. Blocking.
    private static func firstRecord(configuration: KafkaConfiguration, topic: String, timeout: Duration) throws -> [UInt8]? {
        var properties = configuration.consumerProperties(groupID: "\(configuration.clientID).marker-reader")
        properties["enable.auto.commit"] = "false"
        let handle = try RdKafkaHandle(kind: RD_KAFKA_CONSUMER, properties: properties,
                                       events: Int32(RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_ERROR))
        rd_kafka_poll_set_consumer(handle.pointer)
        let queue = RdKafkaQueue(rd_kafka_queue_get_consumer(handle.pointer), owner: handle)
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, topic, 0).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        let err = rd_kafka_assign(handle.pointer, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(.consumer, "cannot read '\(topic)'", err) }
        defer {
            _ = rd_kafka_assign(handle.pointer, nil)
            _ = rd_kafka_consumer_close(handle.pointer)
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let event = rd_kafka_queue_poll(queue.pointer, 100) else { continue }
            defer { rd_kafka_event_destroy(event) }
            guard rd_kafka_event_type(event) == RD_KAFKA_EVENT_FETCH,
                  let message = rd_kafka_event_message_next(event),
                  message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            guard let payload = message.pointee.payload else { return [] }
            return Array(UnsafeRawBufferPointer(start: payload, count: message.pointee.len))
        }
        return nil
    }
}

/// Checks, while a service runs, that its broker is still the one it started with: every
/// `interval`, the cluster id and the partition counts of the watched topics (a restarted memory
/// broker has none of them), and whether the producer hit a fatal error.
///
/// ``run()`` throws ``BrokerChangedError`` (or the producer's fatal `KafkaError`) when the
/// service cannot go on: the caller stops the process (fail-stop) so a supervisor restarts it,
/// and the restarted service binds its store again (see `store.on.broker.change`). A broker that
/// does not answer is not a change: clients reconnect.
public struct BrokerWatch: Sendable {
    let producer: KafkaProducer
    let topics: [String]
    let baseline: BrokerIdentity?
    let interval: Duration
    let logger: Logger

    /// - Parameters:
    ///   - topics: the topics whose existence and partition counts are watched.
    ///   - baseline: what the service started with (its marker is not checked again); `nil`:
    ///     the first answer that has every topic.
    public init(producer: KafkaProducer, topics: [String], baseline: BrokerIdentity?, interval: Duration, logger: Logger) {
        self.producer = producer
        self.topics = topics
        self.baseline = baseline.map { BrokerIdentity(clusterID: $0.clusterID, marker: nil, partitions: $0.partitions.filter { topics.contains($0.key) }) }
        self.interval = interval
        self.logger = logger
    }

    /// Watches until cancelled (then throws `CancellationError`) or until the broker changed.
    public func run() async throws {
        var expected = baseline
        while true {
            try await Task.sleep(for: interval)
            if let fatal = producer.fatalError { throw fatal }
            let observed: BrokerIdentity
            do {
                observed = try await producer.observeBroker(topics: topics, timeout: min(interval * 5, .seconds(10)))
            } catch {
                logger.debug("broker check: no answer", metadata: ["error": "\(error)"])
                continue
            }
            guard let known = expected else {
                if observed.partitions.count == topics.count { expected = observed }
                continue
            }
            let differences = known.differences(from: observed)
            if !differences.isEmpty {
                throw BrokerChangedError(
                    differences: differences,
                    remedy: "This process stops; when restarted it checks its store against the broker (store.on.broker.change).")
            }
        }
    }
}
