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
