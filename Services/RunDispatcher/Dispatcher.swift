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
import Tracing

/// Settings of `baton-dispatcher`: the shared keys (see `ServiceConfiguration`) plus
/// - `store.url` (`STORE_URL`), string, unset: a `postgres://user:password@host:5432/database?pool=10&sslmode=require`
///   URL puts the state in PostgreSQL, shared by every instance given the same URL (a database
///   of its own: not the task-result service's); unset, the SQLite file `store.path`;
/// - `store.path` (`STORE_PATH`), string, `data/dispatcher.sqlite`: the SQLite file;
/// - `http.host` / `http.port` (`HTTP_PORT`), default `127.0.0.1:8081`: `/health`, `/api/v1/jobs`;
/// - `dispatcher.instance` (`DISPATCHER_INSTANCE`), string, derived from host name and store
///   path: this instance's name; every instance reads all job registrations under it;
/// - `dispatcher.retention.days` (`DISPATCHER_RETENTION_DAYS`), int, 30: how long dispatched
///   event ids are remembered (the window in which a resend starts nothing); 0 keeps them.
struct DispatcherConfiguration: Sendable {
    var service: ServiceConfiguration
    var http: HTTPListenerConfiguration
    var storePath: String
    /// The PostgreSQL store's settings, when `store.url` is set.
    var postgres: PostgresDatabase.Configuration?
    var instance: String
    /// How long dispatched event ids are remembered; `nil`: forever.
    var retention: Duration?
    /// How long received events are kept for waits registered after them (`io.waitForEvent`);
    /// `nil`: not kept (a wait then gets only events that arrive after its registration).
    var eventWaitLookback: Duration?

    init(config: ConfigReader) throws(ValidationError) {
        self.service = try ServiceConfiguration(config: config, serviceName: "baton-dispatcher")
        self.http = try HTTPListenerConfiguration(config: config, defaultPort: 8081)
        self.storePath = config.string(forKey: "store.path", default: "data/dispatcher.sqlite")
        let postgres = try StoreLocation.postgres(config: config)
        self.postgres = postgres
        self.instance = config.string(forKey: "dispatcher.instance",
                                      default: StoreLocation.defaultInstance("dispatcher", storePath: storePath, postgres: postgres))
        guard !instance.isEmpty, instance.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw ValidationError(path: "dispatcher.instance", message: "'\(instance)' may hold only letters, digits and dashes")
        }
        let days = config.int(forKey: "dispatcher.retention.days", default: 30)
        guard days >= 0 else { throw ValidationError(path: "dispatcher.retention.days", message: "must be 0 (keep) or more, got \(days)") }
        self.retention = days == 0 ? nil : .seconds(days * 86_400)
        let lookback = config.int(forKey: "dispatcher.event.wait.lookback.seconds", default: Int(EventWaitRules.defaultLookback / .seconds(1)))
        guard (0...86_400).contains(lookback) else {
            throw ValidationError(path: "dispatcher.event.wait.lookback.seconds", message: "must be 0 (keep no events) to 86400, got \(lookback)")
        }
        self.eventWaitLookback = lookback == 0 ? nil : .seconds(lookback)
    }
}

/// Matches events to jobs and starts one run per (event, job).
struct Dispatcher: Sendable {
    let store: any DispatcherBackend
    let producer: KafkaProducer
    let topics: Topics
    let deadLetters: DeadLetterQueue
    let limits: Limits
    /// Whether received events are kept for waits registered after them (see `DispatcherConfiguration`).
    let keepsRecentEvents: Bool
    let logger: Logger

    /// Handles one record of the jobs topic (or of the events topic, as a batch of one); returns
    /// once its effects are durable.
    func handle(_ record: KafkaRecord) async throws {
        if record.topic == topics.jobs {
            guard let registration = try await deadLetters.decode(record, as: "JobRegistration", { try JobRegistration.decode(from: $0.value, maxDepth: limits.nestingDepth) })
            else { return }
            do {
                try await store.upsert(registration)
            } catch let conflict as JobOwnershipConflict {
                try await deadLetters.send(record, reason: conflict.description)
                return
            }
            try await producer.createTopics([TopicSpec(name: topics.runs(jobSlug: registration.slug))])
            try await store.syncSchedule(registration, now: Date())
            logger.info("job registered", metadata: ["job.slug": "\(registration.slug)", "job.version": "\(registration.version)"])
            return
        }
        try await handleEvents([record])
    }

