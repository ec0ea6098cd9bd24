import AsyncHTTPClient
import BatonKafka
import BatonProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// Sends events to Baton from Swift programs: straight to Kafka, or over HTTP to the ingester.
///
/// ```swift
/// let client = BatonClient.http(baseURL: "http://127.0.0.1:8080")
/// let id = try await client.sendEvent(name: "user.created", payload: NewUser(id: "u1", …))
/// ```
/// Either way, `sendEvent` returns only once the event is durable (the broker acknowledged it).
public struct BatonClient: Sendable {
    private enum Transport: Sendable {
        case kafka(KafkaProducer, Topics)
        case http(String, apiKey: String?, HTTPClient)
    }

    private let transport: Transport

    /// Publishes with `producer` to the events topic (`topics.events`).
    public static func kafka(producer: KafkaProducer, topics: Topics = Topics()) -> BatonClient {
        BatonClient(transport: .kafka(producer, topics))
    }

    /// Posts to the ingester at `baseURL` (e.g. `http://127.0.0.1:8080`), with
    /// `Authorization: Bearer apiKey` when the ingester requires keys (the events then belong to
    /// the key's project and environment).
    public static func http(baseURL: String, apiKey: String? = nil, client: HTTPClient = .shared) -> BatonClient {
        BatonClient(transport: .http(baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL, apiKey: apiKey, client))
    }

    /// The `POST /api/v1/events` body: the envelope's client-set fields (the ingester sets the
    /// schema version and, from the key, the tenant).
    private struct SendEventBody: Encodable {
        var id: String
        var name: String
        var source: String
        var payload: JSONValue
        var context: JSONValue?
        var timestamp: Date
        var deliverAt: Date?
        var accountId: String?
    }

    /// Sends an event.
    /// - Parameters:
    ///   - id: idempotency: sending an id again starts no new runs; generated when `nil`.
    ///   - deliverAfter: hold the event this long before it starts runs.
    /// - Returns: the event id.
    /// - Throws: `ValidationError` for an invalid event; `KafkaError` or `BatonClientError` when
    ///   it was not accepted (retry with the same id).
    @discardableResult
    public func sendEvent(
        name: String, payload: some Encodable & Sendable, id: String? = nil, context: JSONValue? = nil,
        source: String = "trigger", deliverAfter: Duration? = nil
    ) async throws -> String {
        let envelope = EventEnvelope(
            id: id ?? Identifiers.newEventID(), name: name, source: source, payload: try JSONValue(encoding: payload), context: context,
            deliverAt: deliverAfter.map { Date().addingTimeInterval($0 / .seconds(1)) })
        return try await sendEvent(envelope)
    }

    /// Sends a ready envelope. See ``sendEvent(name:payload:id:context:source:deliverAfter:)``.
    @discardableResult
    public func sendEvent(_ envelope: EventEnvelope) async throws -> String {
        try envelope.validate()
        switch transport {
        case .kafka(let producer, let topics):
            try await producer.send(topic: topics.events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
        case .http(let baseURL, let apiKey, let client):
            guard envelope.invoke == nil, envelope.tenant == .default else {
                throw BatonClientError(status: 0, body: "over HTTP the ingester sets invoke and tenant (from the API key); send this envelope over Kafka")
            }
            let body = SendEventBody(id: envelope.id, name: envelope.name, source: envelope.source, payload: envelope.payload,
                                     context: envelope.context, timestamp: envelope.timestamp, deliverAt: envelope.deliverAt,
                                     accountId: envelope.accountId)
            _ = try await Self.post(body, to: "\(baseURL)/api/v1/events", apiKey: apiKey, client: client)
        }
        return envelope.id
    }

    /// The `POST /api/v1/jobs/{id}/invoke` body.
    private struct InvokeBody: Encodable {
        var payload: JSONValue
        var context: JSONValue?
        var id: String
    }

    /// Starts a run of job `jobId` with `payload`, whatever the job's trigger (jobs defined with
    /// `invokeTrigger` run only this way).
    /// - Parameters:
    ///   - id: idempotency: invoking again with the same id starts no second run; generated
    ///     when `nil`.
    /// - Returns: the run id (`GET /api/v1/runs/{id}` on the task-result service shows it).
    /// - Throws: `BatonClientError` 404 over HTTP when no such job is registered for the key;
    ///   `ValidationError` for an invalid job id.
    @discardableResult
    public func invoke(jobId: String, payload: some Encodable & Sendable, id: String? = nil, context: JSONValue? = nil) async throws -> String {
        let slug = try Slug.make(jobId)
        let eventID = id ?? Identifiers.newEventID()
        let json = try JSONValue(encoding: payload)
        switch transport {
        case .kafka:
            try await sendEvent(EventEnvelope(id: eventID, name: JobTrigger.invokedEventName, source: "invoke", payload: json, context: context,
                                              invoke: slug))
        case .http(let baseURL, let apiKey, let client):
            _ = try await Self.post(InvokeBody(payload: json, context: context, id: eventID), to: "\(baseURL)/api/v1/jobs/\(slug)/invoke",
                                    apiKey: apiKey, client: client)
        }
        return Identifiers.runID(eventID: eventID, jobSlug: slug)
    }

    /// Posts `body` as JSON to the ingester; returns the answer's body.
    /// - Throws: `BatonClientError` unless the answer is 202.
    private static func post(_ body: some Encodable, to url: String, apiKey: String?, client: HTTPClient) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(bytes: try BatonJSON.encoder.encode(body)))
        let response = try await client.execute(request, timeout: .seconds(60))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .accepted else {
            throw BatonClientError(status: Int(response.status.code), body: String(buffer: answer))
        }
        return answer
    }
}

/// A Baton service refused a request: `status` and its JSON error `body` say why.
public struct BatonClientError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var body: String
    /// The service that answered (`ingester`, `task-result service`).
    public var service: String

    public init(status: Int, body: String, service: String = "ingester") {
        self.status = status
        self.body = body
        self.service = service
    }

    public var description: String { "the \(service) answered \(status): \(body)" }
}
