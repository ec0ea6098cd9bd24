/// A record read from Kafka.
public struct KafkaRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The key as UTF-8 text, when it is.
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
}

/// A record header.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]
    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }
    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }
}

/// A partition of a topic.
public struct TopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// A topic Baton makes sure exists.
public struct TopicSpec: Sendable, Hashable {
    public var name: String
    /// `nil`: the configured default.
    public var partitions: Int?
    /// Topic configuration, e.g. `cleanup.policy=compact`.
    public var config: [String: String]
    public init(name: String, partitions: Int? = nil, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.config = config
    }
}
