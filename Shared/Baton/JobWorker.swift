import BatonKafka
import AsyncHTTPClient
import BatonProtocol
import Foundation
import Synchronization
import Logging
import Metrics
import ServiceLifecycle
import Tracing

/// Runs jobs: registers them on the jobs topic and executes the slices that arrive on their
/// run topics. A ServiceLifecycle `Service`; run several instances to scale (each job is a
/// consumer group over its run topic's partitions).
///
/// On graceful shutdown the worker stops taking commands, finishes the slice in hand, commits
/// and leaves its groups.
public struct JobWorker: Service {
    /// Worker settings.
    public struct Configuration: Sendable {
        public var kafka: KafkaConfiguration
        public var topics: Topics
        /// Base URL of the task-result service (e.g. `http://127.0.0.1:8082`). Each slice starts
        /// by asking it which tasks of the run completed; `nil` trusts the run command alone,
        /// which can re-execute an acknowledged task after a crash: only for tests.
        public var taskResultsURL: String?
        /// How long a task checkpoint may wait for the broker's ack.
        public var deliveryTimeout: Duration
        /// How long a slice keeps asking for its checkpoint before the worker gives up (and
        /// fail-stops). Default 180 s: the answer waits for the task-result service's read
        /// barrier, which can sit out a consumer-group rebalance after an instance dies and a
        /// store restart (`STORE_OUTAGE_TOLERANCE_MS`) together; 60 s once stopped a healthy job
        /// service during a chaos run with both.
        public var checkpointPatience: Duration
        /// Organization and project of this job service; they scope deduplication keys and are
        /// in every run's context.
        public var organization: String
        public var project: String
        /// The environment of this job service (`dev`, `prod`, …): with `project`, the tenant its
        /// jobs belong to; only that tenant's events start them.
        public var environment: String
        /// The tenant's API key, for the task-result service when it requires keys.
        public var apiKey: String?
        /// Limits on task keys, outputs and log lines (see `Limits`).
        public var limits: Limits
        /// How long a slice may run before it yields (checked before each new task), so one long
        /// run cannot hold a partition; the run resumes at once in a new slice.
        public var sliceBudget: Duration
        /// How many slices of one job run at once in this process (slices of one run never run
        /// at once). At the bound the job's consumer pauses its partitions until a slice ends.
        public var maxConcurrentSlices: Int
        /// The keys that seal background-fetch requests (`FETCH_SECRETS_KEYS`); the task-result
        /// service needs the same keys to perform them. `nil`: requests travel in clear.
        public var fetchSecrets: FetchSecrets?
        /// `false` (the default): each run executes only on workers of the job version it was
        /// created with. The workers of one version form their own consumer group
        /// (`<prefix>.worker.<slug>@<version>`) and leave other versions' runs to theirs, so old
        /// runs drain on the old version while new runs start on the new one. `true`: one group
        /// per job (`<prefix>.worker.<slug>`), and a worker runs whatever version a run has
        /// (only for jobs whose task keys and outputs stay compatible across versions).
        public var runsOtherVersions: Bool
        /// The task-result service's address as callers of runs' callback URLs reach it
        /// (`io.waitForRequest`), e.g. `https://baton.example.com`; `nil`: ``taskResultsURL``.
        public var callbackBaseURL: String?

        public init(kafka: KafkaConfiguration, topics: Topics = Topics(), taskResultsURL: String?,
                    deliveryTimeout: Duration = .seconds(30), checkpointPatience: Duration = .seconds(180),
                    sliceBudget: Duration = .seconds(30), maxConcurrentSlices: Int = 100,
                    organization: String = "default", project: String = "default",
                    environment: String = "default", apiKey: String? = nil, limits: Limits = .default,
                    fetchSecrets: FetchSecrets? = nil, runsOtherVersions: Bool = false, callbackBaseURL: String? = nil) {
            self.fetchSecrets = fetchSecrets
            self.callbackBaseURL = callbackBaseURL
            self.runsOtherVersions = runsOtherVersions
            self.sliceBudget = sliceBudget
            self.maxConcurrentSlices = max(1, maxConcurrentSlices)
            self.limits = limits
            self.environment = environment
            self.apiKey = apiKey
            self.organization = organization
            self.project = project
            self.kafka = kafka
            self.topics = topics
            self.taskResultsURL = taskResultsURL
            self.deliveryTimeout = deliveryTimeout
            self.checkpointPatience = checkpointPatience
        }
    }