    /// Handles records of the events topic, everything one poll returned: the runs of every
    /// event are started (all run records sent at once, then all commands), and what that
    /// changed is written in one transaction with the records' offsets.
    func handleEvents(_ records: [KafkaRecord]) async throws {
        var effects = DispatchBatch()
        effects.keepsRecentEvents = keepsRecentEvents
        var runs: [PlannedRun] = []
        /// First events of this batch by tenant-scoped id (a resend in the same batch).
        var firstInBatch: [String: EventEnvelope] = [:]
        // Decode every record first (dead-lettering bad ones), then read what the batch needs
        // from the store in a few lookups instead of several per event.
        var received: [EventEnvelope?] = []
        received.reserveCapacity(records.count)
        for record in records {
            received.append(try await deadLetters.decode(record, as: "EventEnvelope", { try EventEnvelope.decode(from: $0.value, maxDepth: limits.nestingDepth) }))
        }
        var view = try await BatchView(store: store, events: received.compactMap { $0 })
        for (record, envelope) in zip(records, received) {
            effects.consumed(topic: record.topic, partition: record.partition, offset: record.offset)
            guard let envelope else { continue }
            // Continues the producer's trace (when a tracer is bootstrapped); the commands sent
            // for the event carry this span's context.
            try await withSpan("\(record.topic) process", context: record.traceContext, ofKind: .consumer) { span in
                span.attributes["messaging.system"] = "kafka"
                span.attributes["messaging.kafka.offset"] = Int(record.offset)
                try await plan(record, received: envelope, view: &view, into: &effects, runs: &runs, firstInBatch: &firstInBatch)
            }
        }
        try await start(runs)
        effects.runsStarted = runs.map { ($0.event.id, $0.job.slug, $0.runId) }
        let matches = try await store.commit(effects, at: Date())
        try await deliver(matches)
        for run in runs {
            Counter(label: "baton_runs_started_total", dimensions: [("job", run.job.slug)]).increment()
            logger.info("run started", metadata: ["run.id": "\(run.runId)", "job.slug": "\(run.job.slug)", "event.id": "\(run.event.id)"])
        }
    }

    /// A run to start: its event, its job, and the trace context its records carry.
    struct PlannedRun: Sendable {
        var event: EventEnvelope
        var job: JobRegistration
        var runId: String
        var context: ServiceContext
        /// The run's concurrency queue when its job has a limit: the run waits there for a slot.
        var concurrency: ConcurrencySlot? { job.concurrencyLimit?.slot(jobSlug: job.slug, payload: event.payload, tenant: event.tenant) }
    }

    /// Decides what one events record does: nothing (a resend after its runs started, a bad
    /// record dead-lettered), a hold until its delivery time, or runs to start.
    private func plan(_ record: KafkaRecord, received: EventEnvelope, view: inout BatchView, into effects: inout DispatchBatch,
                      runs: inout [PlannedRun], firstInBatch: inout [String: EventEnvelope]) async throws {
        if let slug = received.invoke, try await view.job(slug: slug, store: store)?.tenant != received.tenant {
            try await deadLetters.send(record, reason: "invoke of unknown job '\(slug)': register it first")
            try await refuseChild(received, job: slug, reason: "job '\(slug)' is not registered (in this project and environment): register it first")
            return
        }
        // Sending an id again is idempotent: the first event with an id wins. A resend after its
        // runs started starts nothing (not even runs of jobs registered since); one that arrives
        // before (a crash in between) finishes the first event's dispatch, with its content.
        let scopedID = received.tenant.scoped(received.id)
        let event: EventEnvelope
        if let first = firstInBatch[scopedID] {
            // Its first arrival, earlier in this batch, starts its runs.
            Counter(label: "baton_events_resent_total", dimensions: [("service", "dispatcher")]).increment()
            logger.info("event id seen before: the first event with it wins", metadata: [
                "event.id": "\(first.id)", "first.dispatched": "false", "offset": "\(record.partition)/\(record.offset)"])
            return
        } else if let seen = view.seen[scopedID] {
            Counter(label: "baton_events_resent_total", dimensions: [("service", "dispatcher")]).increment()
            logger.info("event id seen before: the first event with it wins", metadata: [
                "event.id": "\(seen.event.id)", "first.dispatched": "\(seen.dispatched)", "offset": "\(record.partition)/\(record.offset)"])
            if seen.dispatched { return }
            event = seen.event
        } else {
            event = received
            effects.firstSeen.append(received)
        }
        firstInBatch[scopedID] = event
        if let deliverAt = event.deliverAt, deliverAt > Date() {
            effects.held.append(event)
            Counter(label: "baton_events_held_total").increment()
            logger.info("event held until its delivery time", metadata: ["event.id": "\(event.id)", "deliver.at": "\(deliverAt)"])
            return
        }
        if view.delayed[scopedID] == .canceled {
            effects.eventsDispatched.append(scopedID)
            logger.info("canceled event dropped", metadata: ["event.id": "\(event.id)"])
            return
        }
        if let wait = event.eventWait {
            // A run waits for an event (`io.waitForEvent`): matched in the batch's transaction.
            effects.waitsRegistered.append(EventWaitRecord(tenant: event.tenant, request: wait))
            effects.eventsDispatched.append(scopedID)
            logger.info("event wait registered", metadata: ["run.id": "\(wait.runId)", "event.name": "\(wait.name)"])
            return
        }
        if Self.isWaitable(event) { effects.waitableEvents.append(event) }
        let planned = try await runsToStart(for: event, view: &view)
        runs += planned.runs
        effects.held += planned.held
        effects.eventsDispatched.append(scopedID)
    }

