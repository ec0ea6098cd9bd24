import CRdKafka
import Foundation
import Logging
import Metrics
import Synchronization
import Tracing

/// A Kafka producer whose `send` returns only after the broker acknowledged the record.
///
/// Idempotent with `acks=all`: a record is either acknowledged by all in-sync replicas, or
/// `send` throws. Delivery reports are read from librdkafka's event queue by a dedicated
/// thread, so no cooperative-pool thread ever blocks in librdkafka.
///
/// - Important: call ``shutdown()`` before releasing the producer, so queued records are flushed.
public final class KafkaProducer: Sendable {
    /// Producer-specific options.
    public struct Options: Sendable, Hashable {
        /// How long librdkafka tries to deliver a record before `send` fails (`message.timeout.ms`).
        public var deliveryTimeout: Duration
        /// `linger.ms`; `nil` keeps librdkafka's default (5 ms). Use 0 on latency-critical paths.
        public var lingerMilliseconds: Int?

        public init(deliveryTimeout: Duration = .seconds(30), lingerMilliseconds: Int? = nil) {
            self.deliveryTimeout = deliveryTimeout
            self.lingerMilliseconds = lingerMilliseconds
        }
    }

    /// Records in flight, by the id passed to librdkafka as opaque: the continuation awaiting
    /// the delivery report, or the report when it came before anyone awaited it.
    final class Deliveries: Sendable {
        enum Entry {
            case enqueued
            case awaited(CheckedContinuation<Void, any Error>)
            case reported(Result<Void, KafkaError>)
            /// Every copy of its ``Delivery`` was released unawaited: the report is dropped.
            case abandoned
        }
        struct State {
            var nextID: UInt = 1
            var entries: [UInt: Entry] = [:]
            var closed = false
            /// Set once by a fatal error: every later send fails with it at once.
            var fatal: KafkaError?
        }
        let state = Mutex(State())
        func withLock<R>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }

        /// Delivery `id` will never be awaited: forget its report (now, or when it comes).
        func abandon(_ id: UInt) {
            withLock { state in
                switch state.entries[id] {
                case .enqueued: state.entries[id] = .abandoned
                case .reported: state.entries.removeValue(forKey: id)
                case .awaited, .abandoned, nil: break
                }
            }
        }