    let configuration: Configuration
    let jobs: [any AnyJob]
    let logger: Logger

    /// The consumer group of a job's workers: one per job version when runs are pinned to their
    /// version (``Configuration/runsOtherVersions`` `false`), one per job otherwise.
    public static func groupID(_ registration: JobRegistration, topics: Topics, runsOtherVersions: Bool) -> String {
        runsOtherVersions ? "\(topics.prefix).worker.\(registration.slug)" : "\(topics.prefix).worker.\(registration.slug)@\(registration.version)"
    }

    /// - Parameters:
    ///   - jobs: the jobs this worker runs; ids must be distinct after slugifying.
    public init(configuration: Configuration, jobs: [any AnyJob], logger: Logger) {
        self.configuration = configuration
        self.jobs = jobs
        self.logger = logger
    }

    public func run() async throws {
        var registrations: [(JobRegistration, any AnyJob)] = []
        let tenant = try Tenant(project: configuration.project, environment: configuration.environment)
        for job in jobs {
            var registration = try job.registration()
            registration.tenant = tenant
            guard !registrations.contains(where: { $0.0.slug == registration.slug }) else {
                throw JobDefinitionError(message: "two jobs have the slug '\(registration.slug)'; job ids must be distinct")
            }
            registrations.append((registration, job))
        }
        let topics = configuration.topics
        // Checkpoints are on the critical path of every task: no batching delay.
        let producer = try KafkaProducer(
            configuration: configuration.kafka,
            options: .init(deliveryTimeout: configuration.deliveryTimeout, lingerMilliseconds: 0),
            logger: logger)
        try await producer.createTopics(
            [TopicSpec(name: topics.taskResults), TopicSpec(name: topics.deadLetter), TopicSpec(name: topics.events),
             TopicSpec(name: topics.jobs, config: ["cleanup.policy": "compact"])]
                + registrations.map { TopicSpec(name: topics.runs(jobSlug: $0.0.slug)) })
        for (registration, _) in registrations {
            try await producer.send(topic: topics.jobs, key: registration.recordKey, value: Array(try BatonJSON.encoder.encode(registration)))
            logger.info("job registered", metadata: ["job.slug": "\(registration.slug)", "job.version": "\(registration.version)"])
        }
        let deadLetters = DeadLetterQueue(producer: producer, topic: topics.deadLetter, consumerName: "job-worker", logger: logger)
        // Slices run concurrently: let their checkpoint requests do too.
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, min(64, configuration.maxConcurrentSlices))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let checkpoints = configuration.taskResultsURL.map {
            CheckpointClient(http: http, baseURL: $0, patience: configuration.checkpointPatience,
                             apiKey: configuration.apiKey, logger: logger)
        }
        if checkpoints == nil {
            logger.warning("no task-results URL: slices trust their run command, so a crash can re-execute an acknowledged task")
        }
        let bound = configuration.maxConcurrentSlices
        // Back-pressure: librdkafka prefetches about as many commands as may run at once and
        // then stops fetching until the application takes them; it fetches again soon after
        // (its default back-off of 1 s would stall a busy job service each time).
        var consumerKafka = configuration.kafka
        consumerKafka.properties["queued.min.messages"] = consumerKafka.properties["queued.min.messages"] ?? String(max(10, bound))
        consumerKafka.properties["fetch.queue.backoff.ms"] = consumerKafka.properties["fetch.queue.backoff.ms"] ?? "20"
        let consumers = try registrations.map { registration, job in
            let slices = SliceTable(bound: bound)
            let logger = self.logger
            let consumer = try KafkaConsumer(
                configuration: consumerKafka, groupID: Self.groupID(registration, topics: topics, runsOtherVersions: configuration.runsOtherVersions),
                topics: [topics.runs(jobSlug: registration.slug)], logger: logger,
                onRebalance: { change in
                    switch change {
                    case .assigned(let partitions):
                        slices.assign(partitions)
                    case .revoked(let partitions):
                        // Fence: the slices of revoked partitions stop before the rebalance
                        // completes, so the partitions' next owner never runs a run at the same time.
                        slices.revokeAndFence(partitions, timeout: .seconds(60), logger: logger)
                    }
                })
            return JobConsumer(consumer: consumer, slices: slices,
                               executor: SliceExecutor(job: job, registration: registration, producer: producer, topics: topics,
                                                       deadLetters: deadLetters, checkpoints: checkpoints, sliceBudget: configuration.sliceBudget,
                                                       organization: configuration.organization, project: configuration.project,
                                                       tenant: tenant, limits: configuration.limits,
                                                       fetchSecrets: configuration.fetchSecrets,
                                                       runsOtherVersions: configuration.runsOtherVersions,
                                                       callbackBaseURL: configuration.callbackBaseURL ?? configuration.taskResultsURL, logger: logger),
                               logger: logger)
        }
        // A broker that lost the topics (a restarted memory broker), changed their partitions or
        // made the producer fail for good stops the worker: fail-stop, so it is restarted.
        let watch = BrokerWatch(producer: producer, topics: [topics.taskResults] + registrations.map { topics.runs(jobSlug: $0.0.slug) },
                                baseline: nil, interval: configuration.kafka.profile.brokerCheckInterval, logger: logger)
        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await withThrowingDiscardingTaskGroup { group in
                            for consumer in consumers {
                                group.addTask { try await consumer.run() }
                            }
                        }
                    }
                    group.addTask { try await watch.run() }
                    // The consumers end on stop; the watch only by throwing.
                    defer { group.cancelAll() }
                    do {
                        try await group.next()
                    } catch {
                        for consumer in consumers { consumer.stop() }
                        throw error
                    }
                }
            } onGracefulShutdown: {
                for consumer in consumers { consumer.stop() }
            }
        } catch {
            failure = error
        }
        // Together: each close may wait for a forming group (see `KafkaConsumer.close()`).
        await withDiscardingTaskGroup { group in
            for consumer in consumers { group.addTask { await consumer.consumer.close() } }
        }
        await producer.shutdown()
        try? await http.shutdown()
        // The caller reports the failure (once): a Baton process logs one critical line.
        if let failure { throw failure }
        logger.info("job worker stopped")
    }
}