    /// Whether runs waiting for events may get `event`: any event but invocations, schedule
    /// ticks and wait registrations.
    static func isWaitable(_ event: EventEnvelope) -> Bool {
        event.invoke == nil && event.eventWait == nil && event.name != JobTrigger.scheduledEventName
    }

    /// Tells each run whose wait got its event (`eventWaitMatched` on its task-results
    /// partition), then records them told. A crash in between: ``redeliverWaitMatches()``.
    func deliver(_ matches: [EventWaitMatch]) async throws {
        guard !matches.isEmpty else { return }
        var deliveries: [KafkaProducer.Delivery] = []
        for match in matches {
            var value = Array(try BatonJSON.encoder.encode(match.notice))
            if value.count > KafkaProducer.largestNotice {
                // It would not fit in a record: the run gets the event without its payload, and says why.
                var event = match.event
                event.payload = ["baton.error": .string("the event's payload (\(value.count) bytes with its notice) is too large to hand to a waiting run")]
                event.context = nil
                value = Array(try BatonJSON.encoder.encode(EventWaitMatch(id: match.id, runId: match.runId, taskId: match.taskId, event: event).notice))
                logger.warning("waited-for event too large to deliver whole: its payload is left out", metadata: ["run.id": "\(match.runId)", "event.id": "\(event.id)"])
            }
            deliveries.append(try await producer.enqueueWhenRoom(topic: topics.taskResults, key: Array(match.runId.utf8), value: value))
        }
        for delivery in deliveries { try await delivery.acknowledged() }
        try await store.markWaitMatchesDelivered(ids: matches.map(\.id), at: Date())
        Counter(label: "baton_event_waits_matched_total").increment(by: matches.count)
        for match in matches {
            logger.info("waited-for event delivered", metadata: ["run.id": "\(match.runId)", "event.id": "\(match.event.id)"])
        }
    }

    /// Delivers matches that a crash left undelivered (older than a few seconds: younger ones
    /// are being delivered by the instance that matched them). At least once: a run applies
    /// a second delivery as nothing.
    func redeliverWaitMatches() async throws {
        try await deliver(try await store.undeliveredWaitMatches(before: Date().addingTimeInterval(-5), limit: 100))
    }

