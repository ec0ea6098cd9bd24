import BatonKafka
import BatonProtocol
import BatonService
import Configuration
import Foundation
import Hummingbird
import Logging

/// Settings of `baton-ingester`: the shared keys (see `ServiceConfiguration`) plus
/// - `http.host` / `http.port` (`HTTP_PORT`), default `127.0.0.1:8080`;
/// - `ingester.max.body.bytes` (`INGESTER_MAX_BODY_BYTES`), int, 1048576: larger bodies get 413;
/// - `kafka.delivery.timeout.ms` (`KAFKA_DELIVERY_TIMEOUT_MS`), int, 30000: how long a request
///   waits for the broker's ack before it is answered 503;
/// - `kafka.admin.timeout.ms` (`KAFKA_ADMIN_TIMEOUT_MS`), int, 10000: how long start-up waits to
///   create missing topics (the ingester starts anyway, and answers 503 while the broker is away).
struct IngesterConfiguration: Sendable {
    var service: ServiceConfiguration
    var http: HTTPListenerConfiguration
    var maxBodyBytes: Int
    var deliveryTimeout: Duration
    var adminTimeout: Duration

    init(config: ConfigReader) throws(ValidationError) {
        self.service = try ServiceConfiguration(config: config, serviceName: "baton-ingester")
        self.http = try HTTPListenerConfiguration(config: config, defaultPort: 8080)
        self.maxBodyBytes = config.int(forKey: "ingester.max.body.bytes", default: 1 << 20)
        let timeout = config.int(forKey: "kafka.delivery.timeout.ms", default: 30_000)
        guard timeout > 0 else {
            throw ValidationError(path: "kafka.delivery.timeout.ms", message: "must be positive, got \(timeout)")
        }
        self.deliveryTimeout = .milliseconds(timeout)
        self.adminTimeout = .milliseconds(max(1, config.int(forKey: "kafka.admin.timeout.ms", default: 10_000)))
    }
}

/// Builds the ingester: an HTTP application whose routes produce to Kafka.
func buildIngester(configuration: IngesterConfiguration, logger: Logger) async throws -> some ApplicationProtocol {
    let producer = try KafkaProducer(
        configuration: configuration.service.kafka,
        options: .init(deliveryTimeout: configuration.deliveryTimeout),
        logger: logger)
    let topics = configuration.service.topics
    do {
        try await producer.createTopics([TopicSpec(name: topics.events), TopicSpec(name: topics.deadLetter),
                                         TopicSpec(name: topics.jobs, config: ["cleanup.policy": "compact"])],
                                        timeout: configuration.adminTimeout)
    } catch {
        // The broker may be down now and back later; requests will answer 503 until then.
        logger.warning("could not make sure the topics exist", metadata: ["error": "\(error)"])
    }
    let router = Router()
    router.add(middleware: LogRequestsMiddleware(.debug))
    EventRoutes(producer: producer, topics: topics, maxBodyBytes: configuration.maxBodyBytes, logger: logger).register(on: router)
    return serviceApplication(name: "baton-ingester", http: configuration.http, router: router,
                              services: [ProducerService(producer: producer)], logger: logger)
}

/// `POST /api/v1/events`.
struct EventRoutes: Sendable {
    let producer: KafkaProducer
    let topics: Topics
    let maxBodyBytes: Int
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.post("/api/v1/events") { request, context in
            try await sendEvent(request)
        }
    }

    func sendEvent(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBodyBytes)
        } catch {
            throw APIError(status: .contentTooLarge, code: "payload_too_large",
                           message: "request body is larger than the limit of \(maxBodyBytes) bytes")
        }
        let sendRequest: SendEventRequest
        do {
            sendRequest = try BatonJSON.decoder.decode(SendEventRequest.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(ValidationError.decoding(error))
        }
        let envelope: EventEnvelope
        do {
            envelope = try sendRequest.envelope()
        } catch {
            throw APIError(error)
        }
        do {
            try await producer.send(topic: topics.events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
        } catch {
            logger.error("event not acknowledged by the broker", metadata: ["event.id": "\(envelope.id)", "error": "\(error)"])
            throw APIError(status: .serviceUnavailable, code: "broker_unavailable",
                           message: "the event was not accepted: the Kafka broker did not acknowledge it; retry with the same id")
        }
        logger.debug("event accepted", metadata: ["event.id": "\(envelope.id)", "event.name": "\(envelope.name)"])
        return try jsonResponse(SendEventResponse(id: envelope.id, name: envelope.name, timestamp: envelope.timestamp), status: .accepted)
    }
}
