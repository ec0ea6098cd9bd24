/// A failure of the Kafka layer: what happened, librdkafka's code, and whether retrying can help.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// Category of the failure. An open set.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case configuration, delivery, queueFull, topicCreation, consumer, closed, commit, metadata, fatal
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        public var description: String { base.rawValue }

        /// A property was rejected by librdkafka.
        public static let configuration = Code(.configuration)
        /// The broker did not acknowledge a record before the delivery timeout, or refused it.
        public static let delivery = Code(.delivery)
        /// The local producer queue is full; retry shortly.
        public static let queueFull = Code(.queueFull)
        /// Creating a topic failed.
        public static let topicCreation = Code(.topicCreation)
        /// The consumer reported an error.
        public static let consumer = Code(.consumer)
        /// The client was already closed.
        public static let closed = Code(.closed)
        /// Committing offsets failed.
        public static let commit = Code(.commit)
        /// Reading cluster metadata failed.
        public static let metadata = Code(.metadata)
        /// The client hit an error it cannot recover from (e.g. the broker lost the idempotent
        /// producer's state, as after a broker restart without its data): restart the process.
        public static let fatal = Code(.fatal)
    }

    public var code: Code
    /// What happened, in words.
    public var message: String
    /// librdkafka's error name (e.g. `_MSG_TIMED_OUT`), when there is one.
    public var librdkafkaError: String?
    /// Whether the same operation may succeed if retried.
    public var isRetriable: Bool

    init(_ code: Code, _ message: String, librdkafkaError: String? = nil, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.librdkafkaError = librdkafkaError
        self.isRetriable = isRetriable
    }

    public var description: String {
        if let librdkafkaError { return "Kafka \(code): \(message) [\(librdkafkaError)]" }
        return "Kafka \(code): \(message)"
    }
}