    /// The runs `event` starts that were not started yet (as `view` saw the store, when given).
    private func runsToStart(for event: EventEnvelope, view: inout BatchView) async throws -> (runs: [PlannedRun], held: [EventEnvelope]) {
        let jobs: [JobRegistration]
        if let slug = event.invoke {
            jobs = try await view.job(slug: slug, store: store).flatMap { $0.tenant == event.tenant ? [$0] : nil } ?? []
            if let job = jobs.first, !job.isEnabled {
                // The ingester refuses to invoke a disabled job; this one was disabled meanwhile.
                logger.warning("invocation of a disabled job: no run", metadata: ["event.id": "\(event.id)", "job.slug": "\(slug)"])
                try await refuseChild(event, job: slug, reason: "job '\(slug)' is disabled: enable it to invoke it")
                return ([], [])
            }
        } else {
            jobs = try await view.jobs(named: event.name, store: store).filter { $0.matches(event) }
        }
        if jobs.isEmpty {
            logger.debug("no job matches event", metadata: ["event.id": "\(event.id)", "event.name": "\(event.name)"])
        }
        let context = ServiceContext.current ?? .topLevel
        var runs: [PlannedRun] = []
        var held: [EventEnvelope] = []
        for job in jobs where !view.wasDispatched(eventID: event.id, jobSlug: job.slug) {
            if let control = job.flowControl, control.kind == .debounce, event.invoke == job.slug, Identifiers.isDebouncedCopy(event.id), let due = event.deliverAt,
               !FlowControlRules.isLatestDebounced(deliverAt: due, starts: try await store.flowStarts(jobSlug: job.slug, key: control.keyValue(in: event.payload)),
                                                   control: control) {
                // A held copy of a debounced event that a later one of its key replaced.
                Counter(label: "baton_runs_debounced_total", dimensions: [("job", job.slug)]).increment()
                logger.info("debounced: a later event takes this one's place", metadata: ["event.id": "\(event.id)", "job.slug": "\(job.slug)"])
                continue
            }
            if let control = job.flowControl, event.invoke == nil {
                let key = control.keyValue(in: event.payload)
                switch try await store.decideFlow(jobSlug: job.slug, key: key, control: control, eventID: event.tenant.scoped(event.id), at: Date()) {
                case .start:
                    break
                case .drop:
                    Counter(label: "baton_runs_rate_limited_total", dimensions: [("job", job.slug)]).increment()
                    logger.info("rate limit: no run", metadata: ["event.id": "\(event.id)", "job.slug": "\(job.slug)", "flow.key": "\(key)"])
                    continue
                case .delay(let until):
                    // Held, like a delayed event, as an invocation of this job alone (not limited again,
                    // but a debounced copy starts only if it is still its key's last event).
                    if control.kind == .throttle {
                        Counter(label: "baton_runs_throttled_total", dimensions: [("job", job.slug)]).increment()
                    }
                    logger.info(control.kind == .throttle ? "throttled: the run starts later" : "debounced: the run starts unless a later event comes",
                                metadata: ["event.id": "\(event.id)", "job.slug": "\(job.slug)", "flow.key": "\(key)", "deliver.at": "\(until)"])
                    let copyID = control.kind == .debounce ? Identifiers.debouncedEventID(eventID: event.id, jobSlug: job.slug)
                                                           : Identifiers.throttledEventID(eventID: event.id, jobSlug: job.slug)
                    held.append(EventEnvelope(id: copyID, name: event.name, source: event.source,
                                              payload: event.payload, context: event.context, timestamp: event.timestamp, deliverAt: until,
                                              accountId: event.accountId, invoke: job.slug, tenant: event.tenant))
                    continue
                }
            }
            runs.append(PlannedRun(event: event, job: job, runId: Identifiers.runID(eventID: event.id, jobSlug: job.slug), context: context))
        }
        return (runs, held)
    }

    /// When `event` invokes a child job that cannot run, tells the waiting parent (a failed
    /// child outcome on its task-results partition) instead of leaving it waiting for good.
    private func refuseChild(_ event: EventEnvelope, job slug: String, reason: String) async throws {
        guard let parent = event.parent else { return }
        let outcome = ChildRunOutcome(runId: Identifiers.runID(eventID: event.id, jobSlug: slug), jobId: slug, status: .failed, error: reason)
        let notice = RunEvent(runId: parent.runId, body: .childRunFinished(.init(taskId: parent.taskId, outcome: outcome)))
        try await producer.send(notice, topics: topics)
        logger.warning("child job cannot run: its parent is told", metadata: ["event.id": "\(event.id)", "job.slug": "\(slug)",
                                                                             "parent.run.id": "\(parent.runId)"])
    }

    /// Sends the run record of every run, then (once all are acknowledged) every execute
    /// command. The run record comes first on the run's task-results partition, so every later
    /// event of the run finds it; the task-result service creates it idempotently. A run of a
    /// job with a concurrency limit gets no command here: it queues for a slot, and the
    /// task-result service sends its command when it gets one.
    private func start(_ runs: [PlannedRun]) async throws {
        guard !runs.isEmpty else { return }
        var deliveries: [KafkaProducer.Delivery] = []
        deliveries.reserveCapacity(runs.count)
        for run in runs {
            let created = RunEvent(runId: run.runId, body: .runCreated(.init(jobSlug: run.job.slug, jobVersion: run.job.version, event: run.event,
                                                                             concurrency: run.concurrency)))
            let value = Array(try BatonJSON.encoder.encode(created))
            deliveries.append(try await ServiceContext.withValue(run.context) {
                try await producer.enqueueWhenRoom(topic: topics.taskResults, key: Array(run.runId.utf8), value: value)
            })
        }
        for delivery in deliveries { try await delivery.acknowledged() }
        deliveries.removeAll(keepingCapacity: true)
        for run in runs where run.job.concurrencyLimit == nil {
            let command = RunCommand(kind: .execute, runId: run.runId, jobSlug: run.job.slug, jobVersion: run.job.version, event: run.event)
            let value = Array(try BatonJSON.encoder.encode(command))
            deliveries.append(try await ServiceContext.withValue(run.context) {
                try await producer.enqueueWhenRoom(topic: topics.runs(jobSlug: run.job.slug), key: Array(run.runId.utf8), value: value)
            })
        }
        for delivery in deliveries { try await delivery.acknowledged() }
    }

