/// The bookkeeping of a key-ordered parallel consumer: which records may run now, which wait
/// behind an earlier record with the same key, and up to which offset each partition may be
/// committed. Pure: no I/O, no clock, no locks (callers hold it in a `Mutex`).
///
/// The rules:
/// - records with the same key run one at a time, in offset order (a later one waits until the
///   earlier one ``finish(_:)``es); records with different keys run at once;
/// - a partition's committable offset is the offset of its lowest record that has not finished
///   (or one past the highest accepted record when all have finished): a crash then redelivers
///   every record whose work may not have ended, and nothing before it;
/// - ``revoke(_:)`` forgets a partition: its waiting records are dropped, and records of it that
///   finish afterwards commit nothing (the partition's next owner gets them again). Their keys
///   stay busy until they finish, so a record of the same key accepted after a quick
///   re-assignment still waits for them.
/// - ``pending`` counts records accepted and not finished (running or waiting): a consumer stops
///   fetching (pauses) at its bound rather than buffering without limit.
public struct KeyOrderedQueue<Item: Sendable>: Sendable {
    /// Where a record sits: its partition, the partition's assignment generation, its offset.
    public struct Ticket: Sendable, Hashable {
        public var partition: TopicPartition
        public var offset: Int64
        /// Bumped at each assignment of the partition, so a record from an earlier assignment
        /// never moves a later assignment's offsets.
        var generation: UInt64
        var key: Key
    }

    /// The ordering key: the record key, or (for a record without one) its own position.
    enum Key: Sendable, Hashable {
        case bytes([UInt8])
        case position(TopicPartition, Int64)
    }

    private struct Partition: Sendable {
        var generation: UInt64
        /// Offsets accepted, in increasing order, with whether each has finished; the prefix of
        /// finished ones is dropped as the committable offset moves.
        var offsets: [(offset: Int64, finished: Bool)] = []
        var head = 0
        /// The offset last reported committable.
        var committed: Int64?
    }

    private var partitions: [TopicPartition: Partition] = [:]
    private var nextGeneration: UInt64 = 1
    /// Keys with a record running.
    private var busy: Set<Key> = []
    /// Records waiting behind a running record with the same key, in offset order.
    private var waiting: [Key: [(ticket: Ticket, item: Item)]] = [:]
    /// Records accepted and not finished (running or waiting); dropped waiting ones excluded.
    public private(set) var pending = 0
    /// Records running now.
    public private(set) var running = 0

    public init() {}

    /// The partitions records are accepted from.
    public var assigned: Set<TopicPartition> { Set(partitions.keys) }

    /// Whether `ticket` belongs to the current assignment of its partition (not revoked since,
    /// even if assigned again).
    public func isCurrent(_ ticket: Ticket) -> Bool {
        partitions[ticket.partition]?.generation == ticket.generation
    }

    /// Starts accepting records of `partitions` (a new generation for each).
    public mutating func assign(_ newPartitions: [TopicPartition]) {
        for partition in newPartitions {
            partitions[partition] = Partition(generation: nextGeneration)
            nextGeneration += 1
        }
    }

    /// Forgets `revoked`: waiting records of them are dropped (returned), and their running
    /// records will commit nothing when they finish.
    @discardableResult
    public mutating func revoke(_ revoked: [TopicPartition]) -> [Item] {
        let gone = Set(revoked)
        var dropped: [Item] = []
        for partition in revoked { partitions.removeValue(forKey: partition) }
        for (key, queue) in waiting {
            let (keep, drop) = (queue.filter { !gone.contains($0.ticket.partition) }, queue.filter { gone.contains($0.ticket.partition) })
            dropped += drop.map(\.item)
            waiting[key] = keep.isEmpty ? nil : keep
        }
        pending -= dropped.count
        return dropped
    }

    /// What ``accept(_:partition:offset:key:)`` decided.
    public enum Acceptance: Sendable {
        /// Run it now; hand the ticket back to ``finish(_:)`` when it ends.
        case run(Ticket)
        /// An earlier record with the same key is running: ``finish(_:)`` of that one returns it.
        case queued
        /// Its partition is not assigned (revoked meanwhile): drop it, its next owner gets it.
        case notAssigned
    }

    /// Accepts a record fetched from `partition` at `offset`. Offsets of one partition must be
    /// accepted in increasing order (as a consumer delivers them).
    public mutating func accept(_ item: Item, partition: TopicPartition, offset: Int64, key: [UInt8]?) -> Acceptance {
        guard var state = partitions[partition] else { return .notAssigned }
        if let last = state.offsets.last, last.offset >= offset { return .notAssigned }  // a redelivery of what is held
        state.offsets.append((offset, false))
        partitions[partition] = state
        let key: Key = key.map(Key.bytes) ?? .position(partition, offset)
        let ticket = Ticket(partition: partition, offset: offset, generation: state.generation, key: key)
        pending += 1
        if busy.contains(key) {
            waiting[key, default: []].append((ticket, item))
            return .queued
        }
        busy.insert(key)
        running += 1
        return .run(ticket)
    }

    /// What ``finish(_:)`` decided.
    public struct Completion: Sendable {
        /// The next record with the same key, to run now (its ticket with it).
        public var next: (ticket: Ticket, item: Item)?
        /// The partition's new committable offset (the next offset to consume), when it moved.
        public var commit: (partition: TopicPartition, offset: Int64)?
    }

    /// Records that the record of `ticket` ended (done, failed for good, or fenced).
    public mutating func finish(_ ticket: Ticket) -> Completion {
        var completion = Completion()
        pending -= 1
        running -= 1
        if var queue = waiting[ticket.key], !queue.isEmpty {
            completion.next = queue.removeFirst()
            waiting[ticket.key] = queue.isEmpty ? nil : queue
            running += 1  // the key stays busy with the next record
        } else {
            busy.remove(ticket.key)
        }
        guard var state = partitions[ticket.partition], state.generation == ticket.generation else { return completion }
        // Offsets are in increasing order: find this one by binary search.
        var low = state.head
        var high = state.offsets.count
        while low < high {
            let middle = (low + high) / 2
            if state.offsets[middle].offset < ticket.offset { low = middle + 1 } else { high = middle }
        }
        guard low < state.offsets.count, state.offsets[low].offset == ticket.offset else { return completion }
        state.offsets[low].finished = true
        var moved = false
        while state.head < state.offsets.count, state.offsets[state.head].finished {
            state.head += 1
            moved = true
        }
        if moved {
            let next = state.head < state.offsets.count ? state.offsets[state.head].offset : state.offsets[state.head - 1].offset + 1
            if state.committed.map({ next > $0 }) ?? true {
                state.committed = next
                completion.commit = (ticket.partition, next)
            }
            if state.head > 1024, state.head * 2 > state.offsets.count {
                state.offsets.removeFirst(state.head)
                state.head = 0
            }
        }
        partitions[ticket.partition] = state
        return completion
    }

    /// Records waiting behind a running record of the same key.
    public var waitingCount: Int { pending - running }
}
