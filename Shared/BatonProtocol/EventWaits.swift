import Foundation

/// A run's wait for an event (`io.waitForEvent`), as the SDK registers it with the dispatcher:
/// carried by an event envelope's `eventWait` field on `baton.events` (a control record, not
/// an event that starts runs).
public struct EventWaitRequest: Codable, Sendable, Hashable {
    /// The shortest and longest timeouts (as in Trigger.dev v2).
    public static let timeoutBounds: ClosedRange<Duration> = .seconds(10) ... .seconds(365 * 86_400)
    /// The timeout when none is given.
    public static let defaultTimeout: Duration = .seconds(3600)
    /// How far before `since` an event may have been received and still match: the dispatcher's
    /// and the job service's clocks may differ by this much.
    public static let clockTolerance: Duration = .seconds(2)

    /// The waiting run.
    public var runId: String
    /// Its waiting task: completed with the matching event.
    public var taskId: String
    /// The event name to wait for.
    public var name: String
    /// Only events from this source, when given.
    public var source: String?
    /// Only events whose payload passes this filter (Trigger.dev v2 filter documents).
    public var filter: EventFilter?
    /// Only events whose context passes this filter.
    public var contextFilter: EventFilter?
    /// When the wait began: events received from then on match (minus ``clockTolerance``),
    /// including those that arrived before the dispatcher learned of the wait.
    public var since: Date
    /// When the wait gives up: later events do not match it.
    public var timeoutAt: Date

    public init(runId: String, taskId: String, name: String, source: String? = nil, filter: EventFilter? = nil, contextFilter: EventFilter? = nil,
                since: Date, timeoutAt: Date) {
        self.runId = runId
        self.taskId = taskId
        self.name = name
        self.source = source
        self.filter = filter
        self.contextFilter = contextFilter
        self.since = since
        self.timeoutAt = timeoutAt
    }

    /// Whether `event`, received at `receivedAt`, is one this wait is for (the tenant is the
    /// caller's to check).
    public func matches(_ event: EventEnvelope, receivedAt: Date) -> Bool {
        guard event.name == name, event.invoke == nil, event.eventWait == nil,
              receivedAt >= since.addingTimeInterval(-(Self.clockTolerance / .seconds(1))), receivedAt < timeoutAt else { return false }
        if let source, source != event.source { return false }
        if let filter, !filter.matches(event.payload) { return false }
        if let contextFilter, !contextFilter.matches(event.context) { return false }
        return true
    }

    /// Checks the fields.
    /// - Throws: `ValidationError` naming the first offending field.
    public func validate() throws(ValidationError) {
        try EventEnvelope.requireText(runId, path: "$.eventWait.runId", what: "run id", maximum: EventEnvelope.maximumIDLength)
        try EventEnvelope.requireText(taskId, path: "$.eventWait.taskId", what: "task id", maximum: EventEnvelope.maximumIDLength)
        try EventEnvelope.requireText(name, path: "$.eventWait.name", what: "event name", maximum: EventEnvelope.maximumNameLength)
        guard timeoutAt > since else {
            throw ValidationError(path: "$.eventWait.timeoutAt", message: "the wait times out before it begins")
        }
    }
}

/// An event a run waited for (`io.waitForEvent` returns it).
public struct WaitedEvent: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var source: String
    public var payload: JSONValue
    public var context: JSONValue?
    public var timestamp: Date
    public var accountId: String?

    public init(_ event: EventEnvelope) {
        id = event.id
        name = event.name
        source = event.source
        payload = event.payload
        context = event.context
        timestamp = event.timestamp
        accountId = event.accountId
    }

    /// The payload decoded as `T`.
    public func payload<T: Decodable>(as type: T.Type) throws -> T { try payload.decode(as: T.self) }
}
