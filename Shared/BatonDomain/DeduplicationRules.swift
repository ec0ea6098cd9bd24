import BatonProtocol
import Foundation

/// A deduplication key as a store holds it: who holds it and how its task ended.
public struct DeduplicationRecord: Sendable, Hashable {
    /// Where the task holding the key stands.
    public enum Status: String, Sendable, Hashable {
        /// Claimed: its task executes (or its holder crashed; see the lease).
        case running = "RUNNING"
        /// Its task completed: later claimants get `output`.
        case completed = "COMPLETED"
        /// Its task failed for good: the next claimant executes again, unless it skips failures.
        case failed = "FAILED"
    }

    public var runId: String
    public var taskId: String
    public var status: Status
    public var output: JSONValue?
    public var error: String?
    /// When the holder claimed it (a running claim older than the lease is taken over).
    public var claimedAt: Date
    public var updatedAt: Date

    public init(runId: String, taskId: String, status: Status, output: JSONValue? = nil, error: String? = nil,
                claimedAt: Date, updatedAt: Date) {
        self.runId = runId
        self.taskId = taskId
        self.status = status
        self.output = output
        self.error = error
        self.claimedAt = claimedAt
        self.updatedAt = updatedAt
    }
}

/// The rules of deduplication keys, as pure functions: a store reads the key's record (locked
/// for the transaction), asks these what to do, and writes what they return. Every backend
/// therefore decides alike.
public enum DeduplicationRules {
    /// What a claim decides.
    public struct Decision: Sendable, Hashable {
        /// The record to write, when the claim changes it (the claimant takes the key).
        public var write: DeduplicationRecord?
        /// The answer to the claimant.
        public var answer: DeduplicationClaim
    }

    /// Decides a claim of `request` on a key whose record is `existing` (`nil`: never claimed).
    ///
    /// - The first claimant takes the key and executes.
    /// - A completed key answers with its output; a failed one is taken again, unless the
    ///   claimant skips failures (then it gets the error).
    /// - A running key is taken again by its own holder (the same run and task, after a crash)
    ///   or by anyone once the claim is older than `lease`; others are told it is busy.
    public static func claim(_ request: DeduplicationClaimRequest, existing: DeduplicationRecord?, now: Date, lease: Duration) -> Decision {
        let take = Decision(write: DeduplicationRecord(runId: request.runId, taskId: request.taskId, status: .running,
                                                       claimedAt: now, updatedAt: now),
                            answer: DeduplicationClaim(outcome: .execute))
        guard let existing else { return take }
        switch existing.status {
        case .completed:
            return Decision(write: nil, answer: DeduplicationClaim(outcome: .completed, output: existing.output ?? .null))
        case .failed:
            return request.skipFailure ? Decision(write: nil, answer: DeduplicationClaim(outcome: .failed, error: existing.error)) : take
        case .running:
            let holder = existing.runId == request.runId && existing.taskId == request.taskId
            let lapsed = now.timeIntervalSince(existing.claimedAt) * 1000 > Double(lease / .milliseconds(1))
            return holder || lapsed ? take : Decision(write: nil, answer: DeduplicationClaim(outcome: .busy))
        }
    }

    /// The record after the task holding the key completed with `output` (`nil`: unchanged; a
    /// completed key keeps its first output, whoever completes it again).
    public static func completed(_ existing: DeduplicationRecord?, output: JSONValue, now: Date) -> DeduplicationRecord? {
        guard var record = existing, record.status != .completed else { return nil }
        record.status = .completed
        record.output = output
        record.error = nil
        record.updatedAt = now
        return record
    }

    /// The record after task `taskId` of run `runId` failed for good with `error` (`nil`:
    /// unchanged). Only the holder's failure of a running key counts: a late failure of a
    /// former holder never releases a key someone else took since.
    public static func failed(_ existing: DeduplicationRecord?, runId: String, taskId: String, error: String, now: Date) -> DeduplicationRecord? {
        guard var record = existing, record.status == .running, record.runId == runId, record.taskId == taskId else { return nil }
        record.status = .failed
        record.error = error
        record.updatedAt = now
        return record
    }
}

/// Where deduplication keys live: one async store per backend (SQLite, PostgreSQL), each
/// deciding with ``DeduplicationRules`` inside one transaction per call.
public protocol DeduplicationStore: Sendable {
    /// Claims `request`'s key atomically (see ``DeduplicationRules/claim(_:existing:now:lease:)``).
    func claim(_ request: DeduplicationClaimRequest, lease: Duration, now: Date) async throws -> DeduplicationClaim
    /// Records that the task holding `scopedKey` completed with `output`.
    func recordCompleted(scopedKey: String, output: JSONValue, now: Date) async throws
    /// Records that task `taskId` of run `runId`, holding `scopedKey`, failed for good.
    func recordFailed(scopedKey: String, runId: String, taskId: String, error: String, now: Date) async throws
}
