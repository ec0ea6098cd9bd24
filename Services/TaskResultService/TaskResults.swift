import AsyncHTTPClient
import BatonDomain
import BatonKafka
import BatonProtocol
import BatonService
import BatonStore
import Configuration
import Foundation
import Hummingbird
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Tracing

/// Settings of `baton-task-results`: the shared keys (see `ServiceConfiguration`) plus
/// - `store.url` (`STORE_URL`), string, unset: a `postgres://user:password@host:5432/database?pool=10&sslmode=require`
///   URL puts the state in PostgreSQL, shared by every instance given the same URL; unset, the
///   state is in the SQLite file `store.path` (one instance per file);
/// - `store.path` (`STORE_PATH`), string, `data/task-results.sqlite`: the SQLite file;
/// - `http.host` / `http.port` (`HTTP_PORT`), default `127.0.0.1:8082`: the runs API
///   (`GET /api/v1/runs/{id}`, `GET /api/v1/runs?job=&status=&createdFrom=&createdTo=&eventId=&limit=&cursor=`,
///   `GET /api/v1/jobs/{id}/runs`);
/// - `timers.poll.ms` (`TIMERS_POLL_MS`), int, 100: how often due timers are looked for;
/// - `checkpoint.timeout.ms` (`CHECKPOINT_TIMEOUT_MS`), int, 10000: how long a checkpoint
///   request waits for the store to catch up with the task-results topic before it gets 503;
/// - `runs.progress.timeout.ms` (`RUNS_PROGRESS_TIMEOUT_MS`), int, 300000: a queued or executing
///   run with no progress for this long is stuck;
/// - `runs.progress.reissues` (`RUNS_PROGRESS_REISSUES`), int, 3: resume commands re-issued for a
///   stuck run before it is marked `TIMED_OUT`;
/// - `reaper.interval.ms` (`REAPER_INTERVAL_MS`), int, 5000: how often stuck runs are looked for;
/// - `task.results.instance` (`TASK_RESULTS_INSTANCE`), string, derived from host name and
///   store path: this instance's name, under which it claims due timers and fetches (give each
///   instance sharing a store its own);
/// - `runs.age.interval.ms` (`RUNS_AGE_INTERVAL_MS`), int, 15000: how often the metrics
///   `baton_active_runs` and `baton_oldest_active_run_age_seconds` are measured (a scan of runs).
struct TaskResultConfiguration: Sendable {
    var service: ServiceConfiguration
    var http: HTTPListenerConfiguration
    var storePath: String
    /// The PostgreSQL store's settings, when `store.url` is set.
    var postgres: PostgresDatabase.Configuration?
    var timerPoll: Duration
    var checkpointTimeout: Duration
    var progressTimeout: Duration
    var progressReissues: Int
    var reaperInterval: Duration
    var runsAgeInterval: Duration
    /// This instance's name: it holds the timers it claims under it.
    var instance: String
    init(config: ConfigReader) throws(ValidationError) {
        self.service = try ServiceConfiguration(config: config, serviceName: "baton-task-results")
        self.http = try HTTPListenerConfiguration(config: config, defaultPort: 8082)
        self.storePath = config.string(forKey: "store.path", default: "data/task-results.sqlite")
        self.postgres = try StoreLocation.postgres(config: config)
        let poll = config.int(forKey: "timers.poll.ms", default: 100)
        guard poll > 0 else { throw ValidationError(path: "timers.poll.ms", message: "must be positive, got \(poll)") }
        self.timerPoll = .milliseconds(poll)
        let checkpoint = config.int(forKey: "checkpoint.timeout.ms", default: 10_000)
        guard checkpoint > 0 else { throw ValidationError(path: "checkpoint.timeout.ms", message: "must be positive, got \(checkpoint)") }
        self.checkpointTimeout = .milliseconds(checkpoint)
        let progress = config.int(forKey: "runs.progress.timeout.ms", default: 300_000)
        guard progress > 0 else { throw ValidationError(path: "runs.progress.timeout.ms", message: "must be positive, got \(progress)") }
        self.progressTimeout = .milliseconds(progress)
        self.progressReissues = config.int(forKey: "runs.progress.reissues", default: 3)
        guard progressReissues >= 0 else { throw ValidationError(path: "runs.progress.reissues", message: "must not be negative, got \(progressReissues)") }
        let reaper = config.int(forKey: "reaper.interval.ms", default: 5_000)
        guard reaper > 0 else { throw ValidationError(path: "reaper.interval.ms", message: "must be positive, got \(reaper)") }
        self.reaperInterval = .milliseconds(reaper)
        let age = config.int(forKey: "runs.age.interval.ms", default: 15_000)
        guard age > 0 else { throw ValidationError(path: "runs.age.interval.ms", message: "must be positive, got \(age)") }
        self.runsAgeInterval = .milliseconds(age)
        // Stable across restarts of the same process (host and store), so a restarted instance
        // retakes its own claims at once instead of waiting for their leases to end.
        let instance = config.string(forKey: "task.results.instance",
                                     default: StoreLocation.defaultInstance("task-results", storePath: storePath, postgres: postgres))
        guard !instance.isEmpty else { throw ValidationError(path: "task.results.instance", message: "must not be empty") }
        self.instance = instance
    }
}

/// Records run events in batches (one poll's worth per transaction), each batch with its
/// offsets (so reprocessing after a crash changes nothing, and the store can tell how far it
/// has read: see `ReadBarrier`).
struct RunEventRecorder: Sendable {
    let store: any TaskResultStoring
    let deadLetters: DeadLetterQueue
    /// Told the new offsets after each transaction, to wake checkpoint requests waiting for them.
    let applied: AppliedOffsets
    /// Deepest JSON nesting accepted: the configured limit for user documents, plus room for
    /// the run event around a task output or payload.
    let maxDepth: Int
    /// Told about batches that queue a run for a concurrency slot or may free one.
    let slots: SlotActivity
    let logger: Logger