        /// Fails every record still in flight with `error`, and every later send (a fatal error).
        /// Returns the continuations to resume (outside the lock).
        func failAll(_ error: KafkaError, closing: Bool) -> [CheckedContinuation<Void, any Error>] {
            withLock { state in
                if closing { state.closed = true } else if state.fatal == nil { state.fatal = error }
                var waiting: [CheckedContinuation<Void, any Error>] = []
                for (id, entry) in state.entries {
                    switch entry {
                    case .awaited(let continuation):
                        waiting.append(continuation)
                        state.entries.removeValue(forKey: id)
                    case .enqueued:
                        state.entries[id] = .reported(.failure(error))
                    case .abandoned:
                        state.entries.removeValue(forKey: id)
                    case .reported:
                        break
                    }
                }
                return waiting
            }
        }
    }

    /// Held by every copy of a ``Delivery``: when the last copy goes unawaited, the producer
    /// forgets the record's report instead of keeping it forever.
    final class DeliveryToken: Sendable {
        let id: UInt
        let deliveries: Deliveries
        let awaited = Atomic<Bool>(false)
        init(id: UInt, deliveries: Deliveries) {
            self.id = id
            self.deliveries = deliveries
        }
        deinit {
            if !awaited.load(ordering: .acquiring) { deliveries.abandon(id) }
        }
    }

    let handle: RdKafkaHandle
    /// The settings this producer was made with.
    public let configuration: KafkaConfiguration
    private let pending = Deliveries()
    private let stop = StopFlag()
    private let pollerDone = DispatchSemaphore(value: 0)
    private let logger: Logger
    /// `baton_kafka_produce_duration_seconds`: from `send` to the broker's acknowledgement.
    private let ackDuration = Metrics.Timer(label: "baton_kafka_produce_duration_seconds")
    /// `baton_kafka_produce_failures_total`: sends that were not acknowledged.
    private let failures = Counter(label: "baton_kafka_produce_failures_total")

    /// Creates the producer and starts its delivery-report thread.
    /// - Throws: `KafkaError` with code `.configuration` when a property is rejected.
    public init(configuration: KafkaConfiguration, options: Options = Options(), logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.logger = logger
        self.handle = try RdKafkaHandle(
            kind: RD_KAFKA_PRODUCER,
            properties: configuration.producerProperties(options),
            events: Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR)
        )
        let handle = self.handle
        let pending = self.pending
        let stop = self.stop
        let done = self.pollerDone
        let logger = logger
        let thread = Thread {
            Self.pollLoop(handle: handle, pending: pending, stop: stop, logger: logger)
            done.signal()
        }
        thread.name = "baton-kafka-producer"
        thread.start()
    }

    deinit {
        stop.set()
    }

    /// Sends one record and waits for the broker's acknowledgement.
    ///
    /// - Parameters:
    ///   - topic: destination topic.
    ///   - key: record key (partitioning and compaction); `nil` for none.
    ///   - value: record value.
    ///   - headers: record headers.
    /// - Throws: `KafkaError` with code `.delivery` when the broker refused the record or did not
    ///   acknowledge it within the delivery timeout, `.closed` after ``shutdown()``.
    ///
    /// With a tracer bootstrapped, the send is a producer span whose context travels in the
    /// record's headers (`traceparent`), so consumers continue the trace.
    public func send(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) async throws {
        try await withSpan("\(topic) publish", ofKind: .producer) { span in
            span.attributes["messaging.system"] = "kafka"
            span.attributes["messaging.destination.name"] = topic
            while true {
                let delivery: Delivery
                do {
                    delivery = try enqueue(topic: topic, key: key, value: value, headers: headers)
                } catch let error as KafkaError where error.code == .queueFull {
                    try await Task.sleep(for: .milliseconds(5))
                    continue
                }
                try await delivery.acknowledged()
                return
            }
        }
    }

    /// Hands a record to librdkafka as ``enqueue(topic:key:value:headers:)`` does, waiting while
    /// its queue is full instead of failing.
    /// - Throws: `KafkaError` with code `.closed` after ``shutdown()``, `.delivery` when
    ///   librdkafka refuses the record.
    public func enqueueWhenRoom(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) async throws -> Delivery {
        while true {
            // (A `catch … where` here crashes the Swift 6.3 compiler: match a Result instead.)
            switch Result(catching: { () throws(KafkaError) -> Delivery in try enqueue(topic: topic, key: key, value: value, headers: headers) }) {
            case .success(let delivery):
                return delivery
            case .failure(let error) where error.code == .queueFull:
                try await Task.sleep(for: .milliseconds(5))
            case .failure(let error):
                throw error
            }
        }
    }

    /// A record handed to librdkafka, whose acknowledgement can be awaited later.
    ///
    /// Await ``acknowledged()`` once. Until then the producer keeps the record's report; a
    /// delivery released without being awaited is forgotten (its report dropped when it comes).
    public struct Delivery: Sendable {
        let token: DeliveryToken
        let producer: KafkaProducer
        let enqueuedAt: ContinuousClock.Instant

        /// Returns once the broker acknowledged the record.
        /// - Throws: `KafkaError` with code `.delivery` when it did not (or the producer shut
        ///   down), `.fatal` at once when the producer hit a fatal error.
        public func acknowledged() async throws {
            token.awaited.store(true, ordering: .releasing)
            do {
                try await producer.awaitReport(token.id)
                producer.ackDuration.record(duration: ContinuousClock.now - enqueuedAt)
            } catch {
                producer.failures.increment()
                throw error
            }
        }
    }

    /// Hands a record to librdkafka now, without waiting for the broker: records enqueued one
    /// after another for one partition are written in that order (the producer is idempotent),
    /// so a caller can enqueue several and await their acknowledgements together.
    ///
    /// The current trace context (if any) travels in the record's headers.
    /// - Throws: `KafkaError` with code `.queueFull` when librdkafka's queue is full (retry
    ///   later, or use ``send(topic:key:value:headers:)``, which waits), `.closed` after
    ///   ``shutdown()``, `.fatal` after a fatal error (see ``fatalError``), `.delivery` when
    ///   librdkafka refuses the record.
    public func enqueue(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) throws(KafkaError) -> Delivery {
        var headers = headers
        InstrumentationSystem.instrument.inject(ServiceContext.current ?? .topLevel, into: &headers, using: KafkaHeadersInjector())
        let reserved: Result<UInt, KafkaError> = pending.withLock { state in
            if let fatal = state.fatal { return .failure(fatal) }
            guard !state.closed else { return .failure(KafkaError(.closed, "the producer was shut down")) }
            let id = state.nextID
            state.nextID &+= 1
            if state.nextID == 0 { state.nextID = 1 }
            state.entries[id] = .enqueued
            return .success(id)
        }
        let id = try reserved.get()
        let enqueuedAt = ContinuousClock.now
        if let error = produce(topic: topic, key: key, value: value, headers: headers, opaque: id) {
            pending.withLock { _ = $0.entries.removeValue(forKey: id) }
            if error.code != .queueFull { failures.increment() }
            throw error
        }
        return Delivery(token: DeliveryToken(id: id, deliveries: pending), producer: self, enqueuedAt: enqueuedAt)
    }

    /// Waits for the delivery report of record `id` (or takes the one that already came).
    private func awaitReport(_ id: UInt) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let report: Result<Void, KafkaError>? = pending.withLock { state in
                switch state.entries[id] {
                case .reported(let result):
                    state.entries.removeValue(forKey: id)
                    return result
                case .enqueued:
                    state.entries[id] = .awaited(continuation)
                    return nil
                case .awaited, .abandoned, nil:
                    return .failure(KafkaError(.delivery, "the acknowledgement of this record was awaited already"))
                }
            }
            if let report { continuation.resume(with: report.mapError { $0 }) }
        }
    }

    /// Convenience for string keys.
    public func send(topic: String, key: String?, value: [UInt8], headers: [KafkaHeader] = []) async throws {
        try await send(topic: topic, key: key.map { Array($0.utf8) }, value: value, headers: headers)
    }

    /// Makes sure `topics` exist, creating the missing ones.
    /// - Throws: `KafkaError` with code `.topicCreation` for any topic that neither exists nor
    ///   could be created.
    public func createTopics(_ topics: [TopicSpec], timeout: Duration = .seconds(30)) async throws {
        let handle = self.handle
        let configuration = self.configuration
        try await runBlocking {
            try TopicCreation.create(topics, handle: handle, configuration: configuration, timeout: timeout)
        }
    }

    /// Number of partitions of `topic`, from cluster metadata.
    public func partitionCount(topic: String, timeout: Duration = .seconds(10)) async throws -> Int {
        let handle = self.handle
        return try await runBlocking { try TopicCreation.partitionCount(topic, handle: handle, timeout: timeout) }
    }

    /// The high watermark (offset of the next record) of one partition, asked of its leader:
    /// every record acknowledged before this call is below it.
    /// - Throws: `KafkaError` with code `.metadata`.
    public func highWatermark(topic: String, partition: Int32, timeout: Duration = .seconds(10)) async throws -> Int64 {
        let handle = self.handle
        return try await runBlocking {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(handle.pointer, topic, partition, &low, &high, timeout.librdkafkaMilliseconds)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw kafkaError(.metadata, "watermarks of \(topic)[\(partition)]", err, retriable: true)
            }
            return high
        }
    }

    /// Flushes queued records (up to `timeout`), fails what is left and stops the delivery thread.
    public func shutdown(timeout: Duration = .seconds(10)) async {
        let handle = self.handle
        let milliseconds = timeout.librdkafkaMilliseconds
        await runBlocking { _ = rd_kafka_flush(handle.pointer, milliseconds) }
        let error = KafkaError(.delivery, "the producer shut down before the broker acknowledged the record")
        for continuation in pending.failAll(error, closing: true) {
            continuation.resume(throwing: error)
        }
        stop.set()
        let done = pollerDone
        await runBlocking { done.wait() }
    }

    /// The fatal error this producer hit, if any: it cannot send again, and the process should
    /// restart (services check it and stop fail-stop).
    public var fatalError: KafkaError? { pending.withLock { $0.fatal } }

    /// Makes librdkafka raise a fatal error on this producer, as when the broker lost the
    /// idempotent producer's state (tests).
    func raiseFatalErrorForTesting(_ reason: String) {
        _ = rd_kafka_test_fatal_error(handle.pointer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason)
    }

    /// Counts of records awaiting their report and of reports nobody took yet (for tests).
    var inFlightCount: Int { pending.withLock { $0.entries.count } }

    // MARK: - C

    private func produce(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], opaque: UInt) -> KafkaError? {
        // One scratch buffer holds every byte librdkafka reads during the call (it copies them:
        // RD_KAFKA_MSG_F_COPY for key and value, and headers are always copied).
        var layout: [(offset: Int, count: Int)] = []
        var scratch: [UInt8] = []
        func append(_ bytes: some Collection<UInt8>, nulTerminated: Bool) {
            layout.append((scratch.count, bytes.count))
            scratch.append(contentsOf: bytes)
            if nulTerminated { scratch.append(0) }
        }
        append(topic.utf8, nulTerminated: true)
        append(key ?? [], nulTerminated: false)
        append(value, nulTerminated: false)
        for header in headers {
            append(header.name.utf8, nulTerminated: true)
            append(header.value, nulTerminated: false)
        }
        return scratch.withUnsafeMutableBytes { buffer -> KafkaError? in
            let base = buffer.baseAddress!
            var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5 + headers.count)
            vus[0].vtype = RD_KAFKA_VTYPE_TOPIC
            vus[0].u.cstr = UnsafePointer(base.advanced(by: layout[0].offset).assumingMemoryBound(to: CChar.self))
            vus[1].vtype = RD_KAFKA_VTYPE_KEY
            vus[1].u.mem.ptr = key == nil ? nil : base.advanced(by: layout[1].offset)
            vus[1].u.mem.size = key?.count ?? 0
            vus[2].vtype = RD_KAFKA_VTYPE_VALUE
            vus[2].u.mem.ptr = base.advanced(by: layout[2].offset)
            vus[2].u.mem.size = value.count
            vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
            vus[3].u.i = RD_KAFKA_MSG_F_COPY
            vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE
            vus[4].u.ptr = UnsafeMutableRawPointer(bitPattern: opaque)
            for index in headers.indices {
                let name = layout[3 + 2 * index]
                let val = layout[4 + 2 * index]
                vus[5 + index].vtype = RD_KAFKA_VTYPE_HEADER
                vus[5 + index].u.header.name = UnsafePointer(base.advanced(by: name.offset).assumingMemoryBound(to: CChar.self))
                vus[5 + index].u.header.val = UnsafeRawPointer(base.advanced(by: val.offset))
                vus[5 + index].u.header.size = val.count
            }
            guard let error = rd_kafka_produceva(handle.pointer, &vus, vus.count) else { return nil }
            defer { rd_kafka_error_destroy(error) }
            let code = rd_kafka_error_code(error)
            let text = String(cString: rd_kafka_error_string(error))
            let name = String(cString: rd_kafka_err2name(code))
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                return KafkaError(.queueFull, "producer queue is full", librdkafkaError: name, isRetriable: true)
            }
            return KafkaError(.delivery, "cannot produce to '\(topic)': \(text)", librdkafkaError: name)
        }
    }

    private static func pollLoop(handle: RdKafkaHandle, pending: Deliveries, stop: StopFlag, logger: Logger) {
        let queue = rd_kafka_queue_get_main(handle.pointer)!
        defer { rd_kafka_queue_destroy(queue) }
        while !stop.isSet {
            guard let event = rd_kafka_queue_poll(queue, 100) else { continue }
            defer { rd_kafka_event_destroy(event) }
            switch rd_kafka_event_type(event) {
            case RD_KAFKA_EVENT_DR:
                while let message = rd_kafka_event_message_next(event) {
                    let id = UInt(bitPattern: message.pointee._private)
                    let err = message.pointee.err
                    let result: Result<Void, KafkaError>
                    if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        result = .success(())
                    } else {
                        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
                        result = .failure(kafkaError(.delivery, "record to '\(topic)' not acknowledged", err))
                    }
                    let continuation: CheckedContinuation<Void, any Error>? = pending.withLock { state in
                        switch state.entries[id] {
                        case .awaited(let continuation):
                            state.entries.removeValue(forKey: id)
                            return continuation
                        case .enqueued:
                            state.entries[id] = .reported(result)  // taken by a later acknowledged()
                            return nil
                        case .abandoned:
                            state.entries.removeValue(forKey: id)
                            return nil
                        case .reported, nil:
                            return nil
                        }
                    }
                    continuation?.resume(with: result.mapError { $0 })
                }
            case RD_KAFKA_EVENT_ERROR:
                let text = String(cString: rd_kafka_event_error_string(event))
                if rd_kafka_event_error_is_fatal(event) != 0 {
                    // The handle cannot produce again: fail every waiting send now (rather than
                    // each after the delivery timeout) and every later one at once.
                    let fatal = fatalKafkaError(of: handle, fallback: text)
                    logger.critical("fatal Kafka producer error: this producer cannot send again; the process must restart",
                                    metadata: ["kafka.error": "\(fatal)"])
                    for continuation in pending.failAll(fatal, closing: false) { continuation.resume(throwing: fatal) }
                } else {
                    logger.debug("Kafka producer error", metadata: ["kafka.error": "\(text)"])
                }
            case RD_KAFKA_EVENT_LOG:
                forwardLog(event, to: logger)
            default:
                break
            }
        }
    }
}

/// librdkafka's fatal error of `handle`, as a `.fatal` KafkaError.
private func fatalKafkaError(of handle: RdKafkaHandle, fallback: String) -> KafkaError {
    var errstr = [CChar](repeating: 0, count: 512)
    let code = rd_kafka_fatal_error(handle.pointer, &errstr, errstr.count)
    let text = errstr[0] == 0 ? fallback : cString(errstr)
    return KafkaError(.fatal, "fatal producer error: \(text); restart the process", librdkafkaError: String(cString: rd_kafka_err2name(code)))
}

/// Runs blocking librdkafka work on a GCD thread instead of the cooperative pool.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}

func runBlocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}