/// One job's consumer: takes run commands from the job's run topic and runs their slices
/// concurrently, one at a time per run, up to the table's bound.
struct JobConsumer: Sendable {
    let consumer: KafkaConsumer
    let slices: SliceTable
    let executor: SliceExecutor
    let logger: Logger

    /// Stops taking records; slices running finish, records waiting behind them are left for
    /// redelivery.
    func stop() {
        slices.stop()
        consumer.stopDelivering()
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            // While paused (at the bound for 200 ms) nobody polls for records: serve rebalances,
            // so a revoke still fences promptly. (At the bound but not paused yet, a rebalance
            // waits at most those 200 ms: serving then would pull fetched records out of
            // librdkafka's bounded queue into an unbounded one.)
            group.addTask {
                while !slices.isStopped {
                    try await Task.sleep(for: .milliseconds(100))
                    slices.nudge()  // the loop below re-checks its pause deadline
                    if consumer.isPaused { await consumer.serveRebalances() }
                }
            }
            let freed = slices.freedSlots
            var iterator = freed.makeAsyncIterator()
            var records = consumer.makeAsyncIterator()
            while !slices.isStopped {
                if slices.isFull {
                    // At the bound: take no records until a slice ends. librdkafka stops
                    // fetching by itself once its local queue holds `queued.min.messages` (set
                    // to the bound). When no slot frees within 200 ms the partitions are paused
                    // outright (which drops the prefetched records; a resume costs about a
                    // second, so not for every slot), and rebalances are served while paused:
                    // a member that does not answer a rebalance in time loses its partitions
                    // while its slices still run.
                    let pauseAfter = ContinuousClock.now + .milliseconds(200)
                    var paused = false
                    while slices.isFull, !slices.isStopped {
                        if !paused, ContinuousClock.now >= pauseAfter {
                            consumer.pause()
                            paused = true
                        }
                        // `nil` only when this task is cancelled: stop rather than spin.
                        guard await iterator.next() != nil else { break }
                    }
                    if paused { consumer.resume() }
                    continue
                }
                guard let record = try await records.next() else { break }
                guard let ticket = slices.accept(record) else { continue }
                group.addTask { try await runSlices(from: record, ticket: ticket) }
            }
            slices.stop()
        }
    }

    /// Runs the slice of `record`, then those of the records of the same run that queued behind
    /// it, one after another.
    private func runSlices(from record: KafkaRecord, ticket: KeyOrderedQueue<KafkaRecord>.Ticket) async throws {
        var current: (ticket: KeyOrderedQueue<KafkaRecord>.Ticket, record: KafkaRecord)? = (ticket, record)
        while let (ticket, record) = current {
            let slice = slices.started(ticket)
            do {
                // In a task of its own, so a revoke can cancel it (see `revokeAndFence`).
                let work = Task { try await executor.handle(record, inFlight: slice) }
                slice.onCancel { work.cancel() }
                try await withTaskCancellationHandler {
                    try await work.value
                } onCancel: {
                    work.cancel()
                }
            } catch where slice.wasCancelled {
                // Cancelled after its fence: nothing unfinished was recorded; the partition's
                // next owner runs the command again.
                slice.finish()
                logger.info("fenced slice cancelled; its command goes to the partition's new owner")
                current = slices.finished(ticket, slice: slice, consumer: consumer, logger: logger)
                continue
            } catch {
                // Not ended: its offset must not be committed (the worker stops, and the
                // command is delivered again after the restart).
                slice.finish()
                slices.abandoned(ticket)
                throw error
            }
            slice.finish()
            if slice.isFenced {
                logger.info("fenced slice stopped; its command goes to the partition's new owner")
            }
            current = slices.finished(ticket, slice: slice, consumer: consumer, logger: logger)
        }
    }
}

