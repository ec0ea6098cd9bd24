import Foundation

/// The lease every claimable item (timer, fetch, delayed event) carries while an instance acts
/// on it: one rule for all of them.
enum LeaseRules {
    /// Whether `claimant` may take an item leased to `owner` until `until` at `now`: never
    /// leased, the lease ended, or its own (an instance retakes its claims at once: after a
    /// failed round, or restarted under the same name).
    static func isFree(owner: String?, until: Date?, for claimant: String, now: Date) -> Bool {
        guard let until, owner != claimant else { return true }
        return until < now
    }

    /// When a lease taken at `now` for `lease` ends.
    static func end(from now: Date, lease: Duration) -> Date {
        now.addingTimeInterval(Double(lease / .milliseconds(1)) / 1000)
    }
}

/// A named lease on a duty only one instance performs at a time (e.g. looking for stuck runs):
/// the holder renews it each round; when it dies, another instance takes the duty over once the
/// lease ends.
public struct DutyLease: Sendable, Hashable {
    public var name: String
    public var owner: String
    public var until: Date

    public init(name: String, owner: String, until: Date) {
        self.name = name
        self.owner = owner
        self.until = until
    }
}

/// The rules of duty leases, as pure functions.
public enum DutyLeaseRules {
    /// The lease after `claimant` asks for duty `name` at `now` for `lease`: taken or renewed
    /// when free (never held, ended, or its own); `nil` while another instance holds it.
    public static func acquire(_ current: DutyLease?, name: String, by claimant: String, now: Date, lease: Duration) -> DutyLease? {
        guard LeaseRules.isFree(owner: current?.owner, until: current?.until, for: claimant, now: now) else { return nil }
        return DutyLease(name: name, owner: claimant, until: LeaseRules.end(from: now, lease: lease))
    }

    /// What a store can answer from a read alone: `true` when `claimant` holds the duty for more
    /// than a third of `lease` still (no renewal yet), `false` while another instance holds it,
    /// `nil` when a write decides (free, ended, or the claimant's own lease running low).
    public static func answerWithoutWriting(_ current: DutyLease?, by claimant: String, now: Date, lease: Duration) -> Bool? {
        guard let current, current.until >= now else { return nil }
        guard current.owner == claimant else { return false }
        let remaining = current.until.timeIntervalSince(now)
        return remaining > Double(lease / .milliseconds(1)) / 3000 ? true : nil
    }
}

/// Where duty leases live, shared by the instances of a service.
public protocol DutyLeaseStore: Sendable {
    /// Takes or renews duty `name` for `owner` (see ``DutyLeaseRules/acquire(_:name:by:now:lease:)``);
    /// `true` when `owner` holds it until `now + lease`.
    func acquireDuty(_ name: String, owner: String, now: Date, lease: Duration) async throws -> Bool
}
