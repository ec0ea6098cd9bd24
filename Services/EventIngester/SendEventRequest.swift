import BatonProtocol
import Foundation

/// The body of `POST /api/v1/events`: Trigger.dev's `sendEvent` payload.
struct SendEventRequest: Decodable, Sendable {
    var name: String
    var payload: JSONValue?
    var id: String?
    var context: JSONValue?
    var timestamp: Date?
    var source: String?
    var accountId: String?

    /// The envelope to publish; a missing id is generated, a missing timestamp is now.
    func envelope(now: Date = Date()) throws(ValidationError) -> EventEnvelope {
        if let id, id.isEmpty {
            throw ValidationError(path: "$.id", message: "event id must not be empty when given; omit it to have one generated")
        }
        let envelope = EventEnvelope(
            id: id ?? Identifiers.newEventID(), name: name, source: source ?? "trigger", payload: payload ?? .null,
            context: context, timestamp: timestamp ?? now, accountId: accountId)
        try envelope.validate()
        return envelope
    }
}

/// The answer to an accepted event.
struct SendEventResponse: Codable, Sendable {
    var id: String
    var name: String
    var timestamp: Date
}
