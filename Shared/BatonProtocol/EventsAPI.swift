import Foundation

/// An event as `GET /api/v1/events` lists it (the dispatcher's view): the first envelope
/// received with its id and what became of it. A dispatched event's payload and context are
/// not kept (its runs have them), so they are absent here.
public struct EventListing: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var source: String
    public var timestamp: Date
    public var payload: JSONValue?
    /// When the dispatcher received it (absent for a delayed event listed from its hold).
    public var receivedAt: Date?
    /// Whether every run it starts was started.
    public var dispatched: Bool
    /// For a delayed event: when it is due, and `PENDING`, `DELIVERED` or `CANCELED`.
    public var deliverAt: Date?
    public var delayedStatus: String?

    public init(id: String, name: String, source: String, timestamp: Date, payload: JSONValue?, receivedAt: Date?,
                dispatched: Bool, deliverAt: Date?, delayedStatus: String?) {
        self.id = id
        self.name = name
        self.source = source
        self.timestamp = timestamp
        self.payload = payload
        self.receivedAt = receivedAt
        self.dispatched = dispatched
        self.deliverAt = deliverAt
        self.delayedStatus = delayedStatus
    }
}

/// The answer to `GET /api/v1/events`: the caller's events received most recently (newest
/// first) and its delayed events not delivered yet (soonest first).
public struct EventListResponse: Codable, Sendable, Hashable {
    public var events: [EventListing]
    public var delayed: [EventListing]

    public init(events: [EventListing], delayed: [EventListing]) {
        self.events = events
        self.delayed = delayed
    }
}

/// The answer to `DELETE /api/v1/events/{id}`: whether this request canceled the delayed event
/// (false: it was delivered or canceled before) and its status, `PENDING`, `DELIVERED` or `CANCELED`.
public struct CancelEventResponse: Codable, Sendable, Hashable {
    public var id: String
    public var canceled: Bool
    public var status: String

    public init(id: String, canceled: Bool, status: String) {
        self.id = id
        self.canceled = canceled
        self.status = status
    }
}
