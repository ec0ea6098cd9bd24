import BatonProtocol
import Foundation

/// The rules of concurrency limits (``BatonProtocol/ConcurrencyLimit``), as pure functions.
///
/// A limited run is in its queue (``BatonProtocol/ConcurrencySlot``) from its creation: first
/// waiting, `QUEUED`, then holding a slot. A grant hands the oldest waiting runs the free slots
/// and makes a grant timer of each due: firing it sends the run's command, so a crash between
/// the grant and the command loses nothing (timers fire at least once). The run gives its slot
/// back when it waits or ends (``RunRules`` add ``RunWrite/releaseSlot`` to those changes), and
/// joins the queue again, at its end, when the wait is over. A yield keeps the slot (the run
/// goes on at once), and so does a crash of the job service: the slot belongs to the run, not
/// to a process, so the run's redelivered command, or the reaper, finishes it and frees the slot.
public enum ConcurrencyRules {
    /// The prefix of grant timers.
    static let grantPrefix = "baton.slot#"

    /// The timer of the `sequence`-th grant in the store: its firing resumes the run.
    public static func grantTimerID(sequence: Int64) -> String { "\(grantPrefix)\(sequence)" }

    /// Whether timer `timerId` is a grant.
    public static func isGrant(_ timerId: String) -> Bool { timerId.hasPrefix(grantPrefix) }

    /// The grant number of grant timer `timerId`; `nil` for other timers.
    public static func grantSequence(ofTimer timerId: String) -> Int64? {
        isGrant(timerId) ? Int64(timerId.dropFirst(grantPrefix.count)) : nil
    }

    /// Whether a limited run is sent its command now, when timer `timerId` fires (`nil`: the
    /// reaper re-issues it), given the grant it holds (`holdingSequence`; `nil`: it holds no
    /// slot). A grant resumes the run only while it is that grant's holder: one that fires again
    /// late (its first firing was not recorded) after the run waited and queued again resumes
    /// nothing. Any other timer resumes a run that holds its slot (a yield), and none that does
    /// not: that run queues for a slot (``queues(resumingWith:)``).
    public static func resumes(timer timerId: String?, holdingSequence: Int64?) -> Bool {
        guard let timerId else { return true }
        if let sequence = grantSequence(ofTimer: timerId) { return holdingSequence == sequence }
        return holdingSequence != nil
    }

    /// Whether a limited run must queue for a slot when timer `timerId` ends its wait, rather
    /// than be resumed at once. `nil` is the reaper re-issuing a stuck run's command: that run
    /// holds its slot. Grants and yields go on with their slot; a parent notice and an event
    /// wait's timeout resume nothing themselves.
    public static func queues(resumingWith timerId: String?) -> Bool {
        guard let timerId else { return false }
        return !(isGrant(timerId) || timerId.hasPrefix("yield#") || timerId == RunRules.parentNoticeTimerID
                 || RunRules.eventWaitTask(ofTimeoutTimer: timerId) != nil)
    }

    /// The runs that get a slot: the first of `queued` (oldest first), as many as the `limit`
    /// leaves free beside the `holding` ones (none when a lowered limit is still exceeded).
    public static func granted(limit: Int, holding: Int, queued: [String]) -> [String] {
        Array(queued.prefix(max(0, limit - holding)))
    }
}

/// A run that got a slot: its grant timer is due now.
public struct SlotGrant: Sendable, Hashable {
    public var runId: String
    public var queue: String
    public var timerId: String

    public init(runId: String, queue: String, timerId: String) {
        self.runId = runId
        self.queue = queue
        self.timerId = timerId
    }
}

/// How many runs wait for a concurrency slot, and how many slots are held, over every queue.
public struct SlotCounts: Sendable, Hashable {
    public var waiting: Int
    public var holding: Int

    public init(waiting: Int, holding: Int) {
        self.waiting = waiting
        self.holding = holding
    }
}

/// Where concurrency queues live, for one or several task-result instances.
public protocol ConcurrencySlotStore: Sendable {
    /// The runs waiting for a slot and the slots held, over every queue.
    func slotCounts() async throws -> SlotCounts
    /// Hands the free slots of every queue to its oldest waiting runs (``ConcurrencyRules``),
    /// one queue at a time across instances, and makes their grant timers due at `now`.
    func grantSlots(now: Date) async throws -> [SlotGrant]
}
