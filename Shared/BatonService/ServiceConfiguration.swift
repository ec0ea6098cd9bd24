import BatonKafka
import BatonProtocol
import Configuration
import Foundation
import Logging

/// Settings every Baton process shares, read from command-line flags, then environment
/// variables, then defaults.
///
/// Keys (flag / environment variable / type / default):
/// - `kafka.brokers` (`--kafka-brokers`, `KAFKA_BROKERS`), string, `127.0.0.1:9092`: bootstrap servers.
/// - `kafka.profile` (`KAFKA_PROFILE`), `production` | `embedded`, `production`: client tuning;
///   `embedded` only for the local Tansu broker.
/// - `kafka.client.id` (`KAFKA_CLIENT_ID`), string, the service name.
/// - `kafka.topic.partitions` (`KAFKA_TOPIC_PARTITIONS`), int, 3: partitions of topics Baton creates.
/// - `kafka.topic.replication` (`KAFKA_TOPIC_REPLICATION`), int, -1 (broker default).
/// - `kafka.properties` (`KAFKA_PROPERTIES`), secret, `k=v,k=v`: any librdkafka property
///   (e.g. `security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,...`).
/// - `topics.prefix` (`TOPICS_PREFIX`), string, `baton`.
/// - `log.level` (`LOG_LEVEL`), `trace`…`critical`, `info`.
/// - `limits.json.depth` (`LIMITS_JSON_DEPTH`), int, 64: deepest JSON nesting read from HTTP or Kafka.
/// - `limits.key.bytes` (`LIMITS_KEY_BYTES`), int, 256: longest event id, task key, deduplication key.
/// - `limits.task.output.bytes` (`LIMITS_TASK_OUTPUT_BYTES`), int, 524288: largest task output (job services).
/// - `limits.log.line.bytes` (`LIMITS_LOG_LINE_BYTES`), int, 16384: longest log message (job services; cut beyond).
/// - `shutdown.deadline.ms` (`SHUTDOWN_DEADLINE_MS`), int, 30000: how long a graceful shutdown
///   (SIGTERM, SIGINT) may take to drain in-flight work before the process gives up and exits 1.
/// - `store.on.broker.change` (`STORE_ON_BROKER_CHANGE`), `refuse` | `reset` | `rebind`,
///   `reset` with the embedded profile, else `refuse`: what a service with a store does at
///   start-up when the store was written against another broker (see `BrokerChangePolicy`).
/// - `fetch.secrets.keys` (`FETCH_SECRETS_KEYS`), secret, none: base64 keys (32 bytes each,
///   comma-separated; the first seals) that encrypt background-fetch requests on the topic and
///   in the store; job services and the task-result service need the same keys.
/// - `store.outage.tolerance.ms` (`STORE_OUTAGE_TOLERANCE_MS`), int, 30000: how long a consumer
///   of a service with a store retries its batch while the store fails transiently (a PostgreSQL
///   restart or failover) before the service stops.
/// - `store.attempt.timeout.ms` (`STORE_ATTEMPT_TIMEOUT_MS`), int, 20000: how long one attempt
///   of a consumer's store work (a batch applied, a timer or fetch recorded) may take before it
///   is abandoned as hung and tried again (within the outage tolerance).
/// - `auth.keys.file` (`AUTH_KEYS_FILE`), path, none: the API keys file (hashes; made with
///   `baton-keys`). Without it the HTTP APIs need no key and act for the default project.
public struct ServiceConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    public var topics: Topics
    public var logLevel: Logger.Level
    /// The API keys requests are checked against.
    public var apiKeys: APIKeyRing
    /// Size limits (the ingester sets the body and batch limits from its own keys).
    public var limits: Limits
    /// How long a graceful shutdown may take.
    public var shutdownDeadline: Duration
    /// What a service with a store does when the broker is not the one it was written against.
    public var brokerChangePolicy: BrokerChangePolicy
    /// The keys sealing background-fetch requests, if configured.
    public var fetchSecrets: FetchSecrets?
    /// How long a consumer retries while its store fails transiently.
    /// `store.outage.tolerance.ms` and `store.attempt.timeout.ms`.
    public var storeOutage: StoreOutagePolicy

    /// Reads the shared settings.
    /// - Throws: `ValidationError` naming the key whose value is invalid.
    public init(config: ConfigReader, serviceName: String) throws(ValidationError) {
        let profileName = config.string(forKey: "kafka.profile", default: "production")
        guard let profile = KafkaConfiguration.Profile(named: profileName) else {
            throw ValidationError(path: "kafka.profile", message: "'\(profileName)' is not a Kafka profile; use 'production' or 'embedded'")
        }
        let propertyText = config.string(forKey: "kafka.properties", isSecret: true, default: "")
        let properties = try Self.parseProperties(propertyText)
        let partitions = config.int(forKey: "kafka.topic.partitions", default: 3)
        guard partitions >= 1 else {
            throw ValidationError(path: "kafka.topic.partitions", message: "must be at least 1, got \(partitions)")
        }
        self.kafka = KafkaConfiguration(
            bootstrapServers: config.string(forKey: "kafka.brokers", default: "127.0.0.1:9092"),
            clientID: config.string(forKey: "kafka.client.id", default: serviceName),
            profile: profile,
            topicPartitions: partitions,
            topicReplicationFactor: config.int(forKey: "kafka.topic.replication", default: -1),
            properties: properties)
        self.topics = Topics(prefix: config.string(forKey: "topics.prefix", default: "baton"))
        let level = config.string(forKey: "log.level", default: "info")
        guard let logLevel = Logger.Level(rawValue: level) else {
            throw ValidationError(path: "log.level", message: "'\(level)' is not a log level (trace, debug, info, notice, warning, error, critical)")
        }
        self.logLevel = logLevel
        self.apiKeys = try APIKeyRing.load(config: config)
        let defaults = Limits.default
        self.limits = Limits(
            taskOutputBytes: config.int(forKey: "limits.task.output.bytes", default: defaults.taskOutputBytes),
            logLineBytes: config.int(forKey: "limits.log.line.bytes", default: defaults.logLineBytes),
            nestingDepth: config.int(forKey: "limits.json.depth", default: defaults.nestingDepth),
            keyBytes: config.int(forKey: "limits.key.bytes", default: defaults.keyBytes))
        try limits.validate()
        let deadline = config.int(forKey: "shutdown.deadline.ms", default: 30_000)
        guard deadline >= 1 else { throw ValidationError(path: "shutdown.deadline.ms", message: "must be at least 1, got \(deadline)") }
        self.shutdownDeadline = .milliseconds(deadline)
        let tolerance = config.int(forKey: "store.outage.tolerance.ms", default: 30_000)
        guard tolerance >= 0 else {
            throw ValidationError(path: "store.outage.tolerance.ms", message: "must be 0 (stop at once) or more, got \(tolerance)")
        }
        let attempt = config.int(forKey: "store.attempt.timeout.ms", default: 20_000)
        guard attempt >= 1 else {
            throw ValidationError(path: "store.attempt.timeout.ms", message: "must be at least 1, got \(attempt)")
        }
        self.storeOutage = StoreOutagePolicy(tolerance: .milliseconds(tolerance), attemptTimeout: .milliseconds(attempt))
        let policyName = config.string(forKey: "store.on.broker.change", default: profile.isEmbedded ? "reset" : "refuse")
        guard let policy = BrokerChangePolicy(rawValue: policyName) else {
            throw ValidationError(path: "store.on.broker.change", message: "'\(policyName)' is not a policy; use 'refuse', 'reset' or 'rebind'")
        }
        self.brokerChangePolicy = policy
        self.fetchSecrets = try FetchSecrets.parse(config.string(forKey: "fetch.secrets.keys", isSecret: true, default: ""))
    }

    /// Parses `k=v,k=v` into a dictionary.
    static func parseProperties(_ text: String) throws(ValidationError) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: ",") where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let equals = pair.firstIndex(of: "=") else {
                throw ValidationError(path: "kafka.properties", message: "'\(pair)' is not key=value")
            }
            result[String(pair[..<equals]).trimmingCharacters(in: .whitespaces)] = String(pair[pair.index(after: equals)...])
        }
        return result
    }
}

extension ConfigReader {
    /// The reader of a Baton process: command-line flags, then environment variables.
    public static func batonDefault(arguments: [String] = CommandLine.arguments,
                                    environment: [String: String] = ProcessInfo.processInfo.environment) -> ConfigReader {
        ConfigReader(providers: [
            CommandLineArgumentsProvider(arguments: arguments),
            EnvironmentVariablesProvider(environmentVariables: environment),
        ])
    }
}

/// HTTP listener settings: `http.host` (`HTTP_HOST`, default `127.0.0.1`) and `http.port`
/// (`HTTP_PORT`, default given by the service).
public struct HTTPListenerConfiguration: Sendable {
    public var host: String
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }

    /// - Throws: `ValidationError` for a port outside 0...65535.
    public init(config: ConfigReader, defaultPort: Int) throws(ValidationError) {
        let port = config.int(forKey: "http.port", default: defaultPort)
        guard (0...65535).contains(port) else {
            throw ValidationError(path: "http.port", message: "\(port) is not a TCP port")
        }
        self.init(host: config.string(forKey: "http.host", default: "127.0.0.1"), port: port)
    }
}