    func handle(_ batch: [KafkaRecord]) async throws {
        var records: [ConsumedRunEvent] = []
        records.reserveCapacity(batch.count)
        for record in batch {
            // Continues the producer's trace (when a tracer is bootstrapped).
            let event = try await withSpan("\(record.topic) process", context: record.traceContext, ofKind: .consumer) { span in
                span.attributes["messaging.system"] = "kafka"
                span.attributes["messaging.kafka.offset"] = Int(record.offset)
                return try await deadLetters.decode(record, as: "RunEvent", { try RunEvent.decode(from: $0.value, maxDepth: maxDepth) })
            }
            records.append(ConsumedRunEvent(event: event, topic: record.topic, partition: record.partition, offset: record.offset,
                                            traceParent: record.traceParent))
        }
        let unknown = try await store.apply(records)
        for runId in unknown {
            logger.warning("run event for an unknown run ignored", metadata: ["run.id": "\(runId)"])
        }
        slots.applied(records.lazy.compactMap(\.event))
        for record in records {
            if let event = record.event { Counter(label: "baton_run_events_total", dimensions: [("type", event.body.type)]).increment() }
        }
        var next: [Int32: Int64] = [:]
        for record in batch { next[record.partition] = max(next[record.partition] ?? 0, record.offset + 1) }
        applied.advance(next)
    }
}

/// The offsets of the task-results topic the store has applied, in memory: checkpoint requests
/// wait here to be woken the moment their partition reaches their watermark (no polling).
final class AppliedOffsets: Sendable {
    private struct Waiter {
        var partition: Int32
        var offset: Int64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var offsets: [Int32: Int64]
        var waiters: [UInt64: Waiter] = [:]
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    /// - Parameter initial: the next offset to read of each partition, as the store holds it.
    init(initial: [Int32: Int64]) {
        state = Mutex(State(offsets: initial))
    }

    /// The next offset to apply of `partition`.
    func offset(of partition: Int32) -> Int64 { state.withLock { $0.offsets[partition] ?? 0 } }

    /// Records that the store applied `partition`s up to (excluding) the given offsets; wakes
    /// the requests that were waiting for them.
    func advance(_ offsets: [Int32: Int64]) {
        let woken = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            for (partition, offset) in offsets where offset > state.offsets[partition, default: 0] {
                state.offsets[partition] = offset
            }
            var woken: [CheckedContinuation<Bool, Never>] = []
            for (id, waiter) in state.waiters where state.offsets[waiter.partition, default: 0] >= waiter.offset {
                woken.append(waiter.continuation)
                state.waiters.removeValue(forKey: id)
            }
            return woken
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    /// Waits until `partition` is applied up to `offset` (the next offset to apply is at least
    /// it); `false` when `deadline` came first.
    func wait(partition: Int32, reaching offset: Int64, until deadline: ContinuousClock.Instant) async -> Bool {
        if self.offset(of: partition) >= offset { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUnbounded(partition: partition, reaching: offset) }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func waitUnbounded(partition: Int32, reaching offset: Int64) async -> Bool {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer: Bool? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return false }
                    if state.offsets[partition, default: 0] >= offset { return true }
                    state.waiters[id] = Waiter(partition: partition, offset: offset, continuation: continuation)
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return waiter.continuation
            }
            continuation?.resume(returning: false)
        }
    }
}

/// Answers "what has run R completed?" only once the store holds everything acknowledged on the
/// run's partition of the task-results topic before the question was asked (invariant 2's read
/// barrier). Only the partition holding the run id matters: every event of the run is there.
///
/// The embedded Tansu broker (0.6) reports as high watermark one past the *first* record of the
/// last batch written, not past its last record. The barrier stays exact there because the
/// recorder applies everything one poll fetched in one transaction (no cap), and librdkafka
/// hands a fetched batch to the application whole: once the batch's first record is applied,
/// so is the rest of it. Real Kafka brokers report the watermark past the last record.
///
/// With several instances (a shared PostgreSQL store), the run's partition may belong to another
/// instance: this one then asks the store how far it has applied that partition (every instance
/// writes its offsets with its state), every `storePoll` until the watermark is reached. What
/// this instance applied itself it learns at once, without asking.
struct ReadBarrier: Sendable {
    let topic: String
    /// Partitions of the task-results topic (read at start).
    let partitionCount: Int
    let applied: AppliedOffsets
    let watermarks: WatermarkQueries
    let reads: CheckpointReads
    let timeout: Duration
    /// The store, asked how far a partition another instance owns is applied.
    let store: any ConsumedOffsetStore
    /// How often the store is asked while waiting for a partition this instance does not apply
    /// (a store that notifies progress wakes the wait at once: see `AppliedProgressFollower`).
    var storePoll: Duration = .milliseconds(50)

    func checkpoint(runId: String) async throws -> RunCheckpoint {
        let deadline = ContinuousClock.now + timeout
        let partition = KafkaPartitioner.partition(of: runId.utf8, partitionCount: partitionCount)
        let watermark = try await watermarks.highWatermark(partition: partition)
        guard try await caughtUp(partition: partition, watermark: watermark, deadline: deadline) else {
            throw APIError(status: .serviceUnavailable, code: "not_caught_up",
                           message: "the task-result store has not caught up with \(topic)[\(partition)] up to offset \(watermark) within \(timeout); retry")
        }
        return try await reads.checkpoint(runId: runId)
    }

    /// Whether the store applied `partition` up to `watermark` before `deadline`: as this
    /// instance applied it (woken at once) or as the store says (any instance applied it).
    private func caughtUp(partition: Int32, watermark: Int64, deadline: ContinuousClock.Instant) async throws -> Bool {
        while true {
            let round = min(deadline, ContinuousClock.now + storePoll)
            if await applied.wait(partition: partition, reaching: watermark, until: round) { return true }
            let stored = try await store.consumedOffsets(topic: topic)[partition] ?? 0
            if stored >= watermark {
                applied.advance([partition: stored])
                return true
            }
            if ContinuousClock.now >= deadline { return false }
        }
    }
}

/// Follows what the other instances apply (a store shared by several instances that notifies
/// progress): each notification reads the store's offsets into `applied`, waking the checkpoint
/// requests waiting for them. Listens again after a lost connection.
struct AppliedProgressFollower: Service {
    let store: any AppliedProgressNotifying & ConsumedOffsetStore
    let topic: String
    let applied: AppliedOffsets
    let logger: Logger

