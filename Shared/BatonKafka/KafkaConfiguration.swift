/// How to reach a Kafka cluster, and the librdkafka properties Baton sets on top.
///
/// The typed fields cover what Baton needs; `properties` passes any other librdkafka property
/// through (SASL/SCRAM, TLS, tuning). Pass-through values win over everything else.
public struct KafkaConfiguration: Sendable, Hashable {
    /// Client settings tuned for a kind of broker.
    public struct Profile: Sendable, Hashable {
        let name: String
        let consumerProperties: [String: String]
        let producerProperties: [String: String]
        /// How often a running service checks that the broker and its topics are still the ones
        /// it started with (``BrokerWatch``).
        public let brokerCheckInterval: Duration

        /// librdkafka's defaults: right for real Kafka clusters.
        public static let production = Profile(name: "production", consumerProperties: [:], producerProperties: [:],
                                               brokerCheckInterval: .seconds(10))

        /// For the embedded Tansu broker, which does not wake waiting fetches and answers a group
        /// join after half the session timeout. Never use against a real cluster (Kafka refuses
        /// session timeouts under 6 s).
        public static let embeddedBroker = Profile(
            name: "embedded",
            consumerProperties: [
                // A hop costs about 0.6 × this + 1 ms on Tansu (measured: 10 → 6.8 ms p50,
                // 5 → 3.9 ms, 1 → 2.1 ms); each idle consumer polls the broker this often.
                "fetch.wait.max.ms": "5",
                "session.timeout.ms": "2000",
                "heartbeat.interval.ms": "500",
            ],
            producerProperties: [:],
            // A memory broker that restarts has lost every topic: notice it within a second.
            brokerCheckInterval: .seconds(1)
        )

        /// Whether this is the embedded profile (a local, memory-only broker).
        public var isEmbedded: Bool { name == "embedded" }

        /// Looks up a profile by the name used in configuration (`production`, `embedded`).
        public init?(named name: String) {
            switch name {
            case "production": self = .production
            case "embedded": self = .embeddedBroker
            default: return nil
            }
        }

        init(name: String, consumerProperties: [String: String], producerProperties: [String: String], brokerCheckInterval: Duration) {
            self.brokerCheckInterval = brokerCheckInterval
            self.name = name
            self.consumerProperties = consumerProperties
            self.producerProperties = producerProperties
        }
    }

    /// Comma-separated `host:port` list of brokers to bootstrap from.
    public var bootstrapServers: String
    /// The client id brokers see in their logs and metrics.
    public var clientID: String
    /// Client profile; `.production` unless the broker is the embedded Tansu.
    public var profile: Profile
    /// Number of partitions for topics Baton creates.
    public var topicPartitions: Int
    /// Replication factor for topics Baton creates (`-1`: the broker's default).
    public var topicReplicationFactor: Int
    /// Any librdkafka property, applied last (see librdkafka's CONFIGURATION.md).
    public var properties: [String: String]

    public init(
        bootstrapServers: String,
        clientID: String = "baton",
        profile: Profile = .production,
        topicPartitions: Int = 3,
        topicReplicationFactor: Int = -1,
        properties: [String: String] = [:]
    ) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.profile = profile
        self.topicPartitions = topicPartitions
        self.topicReplicationFactor = topicReplicationFactor
        self.properties = properties
    }

    /// Properties of a producer: idempotent, `acks=all`, plus profile and pass-through.
    func producerProperties(_ options: KafkaProducer.Options) -> [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "enable.idempotence": "true",
            "acks": "all",
            "message.timeout.ms": String(options.deliveryTimeout.librdkafkaMilliseconds),
            // Named, not left to librdkafka's default: the read barrier computes a run's
            // partition with the same function (`KafkaPartitioner`). Do not override it.
            "partitioner": KafkaPartitioner.name,
            // Baton creates its topics itself (with their partition counts and settings): a
            // send to a missing topic fails instead of creating it with the broker's defaults.
            "allow.auto.create.topics": "false",
        ]
        if let linger = options.lingerMilliseconds { result["linger.ms"] = String(linger) }
        result.merge(profile.producerProperties) { _, new in new }
        result.merge(properties) { _, new in new }
        return result
    }

    /// Properties of a group consumer: offsets stored only by the application, auto-commit of
    /// stored offsets, earliest reset, plus profile and pass-through.
    func consumerProperties(groupID: String) -> [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "group.id": groupID,
            "enable.auto.offset.store": "false",
            "enable.auto.commit": "true",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": "false",
            // Never create a subscribed topic with the broker's defaults (see the producer).
            "allow.auto.create.topics": "false",
        ]
        result.merge(profile.consumerProperties) { _, new in new }
        result.merge(properties) { _, new in new }
        return result
    }
}

extension KafkaConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Whether librdkafka property `name` holds a secret (passwords, keys, tokens, credentials).
    public static func isSecret(property name: String) -> Bool {
        let lowered = name.lowercased()
        return ["password", "secret", "token", "credential", "key.pem", "ssl.key", "sasl.jaas", "sasl.oauthbearer.config"]
            .contains { lowered.contains($0) }
    }

    /// The pass-through properties with secret values replaced by `<redacted>`.
    public var redactedProperties: [String: String] {
        properties.reduce(into: [:]) { result, entry in
            result[entry.key] = Self.isSecret(property: entry.key) ? "<redacted>" : entry.value
        }
    }

    /// Never shows secret property values, so printing or logging a configuration (or anything
    /// holding one) cannot leak them.
    public var description: String {
        "KafkaConfiguration(bootstrapServers: \(bootstrapServers), clientID: \(clientID), profile: \(profile.name), "
            + "properties: \(redactedProperties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")))"
    }

    public var debugDescription: String { description }

    /// Reflection (used by `dump` and by default descriptions of types that hold a
    /// configuration) sees the redacted form only.
    public var customMirror: Mirror {
        Mirror(self, children: ["bootstrapServers": bootstrapServers, "clientID": clientID, "profile": profile.name,
                                "properties": redactedProperties], displayStyle: .struct)
    }
}
