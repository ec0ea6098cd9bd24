import BatonProtocol
import Foundation

/// A run's wait for an event as the dispatcher keeps it (see ``EventWaitRules``).
public struct EventWaitRecord: Sendable, Hashable {
    public var tenant: Tenant
    public var request: EventWaitRequest
    /// The event it got, once one matched.
    public var matched: EventEnvelope?

    public init(tenant: Tenant, request: EventWaitRequest, matched: EventEnvelope? = nil) {
        self.tenant = tenant
        self.request = request
        self.matched = matched
    }

    /// The wait's id in the store: tenant-scoped run and task.
    public var id: String { tenant.scoped("\(request.runId)/\(request.taskId)") }
    /// The match to deliver, once it has its event.
    public var match: EventWaitMatch? {
        matched.map { EventWaitMatch(id: id, runId: request.runId, taskId: request.taskId, event: $0) }
    }
    /// What the store indexes waits and recent events by: the tenant-scoped event name.
    public var scopedName: String { tenant.scoped(request.name) }
}

/// An event the dispatcher received, kept a while for waits registered after it arrived.
public struct RecentEvent: Sendable, Hashable {
    public var event: EventEnvelope
    public var receivedAt: Date

    public init(event: EventEnvelope, receivedAt: Date) {
        self.event = event
        self.receivedAt = receivedAt
    }
}

/// A wait that got its event: the dispatcher tells the run (`eventWaitMatched` on its
/// task-results partition) and then marks it notified.
public struct EventWaitMatch: Sendable, Hashable {
    /// The wait's id in the store (``EventWaitRecord/id``).
    public var id: String
    public var runId: String
    public var taskId: String
    public var event: EventEnvelope

    public init(id: String, runId: String, taskId: String, event: EventEnvelope) {
        self.id = id
        self.runId = runId
        self.taskId = taskId
        self.event = event
    }

    /// The run event that delivers it.
    public var notice: RunEvent { RunEvent(runId: runId, body: .eventWaitMatched(.init(taskId: taskId, event: WaitedEvent(event)))) }
}

/// How waits for events (`io.waitForEvent`) meet events, as pure functions. A store applies
/// them in one transaction per batch, serialized per event name, so a wait and an event that
/// arrive at once on two dispatcher instances always meet:
/// - a new wait looks at the recent events received since it began (an event that came before
///   the wait was registered is not missed), and takes the first that matches;
/// - a new event goes to every pending wait of its tenant and name that it matches: several
///   runs may wait for one event, and each gets it once.
public enum EventWaitRules {
    /// How long received events are kept for waits registered after them (a registration waits
    /// in the events topic at most this long, e.g. during a dispatcher outage).
    public static let defaultLookback: Duration = .seconds(900)

    /// The event `wait` takes among `recent` (received in order), if any.
    public static func firstMatch(for wait: EventWaitRecord, in recent: [RecentEvent]) -> EventEnvelope? {
        guard wait.matched == nil else { return nil }
        return recent.first { $0.event.tenant == wait.tenant && wait.request.matches($0.event, receivedAt: $0.receivedAt) }?.event
    }

    /// The waits among `pending` that `event`, received at `receivedAt`, completes.
    public static func waits(matching event: RecentEvent, among pending: [EventWaitRecord]) -> [EventWaitRecord] {
        pending.filter { $0.matched == nil && $0.tenant == event.event.tenant && $0.request.matches(event.event, receivedAt: event.receivedAt) }
    }

    /// Matches a batch: the new `waits` against `recent` events (those stored before and the
    /// batch's own), then the batch's `events` against the waits still pending (stored ones and
    /// the new ones). Each wait gets at most one event, the first received.
    public static func match(newWaits waits: [EventWaitRecord], events: [RecentEvent], stored: [RecentEvent], pending: [EventWaitRecord]) -> [EventWaitRecord] {
        var matched: [String: EventWaitRecord] = [:]
        var order: [String] = []
        func take(_ wait: EventWaitRecord, _ event: EventEnvelope) {
            guard matched[wait.id] == nil else { return }
            var wait = wait
            wait.matched = event
            matched[wait.id] = wait
            order.append(wait.id)
        }
        let known = (stored + events).sorted { $0.receivedAt < $1.receivedAt }
        for wait in waits {
            if let event = firstMatch(for: wait, in: known) { take(wait, event) }
        }
        var open = pending.filter { wait in !waits.contains { $0.id == wait.id } } + waits
        for event in events {
            for wait in Self.waits(matching: event, among: open) where matched[wait.id] == nil { take(wait, event.event) }
            open.removeAll { matched[$0.id] != nil }
        }
        return order.map { matched[$0]! }
    }
}
