import BatonProtocol
import Foundation

/// A background fetch as a store holds it, and which instance performs it.
public struct FetchRecord: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    /// Requests already made.
    public var attempts: Int
    public var nextAttemptAt: Date
    public var done: Bool
    /// Whether the fetch's run ended (a fetch of an ended run is never performed).
    public var runEnded: Bool
    public var leaseOwner: String?
    public var leaseUntil: Date?

    public init(runId: String, taskId: String, attempts: Int, nextAttemptAt: Date, done: Bool = false, runEnded: Bool = false,
                leaseOwner: String? = nil, leaseUntil: Date? = nil) {
        self.runId = runId
        self.taskId = taskId
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.done = done
        self.runEnded = runEnded
        self.leaseOwner = leaseOwner
        self.leaseUntil = leaseUntil
    }
}

/// A fetch an instance claimed: it performs the request, then completes or reschedules it.
public struct ClaimedFetch: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    public var request: BackgroundFetchRequest
    /// Requests already made.
    public var attempts: Int

    public init(runId: String, taskId: String, request: BackgroundFetchRequest, attempts: Int) {
        self.runId = runId
        self.taskId = taskId
        self.request = request
        self.attempts = attempts
    }
}

/// The rules of background fetches shared by several task-result instances, as pure functions:
/// an instance claims a due fetch with a lease, performs it, and completes or reschedules it;
/// only the holder's outcome counts. A holder that dies loses the fetch when its lease ends.
public enum FetchRules {
    /// Whether `owner` may claim `fetch` at `now`: not done, its run not ended, its attempt
    /// due, and not leased, its lease ended, or leased to `owner` itself (see `TimerRules`).
    public static func isClaimable(_ fetch: FetchRecord, by owner: String, now: Date) -> Bool {
        guard !fetch.done, !fetch.runEnded, fetch.nextAttemptAt <= now else { return false }
        return LeaseRules.isFree(owner: fetch.leaseOwner, until: fetch.leaseUntil, for: owner, now: now)
    }

    /// `fetch` claimed by `owner` until `now + lease`.
    public static func claimed(_ fetch: FetchRecord, by owner: String, now: Date, lease: Duration) -> FetchRecord {
        var record = fetch
        record.leaseOwner = owner
        record.leaseUntil = LeaseRules.end(from: now, lease: lease)
        return record
    }

    /// `fetch` after its holder `owner` made one more attempt, to try again at `next` (lease
    /// released); `nil` when `owner` does not hold it.
    public static func rescheduled(_ fetch: FetchRecord, by owner: String, next: Date) -> FetchRecord? {
        guard !fetch.done, fetch.leaseOwner == owner else { return nil }
        var record = fetch
        record.attempts += 1
        record.nextAttemptAt = next
        record.leaseOwner = nil
        record.leaseUntil = nil
        return record
    }

    /// `fetch` done after `attempts` requests by its holder `owner`; `nil` when `owner` does not
    /// hold it (its response is dropped: the holder's counts).
    public static func completed(_ fetch: FetchRecord, by owner: String, attempts: Int) -> FetchRecord? {
        guard !fetch.done, fetch.leaseOwner == owner else { return nil }
        var record = fetch
        record.done = true
        record.attempts = attempts
        return record
    }
}

/// Where background fetches live, for one or several task-result instances.
public protocol FetchStore: Sendable {
    /// Records run `runId`'s fetch `taskId`, due at `now` (once).
    func scheduleFetch(runId: String, taskId: String, request: BackgroundFetchRequest, now: Date) async throws
    /// Claims up to `limit` due fetches for `owner`, leased for `lease`; each to one claimant.
    func claimDueFetches(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedFetch]
    /// Marks the fetches of run `runId` as belonging to an ended run: never performed again.
    func endFetches(runId: String) async throws
    /// Reschedules a claimed fetch after a failed attempt; `false` when `owner` no longer holds it.
    @discardableResult
    func rescheduleFetch(_ fetch: ClaimedFetch, owner: String, next: Date) async throws -> Bool
    /// Stores the response of a claimed fetch as its task's output; `false` when `owner` no
    /// longer holds it (the response is dropped).
    @discardableResult
    func completeFetch(_ fetch: ClaimedFetch, owner: String, response: BackgroundFetchResponse, now: Date) async throws -> Bool
}