/// The slices of one job's consumer: the key-ordered queue (which record may run, which offset
/// may be committed) and the slices running, so a revoke can fence them.
final class SliceTable: Sendable {
    private struct State {
        var queue = KeyOrderedQueue<KafkaRecord>()
        var running: [KeyOrderedQueue<KafkaRecord>.Ticket: InFlightSlice] = [:]
        var stopped = false
    }

    let bound: Int
    /// How long a fenced slice may take to reach its next task before it is cancelled.
    let fenceGrace: Duration
    private let state = Mutex(State())
    /// Yields when a slice ends, so a consumer paused at the bound can take records again.
    let freedSlots: AsyncStream<Void>
    private let freed: AsyncStream<Void>.Continuation

    init(bound: Int, fenceGrace: Duration = .milliseconds(500)) {
        self.bound = bound
        self.fenceGrace = fenceGrace
        (freedSlots, freed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    var isFull: Bool { state.withLock { $0.queue.pending >= bound } }
    var isStopped: Bool { state.withLock { $0.stopped } }
    /// Records accepted and not finished (running or queued behind their run's running slice).
    var pending: Int { state.withLock { $0.queue.pending } }

    func stop() {
        state.withLock { $0.stopped = true }
        freed.yield()
    }

    /// Wakes the consumer loop waiting for a slot, so it re-checks its deadlines.
    func nudge() {
        freed.yield()
    }

    func assign(_ partitions: [TopicPartition]) {
        state.withLock { $0.queue.assign(partitions) }
    }

    /// Takes a fetched record: its ticket when it may run now; `nil` when it queued behind a
    /// slice of the same run (it is handed out when that slice ends) or its partition is gone.
    func accept(_ record: KafkaRecord) -> KeyOrderedQueue<KafkaRecord>.Ticket? {
        let acceptance = state.withLock {
            $0.queue.accept(record, partition: TopicPartition(topic: record.topic, partition: record.partition),
                            offset: record.offset, key: record.key)
        }
        if case .run(let ticket) = acceptance { return ticket }
        return nil
    }

    /// Registers the slice of `ticket` as running (fenced at once if its partition went meanwhile).
    func started(_ ticket: KeyOrderedQueue<KafkaRecord>.Ticket) -> InFlightSlice {
        let slice = InFlightSlice(partition: ticket.partition)
        let current = state.withLock { state in
            state.running[ticket] = slice
            return state.queue.isCurrent(ticket)
        }
        // Its partition was revoked (perhaps assigned again) since the record was taken.
        if !current { slice.fence() }
        return slice
    }

    /// Records that the slice of `ticket` ended; stores the partition's committable offset when
    /// it moved (a fenced slice's partition is gone, so it stores nothing). Returns the next
    /// record of the same run, unless the consumer is stopping (it is then redelivered).
    func finished(_ ticket: KeyOrderedQueue<KafkaRecord>.Ticket, slice: InFlightSlice, consumer: KafkaConsumer,
                  logger: Logger) -> (ticket: KeyOrderedQueue<KafkaRecord>.Ticket, record: KafkaRecord)? {
        let (completion, stopped) = state.withLock { state in
            state.running[ticket] = nil
            return (state.queue.finish(ticket), state.stopped)
        }
        freed.yield()
        if let commit = completion.commit {
            do {
                try consumer.storeOffset(commit.partition, next: commit.offset)
            } catch {
                // The partition moved on: its next owner gets the command again, and the
                // checkpoint replays what this slice recorded.
                logger.warning("offset not stored", metadata: ["error": "\(error)"])
            }
        }
        guard let next = completion.next else { return nil }
        // Stopping: the records queued behind this one never ran. They are left as they are,
        // unfinished, so no offset at or past them is ever stored (they are redelivered).
        if stopped { return nil }
        return (next.ticket, next.item)
    }

    /// Records that the slice of `ticket` stopped without ending (its effects may not be
    /// durable): it no longer counts as running, but its record stays uncommitted and its run's
    /// later records are not started here (the worker is stopping).
    func abandoned(_ ticket: KeyOrderedQueue<KafkaRecord>.Ticket) {
        state.withLock { state in
            state.running[ticket] = nil
            state.stopped = true
        }
        freed.yield()
    }

    /// Forgets `partitions` (records queued for them are dropped: their next owner gets them),
    /// fences their running slices and waits until those stopped, up to `timeout`. Called on the
    /// consumer's poll thread before the rebalance completes.
    func revokeAndFence(_ partitions: [TopicPartition], timeout: Duration, logger: Logger) {
        let revoked = Set(partitions)
        let fencing = state.withLock { state -> [InFlightSlice] in
            state.queue.revoke(partitions)
            return state.running.filter { revoked.contains($0.key.partition) }.map(\.value)
        }
        guard !fencing.isEmpty else { return }
        logger.info("partitions revoked during slices: fencing them", metadata: [
            "kafka.partitions": "\(partitions.map(\.description))", "slices": "\(fencing.count)"])
        // Fenced slices stop before their next task. Those that do not within the grace (a long
        // task, a checkpoint the task-result service is slow to answer) are cancelled: the group
        // must not wait on them, or it may hand the partition on before this member has let go.
        let deadline = ContinuousClock.now + timeout
        let grace = ContinuousClock.now + fenceGrace
        for slice in fencing { slice.fence() }
        for slice in fencing { slice.fenceAndWait(timeout: max(.zero, grace - ContinuousClock.now)) }
        let lingering = fencing.filter { !$0.hasFinished }
        if !lingering.isEmpty {
            logger.warning("fenced slices still running after the grace: cancelling them", metadata: ["slices": "\(lingering.count)"])
            for slice in lingering { slice.cancelIfRunning() }
            for slice in lingering { slice.fenceAndWait(timeout: max(.zero, deadline - ContinuousClock.now)) }
        }
        freed.yield()
    }
}

/// Executes the slices of one job.
struct SliceExecutor: Sendable {
    let job: any AnyJob
    let registration: JobRegistration
    let producer: KafkaProducer
    let topics: Topics
    let deadLetters: DeadLetterQueue
    let checkpoints: CheckpointClient?
    let sliceBudget: Duration
    let organization: String
    let project: String
    let tenant: Tenant
    let limits: Limits
    /// Seals background-fetch requests (`nil`: they travel in clear; see ``sealingFetchSecrets``).
    let fetchSecrets: FetchSecrets?
    /// Whether it runs runs created with other versions of the job (see `JobWorker.Configuration`).
    let runsOtherVersions: Bool
    /// The base of callback URLs (see `JobWorker.Configuration.callbackBaseURL`).
    let callbackBaseURL: String?
    let logger: Logger

    /// Whether the warning about fetch credentials in clear was logged (once per process).
    private static let warnedClearCredentials = Mutex(false)

    /// A function sealing the request of a `fetchRequested` event with ``fetchSecrets``, so its
    /// URL, headers and body are encrypted on the topic and in the store; other events pass.
    func sealingFetchSecrets(runId: String) -> @Sendable (RunEvent.Body) throws -> RunEvent.Body {
        let secrets = fetchSecrets
        let logger = logger
        return { body in
            guard case .fetchRequested(var fetch) = body else { return body }
            guard let secrets else {
                if fetch.request.carriesCredentials, Self.warnedClearCredentials.withLock({ warned in defer { warned = true }; return !warned }) {
                    logger.warning("a background fetch carries credentials in clear on the task-results topic and in the store: set FETCH_SECRETS_KEYS on job services and the task-result service")
                }
                return body
            }
            fetch.request = try secrets.seal(fetch.request, context: "\(runId)/\(fetch.taskId)")
            return .fetchRequested(fetch)
        }
    }

    /// Handles one run-topic record. Returns when its effects are durable; throws only when
    /// the broker cannot take them (the record is then not committed and comes back).
    func handle(_ record: KafkaRecord, inFlight: InFlightSlice) async throws {
        guard let command = try await deadLetters.decode(record, as: "RunCommand", { try RunCommand.decode(from: $0.value, maxDepth: limits.nestingDepth + Limits.envelopeDepth) })
        else { return }
        guard command.jobSlug == registration.slug else {
            try await deadLetters.send(record, reason: "command for job '\(command.jobSlug)' on the topic of job '\(registration.slug)'")
            return
        }
        // One span per slice, continuing the trace of whoever sent the command (the dispatcher
        // for the first slice, the task-result service's resume in the run's trace after).
        try await withSpan("slice \(registration.slug)", context: record.traceContext, ofKind: .consumer) { span in
            span.attributes["baton.run.id"] = command.runId
            span.attributes["baton.job.slug"] = command.jobSlug
            span.attributes["baton.job.version"] = command.jobVersion
            span.attributes["baton.command"] = command.kind.rawValue
            try await execute(command, inFlight: inFlight)
        }
    }

    func execute(_ command: RunCommand, inFlight: InFlightSlice) async throws {
        var logger = self.logger
        logger[metadataKey: "run.id"] = "\(command.runId)"
        if command.jobVersion != registration.version {
            guard runsOtherVersions else {
                // Version pinning: this version's group reads every command of the job; a run of
                // another version is its own version's workers' (their group reads it too).
                Counter(label: "baton_commands_of_other_versions_total", dimensions: [("job", registration.slug)]).increment()
                logger.debug("run of another job version: left to that version's workers", metadata: [
                    "run.job.version": "\(command.jobVersion)", "worker.job.version": "\(registration.version)"])
                return
            }
            logger.warning("run was created with another job version; running it (runsOtherVersions)", metadata: [
                "run.job.version": "\(command.jobVersion)", "worker.job.version": "\(registration.version)"])
        }
        let producer = self.producer
        let topic = topics.taskResults
        let runId = command.runId
        let seal = sealingFetchSecrets(runId: command.runId)
        let publish: @Sendable (RunEvent.Body) async throws -> Void = { body in
            let event = RunEvent(runId: runId, body: try seal(body))
            try await producer.send(topic: topic, key: runId, value: Array(try BatonJSON.encoder.encode(event)))
        }
        var completed = command.completedTasks
        var failedAttempts: [String: Int] = [:]
        var attempt = 1
        if let checkpoints {
            let checkpoint = try await checkpoints.fetch(runId: runId)
            if let status = checkpoint.status, status.isTerminal {
                logger.info("command for a finished run ignored", metadata: ["run.status": "\(status)", "command": "\(command.kind.rawValue)"])
                return
            }
            completed += checkpoint.completedTasks
            failedAttempts = checkpoint.failedAttempts
            attempt = checkpoint.slice
        }
        // A disabled job takes no runs: the first slice of one (a replay asked through the runs
        // API, or a command sent just before the job was disabled) ends the run CANCELED without
        // running its code. Runs that already started go on.
        if !registration.isEnabled, attempt <= 1, completed.isEmpty {
            try await publish(.runFailed(.init(status: .canceled, error: "job '\(registration.slug)' is disabled (JobOptions(enabled: false)): it takes no new runs; enable it, then replay the run")))
            Self.countSlice(job: registration.slug, ending: "disabled")
            logger.warning("run of a disabled job canceled before it started")
            return
        }
        let eventsTopic = topics.events
        let emit: @Sendable (EventEnvelope) async throws -> Void = { envelope in
            try await producer.send(topic: eventsTopic, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
        }
        var claim: (@Sendable (DeduplicationClaimRequest) async throws -> DeduplicationClaim)?
        if let client = checkpoints {
            claim = { request in try await client.claim(request) }
        }
        let enqueue: @Sendable (RunEvent.Body) throws -> @Sendable () async throws -> Void = { body in
            let delivery = try producer.enqueue(topic: topic, key: Array(runId.utf8), value: Array(try BatonJSON.encoder.encode(RunEvent(runId: runId, body: try seal(body)))))
            return { try await delivery.acknowledged() }
        }
        let slice = SliceState(runId: runId, completed: completed, failedAttempts: failedAttempts, budget: sliceBudget,
                               publish: publish, enqueue: enqueue, emit: emit, claim: claim,
                               scope: (organization: tenant.deduplicationOrganization(organization), project: project, jobSlug: registration.slug),
                               tenant: tenant, limits: limits, logLevel: registration.logLevel ?? .debug, callbackBaseURL: callbackBaseURL)
        inFlight.attach(slice)
        let context = JobContext(
            runId: runId, jobId: registration.id, jobSlug: registration.slug, jobVersion: command.jobVersion,
            event: .init(id: command.event.id, name: command.event.name, timestamp: command.event.timestamp, context: command.event.context),
            attempt: attempt, organization: organization, project: project)
        logger.debug("slice started", metadata: ["command": "\(command.kind.rawValue)", "completed.tasks": "\(command.completedTasks.count)"])
        let started = ContinuousClock.now
        let outcome = try await SliceRunner.run(job, payload: command.event.payload, slice: slice, context: context)
        Metrics.Timer(label: "baton_slice_duration_seconds", dimensions: [("job", registration.slug)]).record(duration: ContinuousClock.now - started)
        if slice.isFenced {
            Self.countSlice(job: registration.slug, ending: "fenced")
            logger.info("slice fenced", metadata: ["reason": "\(slice.raisedInterrupt?.reason ?? "partition revoked")"])
            return
        }
        if let outcome {
            try await publish(outcome)
            Self.countSlice(job: registration.slug, ending: outcome.type)
            logger.info("run finished", metadata: ["outcome": "\(outcome)"])
        } else {
            Self.countSlice(job: registration.slug, ending: "yielded")
            logger.debug("slice yielded", metadata: ["reason": "\(slice.raisedInterrupt?.reason ?? "")"])
        }
    }

    /// `baton_slices_total{job, ending}`: slices run, by how they ended (`runCompleted`,
    /// `runFailed`, `yielded` for a wait, retry, fetch or the time budget, `fenced`).
    static func countSlice(job: String, ending: String) {
        Counter(label: "baton_slices_total", dimensions: [("job", job), ("ending", ending)]).increment()
    }
}

/// The slice a consumer is running, so a partition revoke can fence it and wait for it to stop.
final class InFlightSlice: Sendable {
    private struct State {
        var slice: SliceState?
        var fenced = false
        var finished = false
        var cancel: (@Sendable () -> Void)?
        var cancelled = false
    }

    let partition: TopicPartition
    private let state = Mutex(State())
    private let stopped = DispatchSemaphore(value: 0)

    init(partition: TopicPartition) {
        self.partition = partition
    }

    /// Links the slice once it exists; fences it at once if the revoke came first.
    func attach(_ slice: SliceState) {
        let fenced = state.withLock { state in
            state.slice = slice
            return state.fenced
        }
        if fenced { slice.fence() }
    }

    var isFenced: Bool { state.withLock { $0.fenced } }

    /// Whether the slice was cancelled because it did not stop in time after its fence.
    var wasCancelled: Bool { state.withLock { $0.cancelled } }

    /// How to cancel the slice's task (set once it runs).
    func onCancel(_ cancel: @escaping @Sendable () -> Void) {
        state.withLock { $0.cancel = cancel }
    }

    /// Cancels a fenced slice that has not stopped: nothing of its unfinished work is recorded
    /// (`SliceCancelled`), so the partition's next owner can start the run at once.
    func cancelIfRunning() {
        let cancel = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.fenced, !state.finished else { return nil }
            state.cancelled = true
            return state.cancel
        }
        cancel?()
    }

    /// Fences the slice without waiting for it to stop.
    func fence() {
        let slice = state.withLock { state -> SliceState? in
            state.fenced = true
            return state.finished ? nil : state.slice
        }
        slice?.fence()
    }

    /// Fences the slice and blocks (the consumer's poll thread) until it stopped or `timeout`.
    func fenceAndWait(timeout: Duration) {
        let slice = state.withLock { state -> SliceState? in
            state.fenced = true
            return state.finished ? nil : state.slice
        }
        slice?.fence()
        if state.withLock({ $0.finished }) { return }
        _ = stopped.wait(timeout: .now() + .milliseconds(Int(timeout / .milliseconds(1))))
    }

    /// Whether the slice stopped.
    var hasFinished: Bool { state.withLock { $0.finished } }

    /// Records that the slice stopped (once).
    func finish() {
        let first = state.withLock { state -> Bool in
            defer { state.finished = true }
            return !state.finished
        }
        if first { stopped.signal() }
    }
}

extension JobWorker: CustomStringConvertible {
    /// The jobs it runs; never the configuration, which holds the API key and Kafka secrets
    /// (ServiceLifecycle logs every service's description).
    public var description: String {
        "JobWorker(jobs: \(jobs.map { (try? $0.registration().slug) ?? "?" }.joined(separator: ", ")))"
    }
}

extension JobWorker.Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Everything but the API key (shown as `<redacted>` when set); Kafka secrets are redacted
    /// by `KafkaConfiguration`.
    public var description: String {
        "JobWorker.Configuration(kafka: \(kafka), topics: \(topics.prefix), taskResultsURL: \(taskResultsURL ?? "none"), "
            + "organization: \(organization), project: \(project), environment: \(environment), apiKey: \(apiKey == nil ? "none" : "<redacted>"))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["kafka": kafka, "project": project, "environment": environment,
                                "apiKey": apiKey == nil ? "none" : "<redacted>"], displayStyle: .struct)
    }
}