    /// Starts the run of every matching job not started yet for `event` (delayed events and
    /// schedule ticks).
    func dispatch(_ event: EventEnvelope) async throws {
        if Self.isWaitable(event) {
            var batch = DispatchBatch()
            batch.keepsRecentEvents = keepsRecentEvents
            batch.waitableEvents = [event]
            try await deliver(try await store.commit(batch, at: Date()))
        }
        var view = try await BatchView(store: store, events: [event])
        let (runs, held) = try await runsToStart(for: event, view: &view)
        for copy in held { try await store.hold(copy, id: copy.tenant.scoped(copy.id), now: Date()) }
        try await start(runs)
        for run in runs {
            try await store.markDispatched(eventID: event.id, jobSlug: run.job.slug, runID: run.runId)
            Counter(label: "baton_runs_started_total", dimensions: [("job", run.job.slug)]).increment()
            logger.info("run started", metadata: ["run.id": "\(run.runId)", "job.slug": "\(run.job.slug)", "event.id": "\(event.id)"])
        }
    }
}

/// What a batch of events needs from the dispatcher's store, read in a few lookups before the
/// batch is planned: events seen, delayed-event statuses, runs started, and the jobs per event
/// name or slug (read once per batch).
struct BatchView: Sendable {
    var seen: [String: SeenEvent]
    var delayed: [String: DelayedEventRecord.Status]
    var dispatched: [String: Set<String>]
    private var jobsByName: [String: [JobRegistration]] = [:]
    private var jobsBySlug: [String: JobRegistration?] = [:]

    init(store: any DispatcherBackend, events: [EventEnvelope]) async throws {
        let scoped = events.map { $0.tenant.scoped($0.id) }
        seen = try await store.seenEvents(eventIDs: scoped)
        delayed = try await store.delayedEventStatuses(ids: scoped)
        dispatched = try await store.dispatchedJobs(eventIDs: events.map(\.id))
    }

    func wasDispatched(eventID: String, jobSlug: String) -> Bool { dispatched[eventID]?.contains(jobSlug) ?? false }

    /// The jobs registered for events named `name` (of every tenant: the caller filters).
    mutating func jobs(named name: String, store: any DispatcherBackend) async throws -> [JobRegistration] {
        if let jobs = jobsByName[name] { return jobs }
        let jobs = try await store.jobs(forEventName: name)
        jobsByName[name] = jobs
        return jobs
    }

    mutating func job(slug: String, store: any DispatcherBackend) async throws -> JobRegistration? {
        if let job = jobsBySlug[slug] { return job }
        let job = try await store.job(slug: slug)
        jobsBySlug[slug] = .some(job)
        return job
    }
}

/// Delivers held events when they are due: starts their runs, then marks them delivered (a crash
/// in between delivers again, which starts nothing new: dispatch is idempotent).
struct DelayedDelivery: Sendable {
    let dispatcher: Dispatcher
    /// This instance, as the holder of the events it claims for delivery.
    let owner: String
    let logger: Logger

    func deliverDue() async throws {
        for event in try await dispatcher.store.claimDueDelayed(owner: owner, now: Date(), lease: .seconds(60), limit: 100) {
            try await dispatcher.dispatch(event)
            try await dispatcher.store.markDelivered(id: event.tenant.scoped(event.id), owner: owner, now: Date())
            try await dispatcher.store.markEventDispatched(eventID: event.tenant.scoped(event.id), at: Date())
            Counter(label: "baton_events_delivered_late_total").increment()
            logger.info("delayed event delivered", metadata: ["event.id": "\(event.id)"])
        }
    }
}

/// Starts the runs of scheduled jobs (interval and cron triggers).
///
/// Each tick is an event whose id is derived from the job and the tick's time, started through
/// the idempotent `dispatch`: a tick fired twice (a crash before the schedule advanced, two
/// dispatchers during a rebalance) starts one run. With several dispatchers, a job's schedule
/// is fired by the instance that consumes its partition of the events topic (see
/// `Identifiers.schedulePartition`); the others leave it due, so the instance that takes the
/// partition over catches up. Catch-up policy: after downtime, the first missed tick runs once
/// and the schedule continues from now; the other missed ticks are skipped, not replayed.
struct ScheduleService: Sendable {
    let dispatcher: Dispatcher
    /// Whether this instance fires the schedule of a job (by slug).
    let owns: @Sendable (String) -> Bool
    let logger: Logger