    func run() async throws {
        // Stops at graceful shutdown (the listening connection goes back to the pool).
        await cancelWhenGracefulShutdown { await follow() }
    }

    private func follow() async {
        let reading = ReadCoalescer()
        while !Task.isCancelled {
            do {
                try await store.followAppliedProgress {
                    await reading.run {
                        do {
                            applied.advance(try await store.consumedOffsets(topic: topic))
                        } catch {
                            logger.debug("reading applied offsets failed", metadata: ["error": "\(error)"])
                        }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("lost the store's progress notifications; checkpoints poll until they are back", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Runs one read at a time: a call while one runs waits for the next run, and calls arriving
/// meanwhile share it (a burst of notifications costs two reads, not one each).
actor ReadCoalescer {
    private var running = false
    private var again = false

    func run(_ read: @Sendable () async -> Void) async {
        if running {
            again = true
            return
        }
        running = true
        repeat {
            again = false
            await read()
        } while again
        running = false
    }
}

/// Reads checkpoints for the read barrier, several per transaction: a request that arrives while
/// one transaction runs joins the next, so under load the store's single writer sees a few
/// checkpoint transactions per batch of run events instead of one per slice.
final class CheckpointReads: Sendable {
    private struct State {
        var waiting: [(runId: String, continuation: CheckedContinuation<RunCheckpoint, any Error>)] = []
        var running = false
    }

    private let store: any RunStore
    private let state = Mutex(State())

    init(store: any RunStore) {
        self.store = store
    }

    /// The checkpoint of `runId`, read after this call began.
    func checkpoint(runId: String) async throws -> RunCheckpoint {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.waiting.append((runId, continuation))
                defer { state.running = true }
                return !state.running
            }
            if start { Task { await drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [(runId: String, continuation: CheckedContinuation<RunCheckpoint, any Error>)] in
                let batch = state.waiting
                state.waiting = []
                if batch.isEmpty { state.running = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let checkpoints = try await store.checkpoints(runIds: batch.map(\.runId))
                for (waiter, checkpoint) in zip(batch, checkpoints) { waiter.continuation.resume(returning: checkpoint) }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}

/// High-watermark queries of the task-results topic, shared by concurrent checkpoint requests:
/// a request gets the answer of a query sent after it arrived (so the watermark covers every
/// record acknowledged before the request), and while one query per partition is in flight the
/// requests arriving meanwhile wait for the next one together. Under load that is about two
/// broker requests per partition per round trip instead of one per checkpoint.
final class WatermarkQueries: Sendable {
    private struct Partition {
        var inFlight = false
        /// Waiting for the query in flight (sent after they arrived).
        var current: [CheckedContinuation<Int64, any Error>] = []
        /// Arrived while a query was in flight: they wait for the next one.
        var next: [CheckedContinuation<Int64, any Error>] = []
    }

    private let producer: KafkaProducer
    private let topic: String
    private let state = Mutex<[Int32: Partition]>([:])

    init(producer: KafkaProducer, topic: String) {
        self.producer = producer
        self.topic = topic
    }

    /// The high watermark of `partition`, from a query sent after this call began.
    func highWatermark(partition: Int32) async throws -> Int64 {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                var entry = state[partition, default: Partition()]
                defer { state[partition] = entry }
                if entry.inFlight {
                    entry.next.append(continuation)
                    return false
                }
                entry.inFlight = true
                entry.current.append(continuation)
                return true
            }
            if start { query(partition) }
        }
    }

    private func query(_ partition: Int32) {
        Task {
            let result: Result<Int64, any Error>
            do {
                result = .success(try await producer.highWatermark(topic: topic, partition: partition))
            } catch {
                result = .failure(error)
            }
            let (answered, again) = state.withLock { state -> ([CheckedContinuation<Int64, any Error>], Bool) in
                var entry = state[partition, default: Partition()]
                let answered = entry.current
                entry.current = entry.next
                entry.next = []
                entry.inFlight = !entry.current.isEmpty
                state[partition] = entry
                return (answered, entry.inFlight)
            }
            for continuation in answered { continuation.resume(with: result) }
            if again { query(partition) }
        }
    }
}

/// Finds runs that stopped making progress (a lost command, a dead job service, a job version no
/// service runs): re-issues their resume command, and after `maxReissues` marks them
/// `TIMED_OUT` with the reason. Re-issuing is safe: the slice's checkpoint replays what completed.
///
/// One instance reaps at a time: it holds the duty `reaper` with a lease it renews each round
/// (``DutyLeaseRules``), so a stuck run is re-issued once, not once per instance; when that
/// instance dies, another takes the duty over once the lease ends.
struct Reaper: Sendable {
    let store: any TaskResultStoring
    let producer: KafkaProducer
    let topics: Topics
    let timeout: Duration
    let maxReissues: Int
    /// This instance, as the holder of the duty.
    let owner: String
    /// How long the duty holds without renewal (longer than the interval between rounds).
    let lease: Duration
    let logger: Logger

    func reap(now: Date = Date()) async throws {
        guard try await store.acquireDuty("reaper", owner: owner, now: now, lease: lease) else { return }
        for stuck in try await store.stuckRuns(before: now.addingTimeInterval(-(timeout / .seconds(1))), limit: 100) {
            if stuck.reissues < maxReissues, let command = try await store.resumeCommand(runId: stuck.runId, counting: nil) {
                do {
                    try await producer.createTopics([TopicSpec(name: topics.runs(jobSlug: command.jobSlug))], timeout: .seconds(5))
                    try await producer.send(command, topics: topics, continuingTrace: try await store.traceParent(runId: command.runId))
                    logger.warning("stuck run: resume command re-issued", metadata: [
                        "run.id": "\(stuck.runId)", "run.status": "\(stuck.status)", "reissue": "\(stuck.reissues + 1)"])
                } catch {
                    logger.error("stuck run: re-issuing its resume command failed", metadata: ["run.id": "\(stuck.runId)", "error": "\(error)"])
                }
                // Counted either way, so a run whose command cannot be sent still times out.
                try await store.recordReissue(runId: stuck.runId, at: Date())
                Counter(label: "baton_stuck_runs_reissued_total").increment()
            } else {
                let reason = "no progress for \(timeout) after \(stuck.reissues) re-issued resume commands; is a job service running job '\(stuck.jobSlug)' version \(stuck.jobVersion)?"
                try await store.timeOut(runId: stuck.runId, reason: reason, lastProgress: stuck.lastProgress, at: Date())
                Counter(label: "baton_runs_timed_out_total").increment()
                logger.error("run timed out", metadata: ["run.id": "\(stuck.runId)", "reason": "\(reason)"])
            }
        }
    }
}


/// The query of `GET /api/v1/runs` (and `GET /api/v1/jobs/{id}/runs`), checked.
enum RunListRequest {
    /// - Throws: `APIError` 422 naming the parameter that is invalid.
    static func query(_ parameters: Parameters, tenant: Tenant, job: String?) throws -> RunQuery {
        func invalid(_ name: String, _ message: String) -> APIError {
            APIError(status: .unprocessableContent, code: "invalid_field", message: message, path: name)
        }
        func date(_ name: String) throws -> Date? {
            // An empty value is not a time: refused like any other (only an absent one is no bound).
            guard let text = parameters.get(name) else { return nil }
            guard let date = BatonJSON.parseDate(text) else {
                throw invalid(name, "'\(text)' is not an RFC 3339 date-time (e.g. 2026-11-29T12:00:00Z)")
            }
            return date
        }
        var query = RunQuery(tenant: tenant, jobSlug: job ?? parameters.get("job").flatMap { $0.isEmpty ? nil : $0 })
        // `status=COMPLETED,FAILED` or `status=COMPLETED&status=FAILED`.
        for text in parameters.getAll("status").flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
            let status = RunStatus(rawValue: String(text))
            guard RunStatus.all.contains(status) else {
                throw invalid("status", "'\(text)' is not a run status; use one of \(RunStatus.all.map(\.rawValue).joined(separator: ", "))")
            }
            if !query.statuses.contains(status) { query.statuses.append(status) }
        }
        query.createdFrom = try date("createdFrom")
        query.createdTo = try date("createdTo")
        query.eventId = parameters.get("eventId").flatMap { $0.isEmpty ? nil : $0 }
        if let text = parameters.get("limit") {
            guard let limit = Int(text), (1...RunQuery.maximumLimit).contains(limit) else {
                throw invalid("limit", "the page size must be between 1 and \(RunQuery.maximumLimit), got '\(text)'")
            }
            query.limit = limit
        }
        if let text = parameters.get("cursor") {
            guard let cursor = RunCursor(encoded: text) else {
                throw invalid("cursor", "not a cursor of this API: pass the nextCursor of the previous page unchanged")
            }
            query.after = cursor
        }
        return query
    }
}





/// Wakes the timer loop when a queued run may get a concurrency slot now: a limited run was
/// created, or, while limited runs are about, a run waited or ended (a slot may be free) or a
/// wait ended (its run queued again). Without it a grant waits for the next poll.
final class SlotActivity: Sendable {
    private let lastSeen = Mutex<ContinuousClock.Instant?>(nil)
    let wakeUp = WakeUp()
    /// How long after the last limited run seen batches still wake the loop.
    private static let memory: Duration = .seconds(600)

    /// Limited runs are about (created, or granted a slot).
    func noteLimitedRuns() {
        lastSeen.withLock { $0 = .now }
    }

    private var limitedRunsAbout: Bool {
        lastSeen.withLock { $0.map { ContinuousClock.now - $0 < Self.memory } ?? false }
    }

    /// After a batch of run events is applied.
    func applied(_ events: some Sequence<RunEvent>) {
        var created = false, freeing = false
        for event in events {
            switch event.body {
            case .runCreated(let run): created = created || run.concurrency != nil
            case .taskFailed(let failed): freeing = freeing || failed.retryAt != nil
            case .waitRequested, .fetchRequested, .childInvoked, .eventWaitRequested, .requestWaitRequested, .runCompleted, .runFailed:
                freeing = true
            default: break
            }
        }
        if created { noteLimitedRuns() }
        if created || (freeing && limitedRunsAbout) { wakeUp.signal() }
    }

    /// After timers fired (a wait that ended queues its limited run for a slot).
    func fired(_ count: Int) {
        if count > 0, limitedRunsAbout { wakeUp.signal() }
    }
}

/// Fires durable timers: when a wait is due, sends the run's resume command.
struct TimerService: Sendable {
    let store: any TaskResultStoring
    let producer: KafkaProducer
    let topics: Topics
    /// This instance, as the holder of the timers it claims.
    let owner: String
    /// How long a claim holds: past it, another instance fires the timer (at least once).
    let lease: Duration
    /// How long marking sent timers fired is tried again while the store fails transiently.
    let outage: StoreOutagePolicy
    let slots: SlotActivity
    let logger: Logger

    /// Claims the due timers (one instance per timer, see `TimerRules`), sends their resume
    /// commands at once, awaits the acknowledgements, then marks them fired in one transaction.
    /// At least once: a crash in between resends after the lease; the run's keyed tasks make a
    /// duplicate resume harmless.
    func fireDueTimers() async throws {
        let due = try await store.claimDueTimers(owner: owner, now: Date(), lease: lease, limit: 100)
        guard !due.isEmpty else { return }
        var sent: [(timer: ClaimedTimer, delivery: KafkaProducer.Delivery?)] = []
        for timer in due {
            var delivery: KafkaProducer.Delivery?
            if timer.taskId == RunRules.parentNoticeTimerID {
                delivery = try await noticeToParent(childRunId: timer.runId)
            } else if let waitTask = RunRules.eventWaitTask(ofTimeoutTimer: timer.taskId) {
                // Decided on the run's partition, in order with a match that may be on its way.
                delivery = try await producer.enqueue(RunEvent(runId: timer.runId, body: .eventWaitTimedOut(.init(taskId: waitTask))), topics: topics)
            } else if let command = try await store.resumeCommand(runId: timer.runId, counting: timer.taskId) {
                delivery = try await producer.enqueue(command, topics: topics, continuingTrace: try await store.traceParent(runId: command.runId))
            }
            sent.append((timer, delivery))
        }
        for (timer, delivery) in sent {
            guard let delivery else { continue }
            try await delivery.acknowledged()
            if timer.taskId != RunRules.parentNoticeTimerID, RunRules.eventWaitTask(ofTimeoutTimer: timer.taskId) == nil {
                logger.info("run resumed", metadata: ["run.id": "\(timer.runId)", "timer.due": "\(timer.dueAt)"])
            }
        }
        // The commands are sent: while the store restarts, mark them again rather than resend.
        try await retryingStoreOutage(outage, what: "marking timers fired", logger: logger) {
            try await store.markFired(due, owner: owner)
        }
        Counter(label: "baton_timers_fired_total").increment(by: due.count)
        slots.fired(due.count)
    }

    /// Hands free concurrency slots to the runs queued for them (see `ConcurrencyRules`): each
    /// grant is a timer due now, fired by ``fireDueTimers()`` like any other, so a crash after
    /// the grant still sends the run's command.
    func grantSlots() async throws {
        let grants = try await store.grantSlots(now: Date())
        guard !grants.isEmpty else { return }
        slots.noteLimitedRuns()
        Counter(label: "baton_concurrency_slots_granted_total").increment(by: grants.count)
        for grant in grants {
            logger.debug("concurrency slot granted", metadata: ["run.id": "\(grant.runId)", "concurrency.queue": "\(grant.queue)"])
        }
    }

    /// Tells the parent of child run `childRunId`, which ended, its outcome: a `childRunFinished`
    /// event on the parent's task-results partition (whichever instance applies it resumes the
    /// parent). `nil` when the child is unknown or has no parent.
    private func noticeToParent(childRunId: String) async throws -> KafkaProducer.Delivery? {
        guard let child = try await store.run(id: childRunId), let parent = child.parentRun, child.status.isTerminal else { return nil }
        // A child only answers a parent of its own tenant (a direct producer could name any run).
        guard try await store.tenant(ofRun: parent.runId) == child.tenant else {
            logger.warning("child run names a parent of another tenant, or an unknown one: not told",
                           metadata: ["run.id": "\(childRunId)", "parent.run.id": "\(parent.runId)"])
            return nil
        }
        var outcome = ChildRunOutcome(runId: child.id, jobId: child.jobId, status: child.status,
                                      output: child.status == .completed ? child.output ?? .null : nil,
                                      error: child.status == .completed ? nil : child.error ?? "the child run ended \(child.status.rawValue)")
        var value = Array(try BatonJSON.encoder.encode(RunEvent(runId: parent.runId, body: .childRunFinished(.init(taskId: parent.taskId, outcome: outcome)))))
        if value.count > KafkaProducer.largestNotice {
            // It would not fit in a record: the parent gets a failure that says so, not silence.
            outcome = ChildRunOutcome(runId: child.id, jobId: child.jobId, status: .failed,
                                      error: "the child's output (\(value.count) bytes with its notice) is too large to hand to its parent; return less")
            value = Array(try BatonJSON.encoder.encode(RunEvent(runId: parent.runId, body: .childRunFinished(.init(taskId: parent.taskId, outcome: outcome)))))
        }
        logger.info("child run ended: telling its parent", metadata: ["run.id": "\(childRunId)", "parent.run.id": "\(parent.runId)",
                                                                      "run.status": "\(child.status.rawValue)"])
        return try await producer.enqueueWhenRoom(topic: topics.taskResults, key: Array(parent.runId.utf8), value: value)
    }

}

/// Everything the task-result service keeps, on SQLite (one instance) or PostgreSQL (any number).
typealias TaskResultStoring = RunStore & TimerStore & FetchStore & DeduplicationStore & ConsumedOffsetStore & DutyLeaseStore & BrokerBoundStore
    & ConcurrencySlotStore
    & RequestWaitStore

extension TaskResultStore: BrokerBoundStore {}
extension PostgresTaskResultStore: BrokerBoundStore {}

/// Builds the task-result process: its consumer, the timer loop and the runs API.
func buildTaskResultService(configuration: TaskResultConfiguration, logger: Logger) async throws -> some ApplicationProtocol {
    let kafka = configuration.service.kafka
    let topics = configuration.service.topics
    // PostgreSQL's connection pool runs as the first service (so it stops last).
    let pool = configuration.postgres.map { PostgresPoolService(configuration: $0, logger: logger) }
    let store: any TaskResultStoring = if let pool {
        try await PostgresTaskResultStore(database: pool.database)
    } else {
        try TaskResultStore(path: configuration.storePath)
    }
    let storeName = configuration.postgres.map(\.description) ?? configuration.storePath
    let producer = try KafkaProducer(configuration: kafka, options: .init(lingerMilliseconds: 0), logger: logger)
    try await producer.createTopics([TopicSpec(name: topics.taskResults), TopicSpec(name: topics.deadLetter)])
    // The store belongs to one broker: check (and on a new broker, act on the policy) before
    // reading anything from it.
    let watched = [topics.taskResults, topics.deadLetter, topics.broker]
    let broker = try await BrokerGuard.bind(store, storePath: storeName, producer: producer, markerTopic: topics.broker,
                                            topics: watched, policy: configuration.service.brokerChangePolicy, logger: logger)
    let applied = AppliedOffsets(initial: try await store.consumedOffsets(topic: topics.taskResults))
    let slots = SlotActivity()
    let recorder = RunEventRecorder(
        store: store,
        deadLetters: DeadLetterQueue(producer: producer, topic: topics.deadLetter, consumerName: "baton-task-results", logger: logger),
        applied: applied, maxDepth: configuration.service.limits.nestingDepth + Limits.envelopeDepth, slots: slots, logger: logger)
    // The store keeps its own offsets (written with each state change); start where it left off.
    // Each transaction applies everything fetched (see `ReadBarrier`): keep librdkafka's
    // prefetch to a few thousand records, so a transaction stays short.
    var consumerKafka = kafka
    if consumerKafka.properties["queued.min.messages"] == nil { consumerKafka.properties["queued.min.messages"] = "2000" }
    let consumer = try KafkaConsumer(
        configuration: consumerKafka, groupID: "\(topics.prefix).task-results", topics: [topics.taskResults], logger: logger,
        startOffsets: KafkaConsumer.startingAtStoredOffsets({ try blockingOutsideCooperativePool(limit: min(configuration.service.storeOutage.attemptTimeout, .seconds(10)), what: "reading the stored offsets") { try await store.consumedOffsets(topic: topics.taskResults) } }, failed: { error in
            logger.error("stored offsets unreadable: starting at the group's committed offsets", metadata: ["error": "\(error)"])
        }))
    let barrier = ReadBarrier(topic: topics.taskResults,
                              partitionCount: try await producer.partitionCount(topic: topics.taskResults),
                              applied: applied, watermarks: WatermarkQueries(producer: producer, topic: topics.taskResults),
                              reads: CheckpointReads(store: store), timeout: configuration.checkpointTimeout, store: store)
    // The store holds the offsets (in each batch's transaction).
    let outage = configuration.service.storeOutage
    let consumerService = BatchConsumerService(consumer: consumer, maxBatch: .max, logger: logger) { batch in
        // Applying a batch is idempotent: while the store restarts, apply it again.
        try await retryingStoreOutage(outage, what: "applying run events", logger: logger) { try await recorder.handle(batch) }
    }
    let timers = TimerService(store: store, producer: producer, topics: topics, owner: configuration.instance,
                              lease: .seconds(60), outage: configuration.service.storeOutage, slots: slots, logger: logger)
    let fetches = FetchService(store: store, producer: producer, topics: topics, http: .shared, maxBodyBytes: 10 << 20,
                               secrets: configuration.service.fetchSecrets, owner: configuration.instance,
                               lease: .seconds(120), outage: configuration.service.storeOutage, logger: logger)
    let reaper = Reaper(store: store, producer: producer, topics: topics, timeout: configuration.progressTimeout,
                        maxReissues: configuration.progressReissues, owner: configuration.instance,
                        lease: max(.seconds(30), configuration.reaperInterval * 3), logger: logger)
    let keys = configuration.service.apiKeys
    keys.logState(logger)
    let oldestActiveRun = Gauge(label: "baton_oldest_active_run_age_seconds")
    let activeRunCount = Gauge(label: "baton_active_runs")
    let runsWaitingForSlots = Gauge(label: "baton_runs_waiting_for_slot")
    let slotsHeld = Gauge(label: "baton_concurrency_slots_held")
    /// Answers 404 unless run `id` exists and belongs to `tenant` (another tenant's run is not
    /// distinguishable from a missing one).
    @Sendable func runNotFound(_ id: String) -> APIError {
        APIError(status: .notFound, code: "run_not_found", message: "no run with id '\(id)'", path: "id")
    }
    @Sendable func requireOwnRun(_ id: String, _ tenant: Tenant) async throws {
        guard try await store.tenant(ofRun: id) == tenant else {
            throw runNotFound(id)
        }
    }
    let router = serviceRouter()
    router.get("/internal/v1/runs/:id/checkpoint") { request, context in
        let tenant = try keys.tenant(of: request)
        let id = try context.parameters.require("id")
        let checkpoint = try await barrier.checkpoint(runId: id)
        // After the barrier, so a run created just now is known.
        if keys.isEnabled { try await requireOwnRun(id, tenant) }
        return try jsonResponse(checkpoint)
    }
    router.post("/internal/v1/deduplication/claim") { request, _ in
        let tenant = try keys.tenant(of: request)
        let body = try await request.body.collect(upTo: 1 << 20)
        let claim: DeduplicationClaimRequest
        do throws(ValidationError) {
            claim = try BatonJSON.decodeDocument(DeduplicationClaimRequest.self, from: body.readableBytesView)
        } catch {
            throw APIError(error)
        }
        if keys.isEnabled {
            try await requireOwnRun(claim.runId, tenant)
            // Project- and job-scoped keys name their project (`proj:<org>/<project>:…`): a
            // key may claim only its own project's.
            // and every key names its environment (`<org>@<environment>` outside the default one).
            let scope = claim.scopedKey.split(separator: ":", maxSplits: 2)
            guard scope.count == 3 else {
                throw APIError(status: .unprocessableContent, code: "invalid_field", message: "not a scoped deduplication key", path: "$.scopedKey")
            }
            let parts = scope[1].split(separator: "/")
            let organization = parts.first.map(String.init) ?? ""
            let environmentOK = tenant.environment == Tenant.default.environment
                ? !organization.contains("@") : organization.hasSuffix("@\(tenant.environment)")
            let projectOK = scope[0] == "org" || (parts.count >= 2 && parts[1] == tenant.project)
            guard environmentOK, projectOK else {
                throw APIError(status: .forbidden, code: "forbidden", message: "the deduplication key belongs to another project or environment", path: "$.scopedKey")
            }
        }
        return try jsonResponse(try await store.claim(claim, lease: .seconds(300), now: Date()))
    }
    // A run's callback URL (`io.waitForRequest`): no API key (whoever holds the URL answers
    // the wait; its token is the credential). The first request before the timeout wins.
    // A body travels to the run in one record and becomes the wait's output: at most a task output's size.
    let callbacks = CallbackService(store: store, producer: producer, topics: topics,
                                    maxBodyBytes: min(configuration.service.limits.eventBodyBytes, configuration.service.limits.taskOutputBytes), logger: logger)
    router.post("/api/v1/callbacks/:token") { request, context in
        try await callbacks.receive(token: try context.parameters.require("token"), request)
    }
    router.post("/api/v1/runs/:id/cancel") { request, context in
        let tenant = try keys.tenant(of: request)
        let id = try context.parameters.require("id")
        try await requireOwnRun(id, tenant)
        guard let result = try await store.cancel(runId: id, at: Date()) else {
            throw runNotFound(id)
        }
        logger.info("run cancel requested", metadata: ["run.id": "\(id)", "canceled": "\(result.canceled)"])
        return try jsonResponse(CancelRunResponse(id: id, status: result.status, canceled: result.canceled))
    }
    // A new run of the same job version with the same payload and context, linked to the first;
    // a body `{"id": "<event id>"}` makes a retried request start it once.
    router.post("/api/v1/runs/:id/replay") { request, context in
        let tenant = try keys.tenant(of: request)
        let id = try context.parameters.require("id")
        try await requireOwnRun(id, tenant)
        guard let original = try await store.creation(ofRun: id) else { throw runNotFound(id) }
        let body = try await request.body.collect(upTo: 64 << 10)
        var replayEventID = Identifiers.newEventID()
        if body.readableBytes > 0 {
            struct ReplayRequest: StrictlyDecodable {
                var id: String?
                enum CodingKeys: String, CodingKey, CaseIterable { case id }
            }
            let given: ReplayRequest
            do throws(ValidationError) {
                given = try BatonJSON.decodeDocument(Strict<ReplayRequest>.self, from: body.readableBytesView).value
                // The replay's event id: the same rule as any event id.
                if let id = given.id { try EventEnvelope.requireText(id, path: "$.id", what: "the replay's event id", maximum: EventEnvelope.maximumIDLength) }
            } catch {
                throw APIError(error)
            }
            if let given = given.id {
                replayEventID = given
            }
        }
        var event = original.event
        event.id = replayEventID
        event.timestamp = Date()
        event.deliverAt = nil
        // A replay of a child run is a run of its own: its end does not answer the original's parent.
        event.parent = nil
        let runId = Identifiers.runID(eventID: event.id, jobSlug: original.jobSlug)
        // As the dispatcher starts a run: its record first (acknowledged), then its command.
        // A replay of a limited run queues for a slot in the original's queue; the slot's grant sends its command.
        try await producer.send(RunEvent(runId: runId, body: .runCreated(.init(jobSlug: original.jobSlug, jobVersion: original.jobVersion,
                                                                               event: event, replayOf: id, concurrency: original.concurrency))),
                                topics: topics)
        try await producer.createTopics([TopicSpec(name: topics.runs(jobSlug: original.jobSlug))], timeout: .seconds(5))
        if original.concurrency == nil {
            try await producer.send(RunCommand(kind: .execute, runId: runId, jobSlug: original.jobSlug, jobVersion: original.jobVersion, event: event),
                                    topics: topics)
        }
        logger.info("run replayed", metadata: ["run.id": "\(runId)", "replay.of": "\(id)", "job.version": "\(original.jobVersion)"])
        return try jsonResponse(ReplayResponse(runId: runId, eventId: event.id, replayOf: id, jobVersion: original.jobVersion), status: .accepted)
    }
    // What the runs say about a job (its registration is the dispatcher's: `GET /api/v1/jobs/{id}`).
    router.get("/api/v1/jobs/:id/stats") { request, context in
        let tenant = try keys.tenant(of: request)
        let slug = try context.parameters.require("id")
        let counts = try await store.runCounts(tenant: tenant, jobSlug: slug)
        var byStatus: [String: Int] = [:]
        for count in counts { byStatus[count.status.rawValue, default: 0] += count.count }
        var lastRun: RunDetails?
        if let newest = try await store.listRuns(RunQuery(tenant: tenant, jobSlug: slug, limit: 1)).ids.first {
            lastRun = try await store.run(id: newest)
        }
        return try jsonResponse(JobStats(
            jobId: slug, runs: counts.reduce(0) { $0 + $1.count }, runsByStatus: byStatus,
            versions: Dictionary(grouping: counts, by: \.jobVersion).map { version, groups in
                JobStats.Version(version: version, runs: groups.reduce(0) { $0 + $1.count },
                                 lastRunCreatedAt: groups.map(\.lastCreatedAt).max()!)
            }.sorted { $0.lastRunCreatedAt > $1.lastRunCreatedAt },
            lastRun: lastRun))
    }
    // The seeds' cancelRunsForEvent: every run the caller's event started.
    router.post("/api/v1/events/:id/cancel-runs") { request, context in
        let tenant = try keys.tenant(of: request)
        let raw = try context.parameters.require("id")
        let eventId = raw.removingPercentEncoding ?? raw
        var results: [CancelRunResponse] = []
        var cursor: RunCursor?
        repeat {
            let page = try await store.listRuns(RunQuery(tenant: tenant, eventId: eventId, after: cursor, limit: RunQuery.maximumLimit))
            for id in page.ids {
                guard let result = try await store.cancel(runId: id, at: Date()) else { continue }
                results.append(CancelRunResponse(id: id, status: result.status, canceled: result.canceled))
            }
            cursor = page.next
        } while cursor != nil
        logger.info("runs of an event cancel requested", metadata: [
            "event.id": "\(eventId)", "runs": "\(results.count)", "canceled": "\(results.filter(\.canceled).count)"])
        return try jsonResponse(CancelEventRunsResponse(eventId: eventId, runs: results))
    }
    @Sendable func listRuns(_ request: Request, job: String?) async throws -> Response {
        let query = try RunListRequest.query(request.uri.queryParameters, tenant: try keys.tenant(of: request), job: job)
        let page = try await store.listRuns(query)
        var runs: [RunDetails] = []
        for id in page.ids {
            // A run listed a moment ago is never deleted: it is there.
            if let run = try await store.run(id: id) { runs.append(run) }
        }
        return try jsonResponse(RunListResponse(runs: runs, nextCursor: page.next?.encoded))
    }
    router.get("/api/v1/runs") { request, _ in try await listRuns(request, job: nil) }
    router.get("/api/v1/jobs/:id/runs") { request, context in try await listRuns(request, job: try context.parameters.require("id")) }
    router.get("/api/v1/runs/:id") { request, context in
        let tenant = try keys.tenant(of: request)
        let id = try context.parameters.require("id")
        // The payload and context only when asked for: they are the sender's data, which may
        // carry secrets (a token for a fetch), so lists and plain reads leave them out.
        let include = request.uri.queryParameters.getAll("include").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
        if let unknown = include.first(where: { $0 != "payload" }) {
            throw APIError(status: .unprocessableContent, code: "invalid_field", message: "cannot include '\(unknown)'; include=payload adds the payload and context", path: "include")
        }
        guard var run = try await store.run(id: id), run.tenant == tenant else {
            throw runNotFound(id)
        }
        if !include.isEmpty, let creation = try await store.creation(ofRun: id) {
            run.payload = creation.event.payload
            run.context = creation.event.context
        }
        return try jsonResponse(run)
    }
    return serviceApplication(name: "baton-task-results", http: configuration.http, router: router,
                              services: (pool.map { [$0 as any Service] } ?? [])
                                  + ((store as? any AppliedProgressNotifying & ConsumedOffsetStore).map {
                                      [AppliedProgressFollower(store: $0, topic: topics.taskResults, applied: applied, logger: logger) as any Service]
                                  } ?? []) + [
                                  ProducerService(producer: producer), consumerService,
                                  BrokerWatchService(BrokerWatch(producer: producer, topics: watched, baseline: broker,
                                                                 interval: kafka.profile.brokerCheckInterval, logger: logger)),
                                  PeriodicService("firing timers", every: configuration.timerPoll, wakeUp: slots.wakeUp, logger: logger) {
                                      // Grants first, so their timers fire in the same round; a failing grant
                                      // does not hold the other timers back (it is tried again next round).
                                      do {
                                          try await timers.grantSlots()
                                      } catch {
                                          logger.error("granting concurrency slots failed; trying again", metadata: ["error": "\(error)"])
                                      }
                                      try await timers.fireDueTimers()
                                  },
                                  PeriodicService("background fetches", every: configuration.timerPoll, logger: logger) { try await fetches.tick() },
                                  PeriodicService("delivering callback requests", every: .seconds(1), logger: logger) { try await callbacks.redeliver() },
                                  // For alerts: a run that should have ended long ago (see docs/operations.md).
                                  PeriodicService("measuring active runs", every: configuration.runsAgeInterval, logger: logger) {
                                      let active = try await store.activeRuns()
                                      oldestActiveRun.record(active.oldest.map { max(0, Date().timeIntervalSince($0)) } ?? 0)
                                      activeRunCount.record(active.count)
                                      let slots = try await store.slotCounts()
                                      runsWaitingForSlots.record(slots.waiting)
                                      slotsHeld.record(slots.holding)
                                  },
                                  PeriodicService("looking for stuck runs", every: configuration.reaperInterval, logger: logger) { try await reaper.reap() },
                              ], keys: keys,
                              logger: logger)
}

@main
struct TaskResultMain {
    static func main() async {
        await serviceMain("baton-task-results") {
        let configuration = try TaskResultConfiguration(config: .batonDefault())
        bootstrapLogging(level: configuration.service.logLevel)
        let logger = Logger(label: "baton-task-results")
        try await runUntilSignalled([try await buildTaskResultService(configuration: configuration, logger: logger)],
                                    shutdownDeadline: configuration.service.shutdownDeadline, logger: logger)
        }
    }
}

/// Receives requests to runs' callback URLs (`POST /api/v1/callbacks/{token}`) and hands each
/// accepted one to its run (`requestReceived` on the run's task-results partition).
struct CallbackService: Sendable {
    let store: any TaskResultStoring
    let producer: KafkaProducer
    let topics: Topics
    let maxBodyBytes: Int
    let logger: Logger

    func receive(token: String, _ request: Request) async throws -> Response {
        guard CallbackToken.isWellFormed(token) else {
            throw APIError(status: .notFound, code: "not_found", message: "no run waits for a request at this URL")
        }
        let bytes: ByteBuffer
        do {
            bytes = try await request.body.collect(upTo: maxBodyBytes)
        } catch {
            throw APIError(status: .contentTooLarge, code: "payload_too_large", message: "request body is larger than the limit of \(maxBodyBytes) bytes")
        }
        let body: JSONValue
        if bytes.readableBytes == 0 {
            body = .null
        } else {
            do throws(ValidationError) {
                body = try BatonJSON.decodeDocument(JSONValue.self, from: bytes.readableBytesView)
            } catch {
                throw APIError(error)
            }
        }
        let received = WaitedRequest(body: body, receivedAt: Date(millisecondsSince1970: Date().millisecondsSince1970))
        let hash = CallbackToken.hash(token)
        var answer = try await store.receiveRequest(tokenHash: hash, request: received, at: received.receivedAt)
        // A caller may answer as soon as it has the URL, before this service has applied the
        // run's wait: an unknown token gets a short grace (tokens are unguessable, so only
        // real ones are worth it, and a wrong one costs its caller 2 s).
        let graceEnd = ContinuousClock.now + .seconds(2)
        while answer == .unknown, ContinuousClock.now < graceEnd {
            try await Task.sleep(for: .milliseconds(100))
            answer = try await store.receiveRequest(tokenHash: hash, request: received, at: Date())
        }
        switch answer {
        case .accepted(let runId, let taskId):
            do {
                try await deliver([ReceivedRequest(tokenHash: hash, runId: runId, taskId: taskId, request: received)])
            } catch {
                // Recorded: re-delivered shortly (the caller must not send it again: it would get 409).
                logger.warning("callback request recorded, its delivery failed; retrying", metadata: ["run.id": "\(runId)", "error": "\(error)"])
            }
            logger.info("callback request received", metadata: ["run.id": "\(runId)"])
            return try jsonResponse(CallbackResponse(runId: runId), status: .ok)
        case .alreadyReceived:
            throw APIError(status: .conflict, code: "already_received", message: "this URL was answered already; a wait takes one request")
        case .expired:
            throw APIError(status: .gone, code: "expired", message: "the wait for this URL timed out")
        case .unknown:
            throw APIError(status: .notFound, code: "not_found", message: "no run waits for a request at this URL")
        }
    }

    /// Hands `requests` to their runs, then records them delivered. A crash in between:
    /// ``redeliver()`` sends them again (a second delivery changes nothing).
    func deliver(_ requests: [ReceivedRequest]) async throws {
        guard !requests.isEmpty else { return }
        var deliveries: [KafkaProducer.Delivery] = []
        for request in requests {
            deliveries.append(try await producer.enqueue(request.notice, topics: topics))
        }
        for delivery in deliveries { try await delivery.acknowledged() }
        try await store.markRequestsDelivered(tokenHashes: requests.map(\.tokenHash), at: Date())
    }

    /// Delivers requests accepted more than a few seconds ago and not delivered (a crash or a
    /// broker error between the answer and the delivery).
    func redeliver() async throws {
        try await deliver(try await store.undeliveredRequests(before: Date().addingTimeInterval(-5), limit: 100))
    }
}

/// The answer to an accepted callback request.
struct CallbackResponse: Codable, Sendable {
    var runId: String
}
