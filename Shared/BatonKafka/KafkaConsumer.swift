import CRdKafka
import Foundation
import Logging
import Synchronization

/// A consumer-group member, read as an `AsyncSequence` of records.
///
/// At-least-once: an offset is stored only when the application says a record is processed
/// (``commit(_:)`` or ``storeOffset(_:)``), never on delivery. On a partition revoke, offsets
/// stored so far are committed synchronously before the partitions are given up, and records of
/// revoked partitions already fetched are never handed out.
///
/// - Important: iterate from one task at a time; the records of a partition arrive in order.
public final class KafkaConsumer: Sendable, AsyncSequence {
    public typealias Element = KafkaRecord

    /// What happened in a group rebalance.
    public enum Rebalance: Sendable, Hashable {
        case assigned([TopicPartition])
        case revoked([TopicPartition])
    }

    private let handle: RdKafkaHandle
    private let consumerQueue: RdKafkaQueue
    private let pollQueue = DispatchQueue(label: "baton-kafka-consumer-poll")
    private let commitQueue = DispatchQueue(label: "baton-kafka-consumer-commit")
    private let closed = StopFlag()
    private let stopping = StopFlag()
    private let logger: Logger
    private let onRebalance: (@Sendable (Rebalance) -> Void)?
    private let startOffsets: (@Sendable ([TopicPartition]) -> [TopicPartition: Int64])?
    /// Partitions currently assigned (for fencing and for tests).
    private let assignment = Mutex<Set<TopicPartition>>([])
    /// Records fetched by ``serveRebalances()`` while the application was busy, delivered first.
    private let buffered = Mutex<[KafkaRecord]>([])
    /// Whether fetching is paused (``pause()``): partitions assigned meanwhile start paused too.
    private let paused = Mutex(false)
    /// Until the first assignment, and between a revoke and the next one: the group is forming.
    private let rejoining = Mutex(true)