    func fireDue(now: Date = Date()) async throws {
        for schedule in try await dispatcher.store.dueSchedules(now: now) where owns(schedule.jobSlug) {
            let tick = schedule.due
            let payload = try JSONValue(encoding: ScheduledPayload(ts: tick, lastTimestamp: schedule.lastTick))
            let tenant = try await dispatcher.store.job(slug: schedule.jobSlug)?.tenant ?? .default
            let event = EventEnvelope(id: "sched_\(schedule.jobSlug)_\(Int64((tick.timeIntervalSince1970 * 1000).rounded()))",
                                      name: JobTrigger.scheduledEventName, source: "schedule", payload: payload, timestamp: tick,
                                      invoke: schedule.jobSlug, tenant: tenant)
            try await dispatcher.dispatch(event)
            guard let next = schedule.trigger.nextTick(after: max(tick, now)) else { continue }
            try await dispatcher.store.advanceSchedule(jobSlug: schedule.jobSlug, fired: tick, next: next)
            logger.info("scheduled run started", metadata: ["job.slug": "\(schedule.jobSlug)", "tick": "\(tick)", "next": "\(next)"])
        }
    }
}

/// The answer to `DELETE /api/v1/events/{id}`.
/// The answer to `GET /api/v1/events/{id}`: what the dispatcher knows of an event.
struct EventStatusResponse: Codable, Sendable {
    var id: String
    /// The first event received with this id (a resend does not replace it); `nil` for a
    /// delayed event canceled before it arrived.
    var event: EventEnvelope?
    /// Whether the event's runs were all started (or it was dropped as canceled).
    var dispatched: Bool
    /// For delayed events: `PENDING`, `DELIVERED` or `CANCELED`.
    var delayedStatus: String?
}

/// Everything the dispatcher keeps, on SQLite (one instance) or PostgreSQL (any number).
typealias DispatcherBackend = DispatcherStoring & BrokerBoundStore

extension DispatcherStore: BrokerBoundStore {}
extension PostgresDispatcherStore: BrokerBoundStore {}

