import BatonProtocol
import Foundation

/// The first event seen with an id, and whether its runs were all started.
public struct SeenEvent: Sendable, Hashable {
    /// The first envelope that arrived with this id; later ones with the same id are resends.
    public var event: EventEnvelope
    /// Whether every run the event starts was started (or it was dropped as canceled).
    public var dispatched: Bool

    public init(event: EventEnvelope, dispatched: Bool) {
        self.event = event
        self.dispatched = dispatched
    }
}

/// What one batch of consumed events changed, written in one transaction with the offsets
/// consumed (see ``DispatcherStoring/commit(_:at:)``).
public struct DispatchBatch: Sendable {
    /// Events seen for the first time (the first one with an id wins).
    public var firstSeen: [EventEnvelope] = []
    /// Events held until their delivery time.
    public var held: [EventEnvelope] = []
    /// Runs started: (event id, job slug, run id).
    public var runsStarted: [(eventID: String, jobSlug: String, runID: String)] = []
    /// Tenant-scoped ids of events whose runs all started (or that were dropped as canceled).
    public var eventsDispatched: [String] = []
    /// The next offset to read of each consumed partition, by topic: one past the highest
    /// offset consumed.
    public var consumed: [String: [Int32: Int64]] = [:]
    /// Waits for events registered (`io.waitForEvent`), matched against recent events.
    public var waitsRegistered: [EventWaitRecord] = []
    /// Events delivered now (not held, not invocations), matched against pending waits and
    /// kept a while for waits registered later (``EventWaitRules``).
    public var waitableEvents: [EventEnvelope] = []
    /// Whether the waitable events are kept a while for waits registered after them
    /// (`dispatcher.event.wait.lookback.seconds` > 0).
    public var keepsRecentEvents = true

    public init() {}

    /// Records that the record at `offset` of `topic`'s `partition` was consumed.
    public mutating func consumed(topic: String, partition: Int32, offset: Int64) {
        consumed[topic, default: [:]][partition] = max(consumed[topic]?[partition] ?? 0, offset + 1)
    }
}

/// A scheduled job whose next tick is due.
public struct DueSchedule: Sendable, Hashable {
    public var jobSlug: String
    public var trigger: JobTrigger
    public var due: Date
    public var lastTick: Date?

    public init(jobSlug: String, trigger: JobTrigger, due: Date, lastTick: Date?) {
        self.jobSlug = jobSlug
        self.trigger = trigger
        self.due = due
        self.lastTick = lastTick
    }
}

/// A registration refused because its slug belongs to another tenant.
public struct JobOwnershipConflict: Error, Sendable, CustomStringConvertible {
    public var slug: String
    public var owner: Tenant
    public var claimant: Tenant
    public var description: String {
        "job '\(slug)' belongs to \(owner); a registration from \(claimant) conflicts with it: give the job another id"
    }
}

/// The dispatcher's rules for events, jobs and schedules, as pure functions.
public enum DispatchRules {
    /// The stored form of a first-seen event once its runs all started: what a resend is
    /// answered with (id, name, timestamp, deliverAt); its payload and context are dropped (the
    /// runs have them). `nil`: nothing to change (it was marked before).
    public static func dispatched(_ seen: SeenEvent) -> EventEnvelope? {
        guard !seen.dispatched else { return nil }
        var event = seen.event
        event.payload = .null
        event.context = nil
        return event
    }

    /// Whether `registration` may replace the job registered as `existing`: a slug belongs to
    /// the tenant that registered it first.
    public static func checkOwnership(_ registration: JobRegistration, existing: JobRegistration?) throws(JobOwnershipConflict) {
        guard let existing, existing.tenant != registration.tenant else { return }
        throw JobOwnershipConflict(slug: registration.slug, owner: existing.tenant, claimant: registration.tenant)
    }

    /// What keeping a job's schedule in step with its registration does.
    public enum ScheduleChange: Sendable, Hashable {
        /// The job is not scheduled (any more): its schedule goes.
        case remove
        /// The schedule is unchanged: it keeps its next tick.
        case keep
        /// A new or changed schedule, starting from now: its next tick is `next`.
        case set(JobTrigger, next: Date)
    }

    /// The change `registration` makes to a schedule currently at `current` (`nil`: none).
    public static func syncSchedule(_ registration: JobRegistration, current: JobTrigger?, now: Date) -> ScheduleChange {
        // A disabled job has no schedule; enabled again, it starts from now (missed ticks are not replayed).
        guard registration.isEnabled, registration.trigger.isSchedule, let next = registration.trigger.nextTick(after: now) else { return .remove }
        if current == registration.trigger { return .keep }
        return .set(registration.trigger, next: next)
    }
}

