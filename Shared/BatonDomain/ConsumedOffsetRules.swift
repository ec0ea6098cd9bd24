/// How far a store has consumed each partition it reads: the next offset to read, written in
/// the transaction of the state change that consumed the records before it.
public enum ConsumedOffsetRules {
    /// The next offset after consuming up to `next` (`nil`: unchanged). Offsets never go back:
    /// a batch redelivered after a crash, or applied late by a former owner of the partition,
    /// cannot rewind the store.
    public static func advanced(_ current: Int64?, to next: Int64) -> Int64? {
        guard let current else { return next }
        return next > current ? next : nil
    }
}

/// The consumed offsets of a store, for one or several instances: each partition's next offset
/// is shared, so whichever instance owns a partition after a rebalance starts where the store
/// left off.
public protocol ConsumedOffsetStore: Sendable {
    /// The next offset to read of each partition of `topic`.
    func consumedOffsets(topic: String) async throws -> [Int32: Int64]
    /// Moves each partition's next offset to the given one, unless it is already further.
    func advanceOffsets(topic: String, to next: [Int32: Int64]) async throws
}
