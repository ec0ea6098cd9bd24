import BatonProtocol
import BatonService
import Foundation

/// The body of `POST /api/v1/events`: Trigger.dev's `sendEvent` payload.
struct SendEventRequest: StrictlyDecodable, Sendable {
    var name: String
    var payload: JSONValue?
    var id: String?
    var context: JSONValue?
    var timestamp: Date?
    var source: String?
    var accountId: String?
    /// Deliver at this time (RFC 3339), not before.
    var deliverAt: Date?
    /// Deliver this many seconds after now.
    var deliverAfter: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, payload, id, context, timestamp, source, accountId, deliverAt, deliverAfter
    }


    /// The envelope to publish; a missing id is generated, a missing timestamp is now.
    /// `path` prefixes field paths (`$.events[3]` in a batch).
    func envelope(now: Date = Date(), path: String = "$", tenant: Tenant = .default, limits: Limits = .default) throws(ValidationError) -> EventEnvelope {
        if let id, id.isEmpty {
            throw ValidationError(path: "\(path).id", message: "event id must not be empty when given; omit it to have one generated")
        }
        if deliverAt != nil, deliverAfter != nil {
            throw ValidationError(path: "\(path).deliverAfter", message: "give deliverAt or deliverAfter, not both")
        }
        if let deliverAfter, !(deliverAfter >= 0 && deliverAfter <= 365 * 86_400) {
            throw ValidationError(path: "\(path).deliverAfter", message: "must be between 0 and 31536000 seconds, got \(deliverAfter)")
        }
        let envelope = EventEnvelope(
            id: id ?? Identifiers.newEventID(), name: name, source: source ?? "trigger", payload: payload ?? .null,
            context: context, timestamp: timestamp ?? now,
            deliverAt: deliverAt ?? deliverAfter.map { now.addingTimeInterval($0) }, accountId: accountId, tenant: tenant)
        do {
            try envelope.validate()
        } catch {
            throw ValidationError(code: error.code, path: error.path.replacingOccurrences(of: "$", with: path), message: error.message)
        }
        return envelope
    }
}

/// The body of `PUT /api/v1/jobs/{id}`.
struct RegisterJobRequest: StrictlyDecodable, Sendable {
    var name: String
    var version: String
    var trigger: JobTrigger
    /// `false`: the job takes no runs until registered enabled again.
    var enabled: Bool?
    /// The least severe `io.logger` level stored.
    var logLevel: JobLogLevel?
    /// At most so many runs executing at once (``ConcurrencyLimit``).
    var concurrencyLimit: ConcurrencyLimit?
    /// Limits the runs events start (``FlowControl``; event triggers only).
    var flowControl: FlowControl?

    enum CodingKeys: String, CodingKey, CaseIterable { case name, version, trigger, enabled, logLevel, concurrencyLimit, flowControl }

}

struct RegisterJobResponse: Codable, Sendable {
    var id: String
    var slug: String
    var version: String
}

/// The body of `POST /api/v1/jobs/{id}/invoke`.
struct InvokeJobRequest: StrictlyDecodable, Sendable {
    var payload: JSONValue?
    var context: JSONValue?
    /// Idempotency: invoking again with the same id starts no second run.
    var id: String?

    enum CodingKeys: String, CodingKey, CaseIterable { case payload, context, id }

}

struct InvokeJobResponse: Codable, Sendable {
    var runId: String
    var eventId: String
    var jobSlug: String
}

/// The body of `POST /api/v1/events/batch`.
struct SendEventBatchRequest: StrictlyDecodable, Sendable {
    var events: [JSONValue]

    enum CodingKeys: String, CodingKey, CaseIterable { case events }
}

/// One event's result in a batch: `status` 202 with the id, or the error.
struct BatchItemResult: Codable, Sendable {
    var index: Int
    var status: Int
    var id: String?
    var error: APIErrorBody.Detail?
}

/// The answer to an accepted event.
struct SendEventResponse: Codable, Sendable {
    var id: String
    var name: String
    var timestamp: Date
    var deliverAt: Date?

    init(_ event: EventEnvelope) {
        self.init(id: event.id, name: event.name, timestamp: event.timestamp, deliverAt: event.deliverAt)
    }

    init(id: String, name: String, timestamp: Date, deliverAt: Date?) {
        self.id = id
        self.name = name
        self.timestamp = timestamp
        self.deliverAt = deliverAt
    }
}