    /// Joins `groupID` and subscribes to `topics`.
    /// - Parameters:
    ///   - onRebalance: called synchronously on the poll thread before the rebalance
    ///     completes; a revoke handler can fence in-flight work (it must not block for long).
    ///   - startOffsets: for consumers that keep their offsets with their state: called on the
    ///     poll thread with newly assigned partitions, returns the offset to start each one at
    ///     (partitions left out start at the group's committed offset).
    /// - Throws: `KafkaError` with code `.configuration` or `.consumer`.
    public init(
        configuration: KafkaConfiguration,
        groupID: String,
        topics: [String],
        logger: Logger,
        onRebalance: (@Sendable (Rebalance) -> Void)? = nil,
        startOffsets: (@Sendable ([TopicPartition]) -> [TopicPartition: Int64])? = nil
    ) throws(KafkaError) {
        self.logger = logger
        self.onRebalance = onRebalance
        self.startOffsets = startOffsets
        self.handle = try RdKafkaHandle(
            kind: RD_KAFKA_CONSUMER,
            properties: configuration.consumerProperties(groupID: groupID),
            events: Int32(RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_ERROR)
        )
        rd_kafka_poll_set_consumer(handle.pointer)
        self.consumerQueue = RdKafkaQueue(rd_kafka_queue_get_consumer(handle.pointer), owner: handle)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(handle.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.consumer, "cannot subscribe to \(topics)", err)
        }
    }

    /// A `startOffsets` function for a consumer whose store keeps its offsets: each assigned
    /// partition starts at `stored()[partition]` (partitions the store does not know start at the
    /// group's committed offset). When the store cannot be read, `failed` is told and the
    /// partitions start at the committed offsets (at least once: the store's writes are
    /// idempotent).
    public static func startingAtStoredOffsets(
        _ stored: @escaping @Sendable () throws -> [Int32: Int64], failed: @escaping @Sendable (any Error) -> Void
    ) -> @Sendable ([TopicPartition]) -> [TopicPartition: Int64] {
        { partitions in
            let known: [Int32: Int64]
            do {
                known = try stored()
            } catch {
                failed(error)
                known = [:]
            }
            var offsets: [TopicPartition: Int64] = [:]
            for partition in partitions { offsets[partition] = known[partition.partition] }
            return offsets
        }
    }

    /// The partitions this member holds now.
    public var assignedPartitions: Set<TopicPartition> { assignment.withLock { $0 } }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: KafkaConsumer
        /// The next record; `nil` once the consumer is closed or the task cancelled.
        public mutating func next() async throws -> KafkaRecord? {
            try await consumer.nextRecord()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: self) }

    /// Marks `record` processed: its offset will be committed (in the background, and
    /// synchronously before any revoke or close).
    /// - Throws: `KafkaError` with code `.commit` when the partition is no longer assigned
    ///   (the record will be delivered to the new owner).
    public func storeOffset(_ record: KafkaRecord) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, record.topic, record.partition).pointee.offset = record.offset + 1
        let err = rd_kafka_offsets_store(handle.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.commit, "cannot store offset \(record.offset) of \(record.topic)[\(record.partition)]", err)
        }
    }

    /// Marks every record of `partition` before `nextOffset` processed: `nextOffset` is committed
    /// (in the background, and synchronously before any revoke or close). For consumers that
    /// finish records out of order and track the committable offset themselves.
    /// - Throws: `KafkaError` with code `.commit` when the partition is no longer assigned.
    public func storeOffset(_ partition: TopicPartition, next nextOffset: Int64) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = nextOffset
        let err = rd_kafka_offsets_store(handle.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.commit, "cannot store offset \(nextOffset) of \(partition)", err)
        }
    }

    /// Stops fetching from every assigned partition (and from partitions assigned later) until
    /// ``resume()``: back-pressure for a consumer whose in-flight work reached its bound.
    /// Records already fetched are still handed out; group membership is kept (keep calling
    /// ``serveRebalances()`` while paused).
    public func pause() {
        let partitions = paused.withLock { paused -> [TopicPartition] in
            guard !paused else { return [] }
            paused = true
            return Array(assignedPartitions)
        }
        setPaused(partitions, true)
    }

    /// Fetches again from every assigned partition after ``pause()``.
    public func resume() {
        let partitions = paused.withLock { paused -> [TopicPartition] in
            guard paused else { return [] }
            paused = false
            return Array(assignedPartitions)
        }
        setPaused(partitions, false)
    }

    /// Whether fetching is paused.
    public var isPaused: Bool { paused.withLock { $0 } }

    private func setPaused(_ partitions: [TopicPartition], _ pause: Bool) {
        guard !partitions.isEmpty, !closed.isSet else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions { rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition) }
        let err = pause ? rd_kafka_pause_partitions(handle.pointer, list) : rd_kafka_resume_partitions(handle.pointer, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning(pause ? "cannot pause partitions" : "cannot resume partitions", metadata: ["kafka.error": "\(describe(err).text)"])
        }
    }

    /// Marks `record` processed and commits its offset to the group coordinator, returning once
    /// the commit is acknowledged.
    /// - Throws: `KafkaError` with code `.commit`.
    public func commit(_ record: KafkaRecord) async throws {
        try storeOffset(record)
        let handle = self.handle
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitQueue.async {
                let err = rd_kafka_commit(handle.pointer, nil, 0)
                if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET {
                    continuation.resume()
                } else {
                    continuation.resume(throwing: kafkaError(.commit, "offset commit failed", err, retriable: true))
                }
            }
        }
    }

    /// Serves pending group events (rebalances, errors) while the application is processing a
    /// record, so a revoke is handled — and `onRebalance` can fence in-flight work — without
    /// waiting for the next `next()`. Records fetched meanwhile are kept for `next()`.
    ///
    /// - Important: call it from a task other than the one iterating, while a record is being
    ///   processed (e.g. every 100 ms); it never blocks for new records.
    public func serveRebalances() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pollQueue.async { [self] in
                while !closed.isSet, let event = rd_kafka_queue_poll(consumerQueue.pointer, 0) {
                    handle(event)
                    rd_kafka_event_destroy(event)
                }
                continuation.resume()
            }
        }
    }

    /// Makes the sequence end: the iterator returns `nil` within ~100 ms, without leaving the
    /// group. Call ``close()`` afterwards.
    public func stopDelivering() {
        stopping.set()
    }

    /// Commits stored offsets, leaves the group and stops delivering records.
    public func close() async {
        guard !closed.isSet else { return }
        closed.set()
        let handle = self.handle
        let logger = self.logger
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pollQueue.async { [self] in
                // Leave a group that is forming only once it formed (up to 5 s): a member that
                // leaves mid-join can hold the group in rebalance (Tansu 0.6 keeps it as leader).
                let deadline = ContinuousClock.now + .seconds(5)
                while rejoining.withLock({ $0 }), ContinuousClock.now < deadline {
                    guard let event = rd_kafka_queue_poll(consumerQueue.pointer, 100) else { continue }
                    _ = self.handle(event)
                    rd_kafka_event_destroy(event)
                }
                // rd_kafka_consumer_close serves the revoke of the final rebalance itself when a
                // rebalance event is pending; we commit first so nothing processed is redone.
                _ = rd_kafka_commit(handle.pointer, nil, 0)
                let err = rd_kafka_consumer_close(handle.pointer)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.debug("consumer close", metadata: ["kafka.error": "\(describe(err).text)"])
                }
                continuation.resume()
            }
        }
    }

    /// Waits for the next record, then returns it with every record already fetched behind it,
    /// up to `max` (one poll's worth): for consumers that apply records in batches. Returns an
    /// empty array once the consumer is closed, stopped or the task cancelled.
    public func nextBatch(max: Int) async throws -> [KafkaRecord] {
        let cancelled = StopFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[KafkaRecord], any Error>) in
                pollQueue.async { [self] in
                    continuation.resume(with: Result {
                        guard let first = try pollUntilRecord(cancelled: cancelled) else { return [] }
                        var batch = [first]
                        while batch.count < max, let record = try fetchedRecord() { batch.append(record) }
                        return batch
                    })
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    /// A record already fetched (buffered, or waiting in librdkafka's queue), without blocking.
    /// Runs on the poll queue.
    private func fetchedRecord() throws -> KafkaRecord? {
        while true {
            if let record = buffered.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return record }
            // Not cut short by `stopDelivering()`: a batch holds everything fetched (the task-result
            // service's read barrier relies on whole fetched batches, see ReadBarrier).
            guard !closed.isSet, let event = rd_kafka_queue_poll(consumerQueue.pointer, 0) else { return nil }
            defer { rd_kafka_event_destroy(event) }
            if let fatal = handle(event) { throw fatal }
        }
    }

    // MARK: - Polling

    private func nextRecord() async throws -> KafkaRecord? {
        let cancelled = StopFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<KafkaRecord?, any Error>) in
                pollQueue.async { [self] in
                    continuation.resume(with: Result { try pollUntilRecord(cancelled: cancelled) })
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    /// Blocks on the poll queue until a record arrives, the consumer closes or `cancelled` is set.
    private func pollUntilRecord(cancelled: StopFlag) throws -> KafkaRecord? {
        while !closed.isSet && !stopping.isSet && !cancelled.isSet {
            if let record = buffered.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return record }
            guard let event = rd_kafka_queue_poll(consumerQueue.pointer, 100) else { continue }
            defer { rd_kafka_event_destroy(event) }
            if let fatal = handle(event) { throw fatal }
            if let record = buffered.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return record }
        }
        return nil
    }

    /// Handles one event on the poll queue: a fetched record goes to the buffer. Returns a fatal
    /// consumer error, if the event is one.
    @discardableResult
    private func handle(_ event: OpaquePointer) -> KafkaError? {
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_FETCH:
            guard let message = rd_kafka_event_message_next(event) else { return nil }
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                let (name, text) = describe(message.pointee.err)
                logger.warning("Kafka consume error", metadata: ["kafka.error": "\(name): \(text)"])
                return nil
            }
            let record = Self.record(from: message)
            buffered.withLock { $0.append(record) }
        case RD_KAFKA_EVENT_REBALANCE:
            handleRebalance(event)
        case RD_KAFKA_EVENT_ERROR:
            let err = rd_kafka_event_error(event)
            let text = String(cString: rd_kafka_event_error_string(event))
            if rd_kafka_event_error_is_fatal(event) != 0 {
                return KafkaError(.consumer, "fatal consumer error: \(text)", librdkafkaError: describe(err).name)
            }
            logger.debug("Kafka consumer error", metadata: ["kafka.error": "\(text)"])
        case RD_KAFKA_EVENT_LOG:
            forwardLog(event, to: logger)
        default:
            break
        }
        return nil
    }

    private func handleRebalance(_ event: OpaquePointer) {
        let err = rd_kafka_event_error(event)
        let list = rd_kafka_event_topic_partition_list(event)!
        let partitions = Self.partitions(of: list)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle.pointer)) == "COOPERATIVE"
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            assignment.withLock { $0.formUnion(partitions) }
            rejoining.withLock { $0 = false }
            logger.info("partitions assigned", metadata: ["kafka.partitions": "\(partitions.map(\.description))"])
            onRebalance?(.assigned(partitions))
            if let offsets = startOffsets?(partitions) {
                for index in 0..<Int(list.pointee.cnt) {
                    let element = list.pointee.elems[index]
                    if let offset = offsets[TopicPartition(topic: String(cString: element.topic), partition: element.partition)] {
                        list.pointee.elems[index].offset = offset
                    }
                }
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle.pointer, list) { rd_kafka_error_destroy(error) }
            } else {
                _ = rd_kafka_assign(handle.pointer, list)
            }
            if paused.withLock({ $0 }) { _ = rd_kafka_pause_partitions(handle.pointer, list) }
        } else {
            logger.info("partitions revoked", metadata: ["kafka.partitions": "\(partitions.map(\.description))"])
            rejoining.withLock { $0 = true }
            // Fence first: the application stops work on these partitions, then what it has
            // stored is committed before the partitions move to another member.
            onRebalance?(.revoked(partitions))
            _ = rd_kafka_commit(handle.pointer, nil, 0)
            assignment.withLock { $0.subtract(partitions) }
            // Records of revoked partitions fetched but not handed out now belong to the new owner.
            let revoked = Set(partitions)
            buffered.withLock { $0.removeAll { revoked.contains(TopicPartition(topic: $0.topic, partition: $0.partition)) } }
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle.pointer, list) { rd_kafka_error_destroy(error) }
            } else {
                _ = rd_kafka_assign(handle.pointer, nil)
            }
        }
    }

    private static func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }

    private static func record(from message: UnsafePointer<rd_kafka_message_t>) -> KafkaRecord {
        let m = message.pointee
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var index = 0
            var name: UnsafePointer<CChar>?
            var valuePointer: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, index, &name, &valuePointer, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = valuePointer.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes))
                index += 1
            }
        }
        return KafkaRecord(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value, headers: headers)
    }
}
