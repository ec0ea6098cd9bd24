import BatonProtocol
import Foundation

/// A delayed event as a store holds it: held until `deliverAt`, delivered, or canceled (a
/// cancel that came first leaves a tombstone, `event == nil`, so the event is dropped when it
/// arrives). Keyed by the tenant-scoped event id.
public struct DelayedEventRecord: Sendable, Hashable {
    /// What became of it.
    public enum Status: String, Sendable, Hashable {
        case pending = "PENDING"
        case delivered = "DELIVERED"
        case canceled = "CANCELED"
    }

    public var id: String
    public var event: EventEnvelope?
    public var deliverAt: Date
    public var status: Status
    public var leaseOwner: String?
    public var leaseUntil: Date?
    public var updatedAt: Date

    public init(id: String, event: EventEnvelope?, deliverAt: Date, status: Status, leaseOwner: String? = nil,
                leaseUntil: Date? = nil, updatedAt: Date) {
        self.id = id
        self.event = event
        self.deliverAt = deliverAt
        self.status = status
        self.leaseOwner = leaseOwner
        self.leaseUntil = leaseUntil
        self.updatedAt = updatedAt
    }
}

/// The rules of delayed events shared by several dispatchers, as pure functions: any instance
/// holds an event or takes its cancel (the store is shared), and one instance at a time
/// delivers a due event under a lease.
public enum DelayedEventRules {
    /// The record after event `event` (scoped id `id`) arrives to be held (`nil`: unchanged).
    /// A second hold changes nothing; a canceled id stays canceled (its event is kept for the
    /// record, never delivered).
    public static func held(_ existing: DelayedEventRecord?, id: String, event: EventEnvelope, now: Date) -> DelayedEventRecord? {
        guard var record = existing else {
            return DelayedEventRecord(id: id, event: event, deliverAt: event.deliverAt ?? now, status: .pending, updatedAt: now)
        }
        guard record.event == nil else { return nil }
        record.event = event
        return record
    }

    /// A cancel of `id`: the record to write (if any) and the answer (the status afterwards,
    /// and whether this cancel changed it). Delivered events stay delivered.
    public static func canceled(_ existing: DelayedEventRecord?, id: String, now: Date) -> (write: DelayedEventRecord?, status: DelayedEventRecord.Status, canceled: Bool) {
        guard var record = existing else {
            return (DelayedEventRecord(id: id, event: nil, deliverAt: now, status: .canceled, updatedAt: now), .canceled, true)
        }
        guard record.status == .pending else { return (nil, record.status, false) }
        record.status = .canceled
        record.updatedAt = now
        return (record, .canceled, true)
    }

    /// Whether `owner` may claim `record` for delivery at `now`: pending, its event here, due,
    /// and not leased, its lease ended, or leased to `owner` itself (see `TimerRules`).
    public static func isClaimable(_ record: DelayedEventRecord, by owner: String, now: Date) -> Bool {
        guard record.status == .pending, record.event != nil, record.deliverAt <= now else { return false }
        return LeaseRules.isFree(owner: record.leaseOwner, until: record.leaseUntil, for: owner, now: now)
    }

    /// `record` claimed for delivery by `owner` until `now + lease`.
    public static func claimed(_ record: DelayedEventRecord, by owner: String, now: Date, lease: Duration) -> DelayedEventRecord {
        var claimed = record
        claimed.leaseOwner = owner
        claimed.leaseUntil = LeaseRules.end(from: now, lease: lease)
        return claimed
    }

    /// `record` after its holder `owner` started its runs (`nil`: not its holder, or no longer
    /// pending, e.g. canceled meanwhile: its runs start anyway, as a delivery before the cancel).
    public static func delivered(_ record: DelayedEventRecord, by owner: String, now: Date) -> DelayedEventRecord? {
        guard record.status == .pending, record.leaseOwner == owner else { return nil }
        var delivered = record
        delivered.status = .delivered
        delivered.updatedAt = now
        return delivered
    }
}

/// Where delayed events live, for one or several dispatchers.
public protocol DelayedEventStore: Sendable {
    /// Holds `event` (keyed by `id`, its tenant-scoped id) until its `deliverAt`.
    func hold(_ event: EventEnvelope, id: String, now: Date) async throws
    /// Cancels `id` unless delivered; an id not seen yet is remembered as canceled.
    func cancelDelayed(id: String, now: Date) async throws -> (status: DelayedEventRecord.Status, canceled: Bool)
    /// The status of delayed event `id`, if it is one.
    func delayedEventStatus(id: String) async throws -> DelayedEventRecord.Status?
    /// Claims up to `limit` due events for delivery by `owner`; each to one claimant.
    func claimDueDelayed(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [EventEnvelope]
    /// Records that `owner` delivered `id` (its runs started).
    func markDelivered(id: String, owner: String, now: Date) async throws
}