/// Where the dispatcher keeps events seen, runs started, job registrations and schedules, for
/// one or several instances.
public protocol DispatcherStoring: DelayedEventStore, ConsumedOffsetStore {
    /// Writes a batch's effects and its offsets in one transaction (every write idempotent),
    /// matching its waits and events (``EventWaitRules/match(newWaits:events:stored:pending:)``).
    /// - Returns: the waits that got their event in this batch, to deliver.
    @discardableResult
    func commit(_ effects: DispatchBatch, at now: Date) async throws -> [EventWaitMatch]
    /// The flow-control decision for event `eventID` (tenant-scoped) and job `jobSlug`, made once
    /// (``FlowControlRules/decide(_:starts:now:)`` over the key's recorded starts, which it
    /// updates, in one transaction that no other instance interleaves for the same job and key);
    /// asking again returns the first decision.
    func decideFlow(jobSlug: String, key: String, control: FlowControl, eventID: String, at now: Date) async throws -> FlowDecision
    /// The recorded starts of job `jobSlug`'s flow-control key `key` (for a debounce: the latest
    /// arrival); empty when none.
    func flowStarts(jobSlug: String, key: String) async throws -> [Date]
    /// Waits matched before `before` whose run was not told yet (a crash between the commit and
    /// the delivery), oldest first.
    func undeliveredWaitMatches(before: Date, limit: Int) async throws -> [EventWaitMatch]
    /// Records that the runs of `ids` (``EventWaitMatch/id``) were told.
    func markWaitMatchesDelivered(ids: [String], at now: Date) async throws
    /// Forgets recent events received before `receivedBefore`, and waits delivered or timed
    /// out before `endedBefore`; returns how many rows went.
    func pruneEventWaits(receivedBefore: Date, endedBefore: Date) async throws -> Int
    /// The first event seen with `eventID` (tenant-scoped), if any.
    func seenEvent(eventID: String) async throws -> SeenEvent?
    /// The first events seen with `eventIDs` (tenant-scoped), by id: one look for a batch.
    func seenEvents(eventIDs: [String]) async throws -> [String: SeenEvent]
    /// The statuses of the delayed events among `ids`, by id: one look for a batch.
    func delayedEventStatuses(ids: [String]) async throws -> [String: DelayedEventRecord.Status]
    /// The jobs whose runs were started for each of `eventIDs`, by event id: one look for a batch.
    func dispatchedJobs(eventIDs: [String]) async throws -> [String: Set<String>]
    /// Records that event `eventID` started all its runs (``DispatchRules/dispatched(_:)``).
    func markEventDispatched(eventID: String, at now: Date) async throws
    /// Forgets events dispatched, and delayed events ended, before `cutoff`; returns how many rows went.
    func prune(before cutoff: Date) async throws -> Int
    /// Records (or replaces) a job registration.
    /// - Throws: ``JobOwnershipConflict`` when the slug is registered by another tenant.
    func upsert(_ registration: JobRegistration) async throws
    /// Keeps the job's schedule in step with its registration (``DispatchRules/syncSchedule(_:current:now:)``).
    func syncSchedule(_ registration: JobRegistration, now: Date) async throws
    /// Schedules whose next tick is due at `now`.
    func dueSchedules(now: Date) async throws -> [DueSchedule]
    /// Records that the tick at `fired` ran; the next is due at `next` (unless another instance
    /// advanced it already).
    func advanceSchedule(jobSlug: String, fired: Date, next: Date) async throws
    /// Every registered job; only `tenant`'s when given.
    func jobs(of tenant: Tenant?) async throws -> [JobRegistration]
    /// The job with `slug`, if registered.
    func job(slug: String) async throws -> JobRegistration?
    /// The jobs registered for events named `name` (of every tenant), by slug.
    func jobs(forEventName name: String) async throws -> [JobRegistration]
    /// Whether the run of `jobSlug` for `eventID` was already started.
    func wasDispatched(eventID: String, jobSlug: String) async throws -> Bool
    /// Records that the run of `jobSlug` for `eventID` was started.
    func markDispatched(eventID: String, jobSlug: String, runID: String) async throws
    /// Up to `limit` events received most recently, newest first, whose tenant-scoped ids start
    /// with `idPrefix` (all when `nil`); see ``DispatchRules/listed(_:tenant:limit:)``.
    func recentEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent]
    /// Up to `limit` delayed events not delivered yet, soonest first, whose tenant-scoped ids
    /// start with `idPrefix` (all when `nil`).
    func pendingDelayedEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent]
}

/// An event as the dispatcher lists it: the first envelope received with its id (its payload
/// dropped once its runs started), when it arrived, and what became of it.
public struct ListedEvent: Sendable, Hashable {
    public var event: EventEnvelope
    /// When the dispatcher received it; `nil` for a delayed event listed from its hold.
    public var receivedAt: Date?
    /// Whether every run it starts was started.
    public var dispatched: Bool
    /// For a delayed event: when it is (or was) due, and its status.
    public var deliverAt: Date?
    public var delayedStatus: DelayedEventRecord.Status?

    public init(event: EventEnvelope, receivedAt: Date?, dispatched: Bool, deliverAt: Date? = nil,
                delayedStatus: DelayedEventRecord.Status? = nil) {
        self.event = event
        self.receivedAt = receivedAt
        self.dispatched = dispatched
        self.deliverAt = deliverAt
        self.delayedStatus = delayedStatus
    }
}

extension DispatchRules {
    /// The id prefix that narrows a listing to `tenant` in the store (`nil`: every tenant, or the
    /// default tenant's unscoped ids, which only ``listed(_:tenant:limit:)`` can tell apart).
    public static func listingPrefix(for tenant: Tenant?) -> String? {
        guard let tenant, tenant != .default else { return nil }
        return tenant.scoped("")
    }

    /// How many rows to read for a listing of `limit` for `tenant`: more than `limit` when
    /// the store cannot narrow to the tenant by prefix (the rest are dropped by ``listed(_:tenant:limit:)``).
    public static func rowsToRead(for tenant: Tenant?, limit: Int) -> Int {
        tenant == .default ? limit * 4 : limit
    }

    /// The events among `events` that `tenant` may see (all when `nil`), at most `limit`, in
    /// their order.
    public static func listed(_ events: [ListedEvent], tenant: Tenant?, limit: Int) -> [ListedEvent] {
        Array(events.lazy.filter { tenant == nil || $0.event.tenant == tenant }.prefix(limit))
    }
}

extension DispatcherStoring {
    /// Jobs of the event's tenant whose trigger matches `event`.
    public func matchingJobs(for event: EventEnvelope) async throws -> [JobRegistration] {
        try await jobs(forEventName: event.name).filter { $0.matches(event) }
    }
}
