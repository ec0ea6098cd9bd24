import AsyncHTTPClient
import BatonKafka
import BatonProtocol
import BatonService
import Configuration
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOHTTP1

/// Settings of `baton-ingester`: the shared keys (see `ServiceConfiguration`) plus
/// - `http.host` / `http.port` (`HTTP_PORT`), default `127.0.0.1:8080`;
/// - `ingester.max.body.bytes` (`INGESTER_MAX_BODY_BYTES`), int, 1048576: larger bodies get 413;
/// - `kafka.delivery.timeout.ms` (`KAFKA_DELIVERY_TIMEOUT_MS`), int, 30000: how long a request
///   waits for the broker's ack before it is answered 503;
/// - `ingester.max.batch` (`INGESTER_MAX_BATCH`), int, 100: events per batch request;
/// - `dispatcher.url` (`DISPATCHER_URL`), string, `http://127.0.0.1:8081`: where cancels of
///   delayed events and job-ownership checks of registrations and invocations go (never asked
///   on the path of an event);
/// - `ingester.resend.memory` (`INGESTER_RESEND_MEMORY`), int, 100000: ids of events accepted
///   lately that this instance remembers, to answer their resends with the first event (0: none);
/// - `kafka.admin.timeout.ms` (`KAFKA_ADMIN_TIMEOUT_MS`), int, 10000: how long start-up waits to
///   create missing topics (the ingester starts anyway, and answers 503 while the broker is away).
struct IngesterConfiguration: Sendable {
    var service: ServiceConfiguration
    var http: HTTPListenerConfiguration
    var maxBodyBytes: Int
    var deliveryTimeout: Duration
    var adminTimeout: Duration
    var maxBatch: Int
    var dispatcherURL: String
    var resendMemory: Int

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
        self.maxBatch = config.int(forKey: "ingester.max.batch", default: 100)
        guard maxBatch >= 1 else { throw ValidationError(path: "ingester.max.batch", message: "must be at least 1, got \(maxBatch)") }
        guard maxBodyBytes >= 1 else { throw ValidationError(path: "ingester.max.body.bytes", message: "must be at least 1, got \(maxBodyBytes)") }
        service.limits.eventBodyBytes = maxBodyBytes
        service.limits.batchEvents = maxBatch
        self.dispatcherURL = config.string(forKey: "dispatcher.url", default: "http://127.0.0.1:8081")
        self.resendMemory = config.int(forKey: "ingester.resend.memory", default: 100_000)
        guard resendMemory >= 0 else { throw ValidationError(path: "ingester.resend.memory", message: "must not be negative, got \(resendMemory)") }
    }
}

