import Foundation

/// A durable timer as a store holds it: a wait, a retry back-off or a yield of a run, due at a
/// time, and which instance of the task-result service holds it while firing it.
public struct TimerRecord: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    public var dueAt: Date
    public var fired: Bool
    /// The instance firing it, until `leaseUntil`.
    public var leaseOwner: String?
    public var leaseUntil: Date?

    public init(runId: String, taskId: String, dueAt: Date, fired: Bool = false, leaseOwner: String? = nil, leaseUntil: Date? = nil) {
        self.runId = runId
        self.taskId = taskId
        self.dueAt = dueAt
        self.fired = fired
        self.leaseOwner = leaseOwner
        self.leaseUntil = leaseUntil
    }
}

/// A timer an instance claimed: it sends the run's resume command, then marks it fired.
public struct ClaimedTimer: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    public var dueAt: Date

    public init(runId: String, taskId: String, dueAt: Date) {
        self.runId = runId
        self.taskId = taskId
        self.dueAt = dueAt
    }
}

/// The rules of timers shared by several task-result instances, as pure functions: an
/// instance claims a due timer with a lease, fires it (sends the resume command) and marks it
/// fired. An instance that dies holding a lease loses it when the lease ends, and another one
/// takes the timer over (at least once: a run's keyed tasks make a second resume harmless).
public enum TimerRules {
    /// Whether `owner` may claim `timer` at `now`: due, not fired, and not leased, its lease
    /// ended, or leased to `owner` itself (an instance retakes its own claims at once: after a
    /// failed round, or restarted under the same name).
    public static func isClaimable(_ timer: TimerRecord, by owner: String, now: Date) -> Bool {
        guard !timer.fired, timer.dueAt <= now else { return false }
        return LeaseRules.isFree(owner: timer.leaseOwner, until: timer.leaseUntil, for: owner, now: now)
    }

    /// `timer` claimed by `owner` until `now + lease`.
    public static func claimed(_ timer: TimerRecord, by owner: String, now: Date, lease: Duration) -> TimerRecord {
        var record = timer
        record.leaseOwner = owner
        record.leaseUntil = LeaseRules.end(from: now, lease: lease)
        return record
    }

    /// `timer` after `owner` fired it (`nil`: unchanged, because another instance holds it now
    /// or it is fired already; that one marks it).
    public static func fired(_ timer: TimerRecord, by owner: String) -> TimerRecord? {
        guard !timer.fired, timer.leaseOwner == owner else { return nil }
        var record = timer
        record.fired = true
        return record
    }
}

/// Where timers live, for one or several task-result instances.
public protocol TimerStore: Sendable {
    /// Schedules run `runId`'s timer `taskId` at `dueAt` (once: scheduling it again changes nothing).
    func schedule(runId: String, taskId: String, dueAt: Date) async throws
    /// Claims up to `limit` timers due at `now` for `owner`, leased for `lease`, oldest first;
    /// each claimable timer is given to one claimant only.
    func claimDueTimers(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedTimer]
    /// Drops the pending timers of run `runId` (it ended: canceled or timed out).
    func cancelTimers(runId: String) async throws
    /// Marks `timers` fired, those `owner` still holds (see ``TimerRules/fired(_:by:)``).
    func markFired(_ timers: [ClaimedTimer], owner: String) async throws
}
