import BatonKafka
import BatonProtocol
import Logging
import ServiceLifecycle

/// A store that remembers which broker it was written against.
public protocol BrokerBoundStore: Sendable {
    /// The identity the store was bound to (``BrokerIdentity/encoded()``), `nil` when never bound.
    func brokerBinding() async throws -> String?
    /// Binds the store to `identity` (replacing any earlier binding).
    func bindBroker(_ identity: String) async throws
    /// Erases everything the store holds, keeping its schema.
    func eraseAll() async throws
}

/// Start-up and run-time checks that a service works against the broker its state belongs to.
public enum BrokerGuard {
    /// Binds `store` to the broker `producer` talks to, or acts on `policy` when the store was
    /// written against another broker or other partition counts of `topics`.
    ///
    /// Reads (or writes, on a new broker) the marker record of `markerTopic`.
    /// - Returns: the broker's identity, to watch with ``BrokerWatch``.
    /// - Throws: `ValidationError` (exit status 78) under `.refuse`, saying what differs and how
    ///   to proceed; `KafkaError` when the broker does not answer.
    public static func bind(
        _ store: some BrokerBoundStore, storePath: String, producer: KafkaProducer, markerTopic: String, topics: [String],
        policy: BrokerChangePolicy, logger: Logger
    ) async throws -> BrokerIdentity {
        /// What the broker says now; a topic created moments ago may take a moment to show in
        /// metadata, so a difference is looked at again (3 times, 1 s apart) before it counts.
        func observe() async throws -> BrokerIdentity {
            var observed = try await producer.observeBroker(topics: topics + [markerTopic])
            observed.marker = try await producer.brokerMarker(topic: markerTopic)
            return observed
        }
        var observed = try await observe()
        guard let text = try await store.brokerBinding() else {
            try await store.bindBroker(observed.encoded())
            return observed
        }
        let bound: BrokerIdentity
        do {
            bound = try BrokerIdentity.decode(text)
        } catch {
            guard policy != .refuse else {
                throw ValidationError(path: "store.on.broker.change",
                                      message: "the store at '\(storePath)' holds an unreadable broker binding (\(error)); start with STORE_ON_BROKER_CHANGE=rebind to bind it to this broker, or move the file away to start afresh")
            }
            logger.warning("the store's broker binding is unreadable: binding it to this broker (store.on.broker.change=\(policy.rawValue))",
                           metadata: ["store.path": "\(storePath)", "error": "\(error)"])
            try await store.bindBroker(observed.encoded())
            return observed
        }
        var action = BrokerBindingAction.decide(bound: bound, observed: observed, policy: policy)
        for _ in 0..<3 where action.differences != nil {
            try await Task.sleep(for: .seconds(1))
            observed = try await observe()
            action = BrokerBindingAction.decide(bound: bound, observed: observed, policy: policy)
        }
        let what = "the broker at \(producer.configuration.bootstrapServers) is not the one the store at '\(storePath)' was written against: "
            + (action.differences ?? []).joined(separator: "; ")
        switch action {
        case .keep:
            return observed
        case .bind:
            break
        case .refuse:
            throw ValidationError(path: "store.on.broker.change", message: what + """
                . If the broker's data is gone for good, start with STORE_ON_BROKER_CHANGE=reset (erases this store: \
                its runs and offsets are lost) or move the file away; after a planned change (more partitions, a cluster \
                restored with its offsets) use STORE_ON_BROKER_CHANGE=rebind; otherwise point kafka.brokers at the right cluster
                """)
        case .erase:
            logger.warning("\(what): erasing the store and starting afresh (store.on.broker.change=reset)")
            try await store.eraseAll()
        case .rebind:
            logger.warning("\(what): keeping the store and binding it to this broker (store.on.broker.change=\(policy.rawValue))")
        }
        try await store.bindBroker(observed.encoded())
        return observed
    }

    /// The identity of the broker as a service without a store sees it at start-up: its cluster
    /// id and the partition counts of `topics`, to watch with ``BrokerWatch``.
    public static func observe(producer: KafkaProducer, topics: [String]) async throws -> BrokerIdentity {
        try await producer.observeBroker(topics: topics)
    }
}

/// Runs a ``BrokerWatch`` as a service: it ends on graceful shutdown and throws when the broker
/// changed, which stops the process (fail-stop: one line, `/health` 503, exit status 1).
public struct BrokerWatchService: Service, CustomStringConvertible {
    let watch: BrokerWatch

    public init(_ watch: BrokerWatch) { self.watch = watch }

    public var description: String { "broker watch" }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await watch.run() }
        } catch is CancellationError {
            return
        }
    }
}