/// Builds the ingester: an HTTP application whose routes produce to Kafka.
func buildIngester(configuration: IngesterConfiguration, logger: Logger) async throws -> some ApplicationProtocol {
    let producer = try KafkaProducer(
        configuration: configuration.service.kafka,
        // No batching delay: an event's latency starts here. Under load librdkafka still batches
        // what concurrent requests queue while a produce is in flight.
        options: .init(deliveryTimeout: configuration.deliveryTimeout, lingerMilliseconds: 0),
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
    let router = serviceRouter()
    configuration.service.apiKeys.logState(logger)
    EventRoutes(producer: producer, topics: topics, keys: configuration.service.apiKeys, limits: configuration.service.limits, maxBodyBytes: configuration.maxBodyBytes, maxBatch: configuration.maxBatch,
                dispatcherURL: configuration.dispatcherURL, http: .shared,
                accepted: AcceptedEvents(capacity: configuration.resendMemory), logger: logger).register(on: router)
    return serviceApplication(name: "baton-ingester", http: configuration.http, router: router,
                              services: [ProducerService(producer: producer),
                                         BrokerWatchService(BrokerWatch(producer: producer, topics: [topics.events, topics.deadLetter, topics.jobs], baseline: nil,
                                                                        interval: configuration.service.kafka.profile.brokerCheckInterval, logger: logger))], keys: configuration.service.apiKeys,
                              logger: logger)
}

/// `POST /api/v1/events`, `POST /api/v1/events/batch`, `DELETE /api/v1/events/{id}`,
/// `PUT /api/v1/jobs/{id}`, `POST /api/v1/jobs/{id}/invoke`.
struct EventRoutes: Sendable {
    let producer: KafkaProducer
    let topics: Topics
    /// Every route acts for the tenant of the request's API key.
    let keys: APIKeyRing
    let limits: Limits
    let maxBodyBytes: Int
    let maxBatch: Int
    let dispatcherURL: String
    let http: HTTPClient
    /// Events accepted lately with an id given by the client: their resends' answer.
    let accepted: AcceptedEvents
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.post("/api/v1/events") { request, _ in
            try await sendEvent(request)
        }
        router.post("/api/v1/events/batch") { request, _ in
            try await sendBatch(request)
        }
        router.delete("/api/v1/events/:id") { request, context in
            _ = try keys.tenant(of: request)
            return try await cancel(try context.parameters.require("id"), authorization: request.headers[.authorization])
        }
        router.put("/api/v1/jobs/:id") { request, context in
            try await registerJob(id: try Self.pathParameter("id", context), request)
        }
        router.post("/api/v1/jobs/:id/invoke") { request, context in
            try await invoke(id: try Self.pathParameter("id", context), request)
        }
    }

    /// `value` percent-encoded as one path segment.
    static func pathSegment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? value
    }

    /// A path parameter, percent-decoded (job ids may hold spaces and other characters).
    static func pathParameter(_ name: String, _ context: BasicRequestContext) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    func collectBody(_ request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: maxBodyBytes)
        } catch {
            throw APIError(status: .contentTooLarge, code: "payload_too_large",
                           message: "request body is larger than the limit of \(maxBodyBytes) bytes")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer) throws -> T {
        do throws(ValidationError) {
            return try BatonJSON.decodeDocument(T.self, from: body.readableBytesView, maxDepth: limits.nestingDepth)
        } catch {
            throw APIError(error)
        }
    }

    /// Produces `envelope` and waits for the broker's ack.
    /// - Throws: `APIError` 503 when the broker did not acknowledge it.
    func publish(_ envelope: EventEnvelope) async throws {
        do {
            try await producer.send(envelope, topics: topics)
        } catch {
            logger.error("event not acknowledged by the broker", metadata: ["event.id": "\(envelope.id)", "error": "\(error)"])
            throw APIError(status: .serviceUnavailable, code: "broker_unavailable",
                           message: "the event was not accepted: the Kafka broker did not acknowledge it; retry with the same id")
        }
    }

    func sendEvent(_ request: Request) async throws -> Response {
        let tenant = try keys.tenant(of: request)
        let sendRequest = try decode(Strict<SendEventRequest>.self, try await collectBody(request)).value
        let envelope: EventEnvelope
        do {
            envelope = try sendRequest.envelope(tenant: tenant, limits: limits)
        } catch {
            throw APIError(error)
        }
        let answer = try await accept(envelope, idGiven: sendRequest.id != nil, authorization: request.headers[.authorization])
        return try jsonResponse(answer, status: .accepted)
    }

    /// Publishes `envelope` and answers with it. An id given by the client that this ingester
    /// accepted lately is answered with the first event's values, and not published again (see
    /// `AcceptedEvents`); no other service is asked on the way.
    func accept(_ envelope: EventEnvelope, idGiven: Bool, authorization: String?) async throws -> SendEventResponse {
        let scopedID = envelope.tenant.scoped(envelope.id)
        if idGiven, let first = accepted.answer(for: scopedID) {
            logger.debug("event id seen before: answered with the first event", metadata: ["event.id": "\(envelope.id)"])
            Counter(label: "baton_events_resent_total", dimensions: [("service", "ingester")]).increment()
            return first
        }
        // Not remembered: publish. Should it be a resend after all, the dispatcher keeps the
        // first event and starts nothing twice.
        try await publish(envelope)
        Counter(label: "baton_events_accepted_total").increment()
        logger.debug("event accepted", metadata: ["event.id": "\(envelope.id)", "event.name": "\(envelope.name)"])
        return idGiven ? accepted.remember(SendEventResponse(envelope), for: scopedID) : SendEventResponse(envelope)
    }

    /// Validates each event on its own; valid ones are produced (concurrently) and answered 202
    /// once acknowledged, invalid ones get their error. The response is 207-style: 200 with a
    /// result per event, in order.
    func sendBatch(_ request: Request) async throws -> Response {
        let tenant = try keys.tenant(of: request)
        let batch = try decode(Strict<SendEventBatchRequest>.self, try await collectBody(request)).value
        guard !batch.events.isEmpty else {
            throw APIError(status: .unprocessableContent, code: "invalid_field", message: "a batch needs at least one event", path: "$.events")
        }
        guard batch.events.count <= maxBatch else {
            throw APIError(status: .unprocessableContent, code: "batch_too_large",
                           message: "\(batch.events.count) events in one batch; the limit is \(maxBatch)", path: "$.events")
        }
        let results = await withTaskGroup(of: BatchItemResult.self) { group in
            for (index, raw) in batch.events.enumerated() {
                group.addTask {
                    let path = "$.events[\(index)]"
                    do {
                        let item: SendEventRequest
                        do {
                            item = try raw.decode(as: Strict<SendEventRequest>.self).value
                        } catch {
                            let failure = ValidationError.decoding(error)
                            throw ValidationError(code: failure.code, path: failure.path.replacingOccurrences(of: "$", with: path), message: failure.message)
                        }
                        let envelope = try item.envelope(path: path, tenant: tenant, limits: limits)
                        let answer = try await accept(envelope, idGiven: item.id != nil, authorization: request.headers[.authorization])
                        return BatchItemResult(index: index, status: 202, id: answer.id)
                    } catch let error as ValidationError {
                        let api = APIError(error)
                        return BatchItemResult(index: index, status: Int(api.status.code), error: .init(code: api.code, message: api.message, path: api.path))
                    } catch let error as APIError {
                        return BatchItemResult(index: index, status: Int(error.status.code), error: .init(code: error.code, message: error.message, path: path))
                    } catch {
                        return BatchItemResult(index: index, status: 500, error: .init(code: "internal", message: "\(error)", path: path))
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted { $0.index < $1.index }
        }
        return try jsonResponse(["results": results])
    }

    /// Registers (or updates) a job for tooling that is not a Swift job service.
    func registerJob(id: String, _ request: Request) async throws -> Response {
        let tenant = try keys.tenant(of: request)
        // Over HTTP a job id is printable ASCII (docs/openapi.yaml states the same pattern); the
        // SDK's ids may hold any text (their slug drops diacritics).
        guard id.unicodeScalars.count <= Slug.maximumLength, id.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) }),
              id.unicodeScalars.contains(where: { ("0"..."9").contains($0) || ("a"..."z").contains($0) || ("A"..."Z").contains($0) }) else {
            throw APIError(status: .unprocessableContent, code: "invalid_field",
                           message: "a job id in the URL is 1 to \(Slug.maximumLength) printable ASCII characters with a letter or digit, e.g. new-user-welcome", path: "$.id")
        }
        let body = try decode(Strict<RegisterJobRequest>.self, try await collectBody(request)).value
        let registration: JobRegistration
        do {
            registration = try JobRegistration(id: id, name: body.name, version: body.version, trigger: body.trigger, tenant: tenant,
                                               enabled: body.enabled, logLevel: body.logLevel, flowControl: body.flowControl,
                                               concurrencyLimit: body.concurrencyLimit)
        } catch {
            throw APIError(error)
        }
        if await owner(ofJob: registration.slug, authorization: request.headers[.authorization]) == .others {
            throw APIError(status: .conflict, code: "job_owned_elsewhere",
                           message: "the job id '\(registration.slug)' is taken by another project or environment; give the job another id", path: "id")
        }
        do {
            try await producer.send(topic: topics.jobs, key: registration.recordKey, value: Array(try BatonJSON.encoder.encode(registration)))
        } catch {
            throw APIError(status: .serviceUnavailable, code: "broker_unavailable", message: "the registration was not accepted: the Kafka broker did not acknowledge it; retry")
        }
        logger.info("job registered over HTTP", metadata: ["job.slug": "\(registration.slug)", "job.version": "\(registration.version)"])
        return try jsonResponse(RegisterJobResponse(id: registration.id, slug: registration.slug, version: registration.version))
    }

    /// Starts a run of job `id` with a payload, whatever its trigger; answers the run id once
    /// the request is on the events topic.
    func invoke(id: String, _ request: Request) async throws -> Response {
        let tenant = try keys.tenant(of: request)
        let body = try decode(Strict<InvokeJobRequest>.self, try await collectBody(request)).value
        let slug: String
        do {
            slug = try Slug.make(id)
        } catch {
            // No job can have this id (nothing to make a slug from, or too long): none to invoke.
            throw APIError(status: .notFound, code: "job_not_found", message: "no job can have the id '\(id)': \(error.message)", path: "id")
        }
        switch await owner(ofJob: slug, authorization: request.headers[.authorization]) {
        case .missing, .others:
            throw APIError(status: .notFound, code: "job_not_found", message: "no job '\(slug)' is registered in this project", path: "id")
        case .disabled:
            throw APIError(status: .conflict, code: "job_disabled",
                           message: "job '\(slug)' is disabled: it starts no runs until a job service registers it enabled again", path: "id")
        case .mine, nil:
            break
        }
        let envelope = EventEnvelope(id: body.id ?? Identifiers.newEventID(), name: "baton.invoke", source: "invoke",
                                     payload: body.payload ?? .null, context: body.context, invoke: slug, tenant: tenant)
        do {
            try envelope.validate()
        } catch {
            throw APIError(error)
        }
        try await publish(envelope)
        return try jsonResponse(InvokeJobResponse(runId: Identifiers.runID(eventID: envelope.id, jobSlug: slug), eventId: envelope.id, jobSlug: slug),
                                status: .accepted)
    }

    /// Who owns job `slug`, as the dispatcher sees it for the request's key: `.mine`, `.disabled`
    /// (the caller's, but disabled), `.missing`, `.others`, or `nil` when the dispatcher did not
    /// answer (the dispatcher checks again when the record arrives, and dead-letters what it
    /// refuses).
    enum JobOwner { case mine, disabled, missing, others }

    func owner(ofJob slug: String, authorization: String?) async -> JobOwner? {
        var request = HTTPClientRequest(url: "\(dispatcherURL)/api/v1/jobs/\(slug)")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        guard let response = try? await http.execute(request, timeout: .seconds(5)) else { return nil }
        let body = try? await response.body.collect(upTo: 1 << 20)
        switch response.status.code {
        case 200:
            let job = body.flatMap { try? BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.readableBytesView)) }
            return job?.isEnabled == false ? .disabled : .mine
        case 404: return .missing
        case 409: return .others
        default: return nil
        }
    }

    /// Cancels a delayed event at the dispatcher, which holds it (the request's key goes along:
    /// the dispatcher cancels only that tenant's events).
    func cancel(_ id: String, authorization: String?) async throws -> Response {
        var request = HTTPClientRequest(url: "\(dispatcherURL)/api/v1/events/\(Self.pathSegment(id))")
        request.method = .DELETE
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        do {
            let response = try await http.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            return Response(status: .init(code: Int(response.status.code)), headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
        } catch {
            throw APIError(status: .serviceUnavailable, code: "dispatcher_unavailable",
                           message: "the run dispatcher did not answer; the event may still be delivered: retry the cancel")
        }
    }
}