/// Builds the dispatcher process: its consumer, and an HTTP listener for health and jobs.
func buildDispatcher(configuration: DispatcherConfiguration, logger: Logger) async throws -> some ApplicationProtocol {
    let kafka = configuration.service.kafka
    let topics = configuration.service.topics
    // PostgreSQL's connection pool runs as the first service (so it stops last).
    let pool = configuration.postgres.map { PostgresPoolService(configuration: $0, logger: logger) }
    let store: any DispatcherBackend = if let pool {
        try await PostgresDispatcherStore(database: pool.database)
    } else {
        try DispatcherStore(path: configuration.storePath)
    }
    let storeName = configuration.postgres.map(\.description) ?? configuration.storePath
    let producer = try KafkaProducer(configuration: kafka, options: .init(lingerMilliseconds: 0), logger: logger)
    try await producer.createTopics([
        TopicSpec(name: topics.events), TopicSpec(name: topics.taskResults), TopicSpec(name: topics.deadLetter),
        TopicSpec(name: topics.jobs, config: ["cleanup.policy": "compact"]),
    ])
    // The store belongs to one broker, and schedules to the events topic's partition count:
    // check both (and on a change, act on the policy) before reading anything from the store.
    let watched = [topics.events, topics.taskResults, topics.deadLetter, topics.jobs, topics.broker]
    let broker = try await BrokerGuard.bind(store, storePath: storeName, producer: producer, markerTopic: topics.broker,
                                            topics: watched, policy: configuration.service.brokerChangePolicy, logger: logger)
    let dispatcher = Dispatcher(
        store: store, producer: producer, topics: topics,
        deadLetters: DeadLetterQueue(producer: producer, topic: topics.deadLetter, consumerName: "baton-dispatcher", logger: logger),
        limits: configuration.service.limits, keepsRecentEvents: configuration.eventWaitLookback != nil, logger: logger)
    // Events are shared out over the instances (one group); job registrations are read in full
    // by every instance (a group of its own), since each instance matches against all jobs.
    // The store keeps the events topic's offsets (written with each batch): start where it left off.
    let consumer = try KafkaConsumer(
        configuration: kafka, groupID: "\(topics.prefix).dispatcher", topics: [topics.events], logger: logger,
        startOffsets: KafkaConsumer.startingAtStoredOffsets({ try blockingOutsideCooperativePool(limit: min(configuration.service.storeOutage.attemptTimeout, .seconds(10)), what: "reading the stored offsets") { try await store.consumedOffsets(topic: topics.events) } }, failed: { error in
            logger.error("stored offsets unreadable: starting at the group's committed offsets", metadata: ["error": "\(error)"])
        }))
    // Schedules follow the events topic's partitions: its count is bound with the store, and a
    // change of it under a running dispatcher stops the dispatcher (the broker watch below).
    var eventPartitions = broker.partitions[topics.events] ?? 0
    if eventPartitions == 0 { eventPartitions = try await producer.partitionCount(topic: topics.events) }
    let scheduledPartitions = eventPartitions
    let ownsSchedule: @Sendable (String) -> Bool = { slug in
        let partition = Identifiers.schedulePartition(jobSlug: slug, count: scheduledPartitions)
        return consumer.assignedPartitions.contains(TopicPartition(topic: topics.events, partition: partition))
    }
    // Everything one poll returned in one transaction.
    let outage = configuration.service.storeOutage
    let consumerService = BatchConsumerService(consumer: consumer, maxBatch: 1000, logger: logger) { batch in
        // Dispatching a batch again starts nothing twice (run ids are derived, every write is
        // idempotent): while the store restarts, dispatch it again.
        try await retryingStoreOutage(outage, what: "dispatching events", logger: logger) { try await dispatcher.handleEvents(batch) }
    }
    let jobsConsumer = try KafkaConsumer(configuration: kafka, groupID: "\(topics.prefix).dispatcher.jobs.\(configuration.instance)",
                                         topics: [topics.jobs], logger: logger)
    let jobsService = ConsumerService(consumer: jobsConsumer, logger: logger) { record in
        try await retryingStoreOutage(outage, what: "recording a job registration", logger: logger) { try await dispatcher.handle(record) }
        do {
            try await jobsConsumer.commit(record)
        } catch let error as KafkaError where error.isRetriable {
            // A rebalance took the partition (assignment lost, rebalance in progress): not a
            // reason to stop. Applying a registration is idempotent; it may be read again.
            logger.warning("job registration applied but its offset not committed; it may be read again",
                           metadata: ["error": "\(error)"])
        }
    }
    let keys = configuration.service.apiKeys
    keys.logState(logger)
    let router = serviceRouter()
    router.get("/api/v1/jobs") { request, _ in
        let tenant = try keys.tenant(of: request)
        return try jsonResponse(["jobs": try await store.jobs(of: keys.isEnabled ? tenant : nil)])
    }
    router.get("/api/v1/jobs/:slug") { request, context in
        let tenant = try keys.tenant(of: request)
        let slug = try context.parameters.require("slug")
        guard let job = try await store.job(slug: slug) else {
            throw APIError(status: .notFound, code: "job_not_found", message: "no job '\(slug)' is registered", path: "id")
        }
        guard job.tenant == tenant else {
            throw APIError(status: .conflict, code: "job_owned_elsewhere",
                           message: "the job id '\(slug)' is taken by another project or environment; give the job another id", path: "id")
        }
        return try jsonResponse(job)
    }
    router.delete("/api/v1/events/:id") { request, context in
        let tenant = try keys.tenant(of: request)
        let raw = try context.parameters.require("id")
        let id = raw.removingPercentEncoding ?? raw
        let result = try await store.cancelDelayed(id: tenant.scoped(id), now: Date())
        logger.info("delayed event cancel requested", metadata: ["event.id": "\(id)", "tenant": "\(tenant)", "canceled": "\(result.canceled)"])
        return try jsonResponse(CancelEventResponse(id: id, canceled: result.canceled, status: result.status.rawValue))
    }
    router.get("/api/v1/events") { request, _ in
        let tenant = try keys.tenant(of: request)
        let limit = try pageLimit(request.uri.queryParameters.get("limit"))
        let visible: Tenant? = keys.isEnabled ? tenant : nil
        let prefix = DispatchRules.listingPrefix(for: visible)
        let rows = DispatchRules.rowsToRead(for: visible, limit: limit)
        let recent = DispatchRules.listed(try await store.recentEvents(idPrefix: prefix, limit: rows), tenant: visible, limit: limit)
        let delayed = DispatchRules.listed(try await store.pendingDelayedEvents(idPrefix: prefix, limit: rows), tenant: visible, limit: limit)
        // A delayed event still pending is also in `events` once received: say so on its row.
        let pending = Dictionary(delayed.map { ($0.event.id, $0) }, uniquingKeysWith: { first, _ in first })
        func summary(_ listed: ListedEvent) -> EventListing {
            let delay = listed.delayedStatus != nil ? listed : pending[listed.event.id]
            return EventListing(id: listed.event.id, name: listed.event.name, source: listed.event.source, timestamp: listed.event.timestamp,
                                payload: listed.dispatched ? nil : listed.event.payload, receivedAt: listed.receivedAt,
                                dispatched: listed.dispatched, deliverAt: delay?.deliverAt ?? listed.event.deliverAt,
                                delayedStatus: delay?.delayedStatus?.rawValue)
        }
        return try jsonResponse(EventListResponse(events: recent.map(summary), delayed: delayed.map(summary)))
    }
    router.get("/api/v1/events/:id") { request, context in
        let tenant = try keys.tenant(of: request)
        let raw = try context.parameters.require("id")
        let id = raw.removingPercentEncoding ?? raw
        let scoped = tenant.scoped(id)
        let seen = try await store.seenEvent(eventID: scoped)
        let delayed = try await store.delayedEventStatus(id: scoped)
        guard seen != nil || delayed != nil else {
            throw APIError(status: .notFound, code: "event_not_found", message: "the dispatcher has not received an event '\(id)'", path: "id")
        }
        return try jsonResponse(EventStatusResponse(id: id, event: seen?.event, dispatched: seen?.dispatched ?? false,
                                                    delayedStatus: delayed?.rawValue))
    }
    return serviceApplication(name: "baton-dispatcher", http: configuration.http, router: router,
                              services: (pool.map { [$0 as any Service] } ?? []) + [ProducerService(producer: producer), jobsService, consumerService,
                                         // A changed partition count would move schedule ownership: stop instead.
                                         BrokerWatchService(BrokerWatch(producer: producer, topics: watched, baseline: broker,
                                                                        interval: kafka.profile.brokerCheckInterval, logger: logger)),
                                         PeriodicService("delivering delayed events", every: .milliseconds(100), logger: logger) {
                                             try await DelayedDelivery(dispatcher: dispatcher, owner: configuration.instance, logger: logger).deliverDue()
                                         },
                                         PeriodicService("firing schedules", every: .milliseconds(100), logger: logger) {
                                             try await ScheduleService(dispatcher: dispatcher, owns: ownsSchedule, logger: logger).fireDue()
                                         },
                                         PeriodicService("delivering waited-for events", every: .seconds(1), logger: logger) {
                                             try await dispatcher.redeliverWaitMatches()
                                         },
                                         PeriodicService("forgetting old event-wait records", every: .seconds(60), logger: logger) {
                                             let now = Date()
                                             let removed = try await store.pruneEventWaits(
                                                 receivedBefore: now.addingTimeInterval(-((configuration.eventWaitLookback ?? .zero) / .seconds(1))),
                                                 endedBefore: now.addingTimeInterval(-3600))
                                             if removed > 0 { logger.debug("old event-wait records forgotten", metadata: ["rows": "\(removed)"]) }
                                         },
                                         PeriodicService("forgetting old event ids", every: .seconds(3600), logger: logger) {
                                             guard let retention = configuration.retention else { return }
                                             let removed = try await store.prune(before: Date().addingTimeInterval(-(retention / .seconds(1))))
                                             if removed > 0 { logger.info("old event ids forgotten", metadata: ["rows": "\(removed)"]) }
                                         }], keys: keys, logger: logger)
}

@main
struct DispatcherMain {
    static func main() async {
        await serviceMain("baton-dispatcher") {
        let configuration = try DispatcherConfiguration(config: .batonDefault())
        bootstrapLogging(level: configuration.service.logLevel)
        let logger = Logger(label: "baton-dispatcher")
        try await runUntilSignalled([try await buildDispatcher(configuration: configuration, logger: logger)],
                                    shutdownDeadline: configuration.service.shutdownDeadline, logger: logger)
        }
    }
}

/// A list's page size from query parameter `limit`: 1 to 100, 50 when absent.
/// - Throws: `APIError` 422 naming the parameter when it is not a whole number in range.
func pageLimit(_ text: String?) throws -> Int {
    guard let text else { return 50 }
    guard let limit = Int(text), (1...100).contains(limit) else {
        throw APIError(status: .unprocessableContent, code: "invalid_field", message: "the page size must be a whole number from 1 to 100, not '\(text)'", path: "limit")
    }
    return limit
}
