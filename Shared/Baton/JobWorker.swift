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
        /// How long a slice keeps asking for its checkpoint before the worker gives up.
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

        public init(kafka: KafkaConfiguration, topics: Topics = Topics(), taskResultsURL: String?,
                    deliveryTimeout: Duration = .seconds(30), checkpointPatience: Duration = .seconds(60),
                    sliceBudget: Duration = .seconds(30), organization: String = "default", project: String = "default",
                    environment: String = "default", apiKey: String? = nil, limits: Limits = .default) {
            self.sliceBudget = sliceBudget
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
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let checkpoints = configuration.taskResultsURL.map {
            CheckpointClient(http: http, baseURL: $0, patience: configuration.checkpointPatience,
                             apiKey: configuration.apiKey, logger: logger)
        }
        if checkpoints == nil {
            logger.warning("no task-results URL: slices trust their run command, so a crash can re-execute an acknowledged task")
        }
        let consumers = try registrations.map { registration, job in
            let inFlight = InFlightSlice.Holder()
            let logger = self.logger
            let consumer = try KafkaConsumer(
                configuration: configuration.kafka, groupID: "\(topics.prefix).worker.\(registration.slug)",
                topics: [topics.runs(jobSlug: registration.slug)], logger: logger,
                onRebalance: { change in
                    // Fence: a slice of a revoked partition stops before the rebalance completes,
                    // so the partition's next owner never runs the same run at the same time.
                    guard case .revoked(let partitions) = change, let slice = inFlight.current,
                          partitions.contains(slice.partition) else { return }
                    logger.info("partition revoked during a slice: fencing it", metadata: ["kafka.partition": "\(slice.partition)"])
                    slice.fenceAndWait(timeout: .seconds(60))
                })
            return (consumer, inFlight,
             SliceExecutor(job: job, registration: registration, producer: producer, topics: topics,
                           deadLetters: deadLetters, checkpoints: checkpoints, sliceBudget: configuration.sliceBudget,
                           organization: configuration.organization, project: configuration.project,
                           tenant: tenant, limits: configuration.limits, logger: logger))
        }
        var failure: (any Error)?
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    for (consumer, inFlight, executor) in consumers {
                        group.addTask {
                            for try await record in consumer {
                                let slice = InFlightSlice(partition: TopicPartition(topic: record.topic, partition: record.partition))
                                inFlight.current = slice
                                try await withThrowingTaskGroup(of: Void.self) { serving in
                                    // Serve rebalances while the slice runs, so a revoke fences it promptly.
                                    serving.addTask {
                                        while !Task.isCancelled {
                                            try await Task.sleep(for: .milliseconds(100))
                                            await consumer.serveRebalances()
                                        }
                                    }
                                    defer { serving.cancelAll() }
                                    do {
                                        try await executor.handle(record, inFlight: slice)
                                    } catch {
                                        slice.finish()
                                        throw error
                                    }
                                    slice.finish()
                                }
                                inFlight.current = nil
                                if slice.isFenced {
                                    logger.info("fenced slice stopped; its command goes to the partition's new owner")
                                    continue
                                }
                                do {
                                    try await consumer.commit(record)
                                } catch {
                                    // The partition moved on: the new owner gets the command again,
                                    // and its checkpoint replays what this slice recorded.
                                    logger.warning("offset commit failed", metadata: ["error": "\(error)"])
                                }
                            }
                        }
                    }
                }
            } onGracefulShutdown: {
                for (consumer, _, _) in consumers { consumer.stopDelivering() }
            }
        } catch {
            failure = error
        }
        for (consumer, _, _) in consumers { await consumer.close() }
        await producer.shutdown()
        try? await http.shutdown()
        if let failure {
            logger.error("job worker stopped", metadata: ["error": "\(failure)"])
            throw failure
        }
        logger.info("job worker stopped")
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
    let logger: Logger

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
            logger.warning("run was created with another job version", metadata: [
                "run.job.version": "\(command.jobVersion)", "worker.job.version": "\(registration.version)"])
        }
        let producer = self.producer
        let topic = topics.taskResults
        let runId = command.runId
        let publish: @Sendable (RunEvent.Body) async throws -> Void = { body in
            let event = RunEvent(runId: runId, body: body)
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
        let eventsTopic = topics.events
        let emit: @Sendable (EventEnvelope) async throws -> Void = { envelope in
            try await producer.send(topic: eventsTopic, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
        }
        var claim: (@Sendable (DeduplicationClaimRequest) async throws -> DeduplicationClaim)?
        if let client = checkpoints {
            claim = { request in try await client.claim(request) }
        }
        let enqueue: @Sendable (RunEvent.Body) throws -> @Sendable () async throws -> Void = { body in
            let delivery = try producer.enqueue(topic: topic, key: Array(runId.utf8), value: Array(try BatonJSON.encoder.encode(RunEvent(runId: runId, body: body))))
            return { try await delivery.acknowledged() }
        }
        let slice = SliceState(runId: runId, completed: completed, failedAttempts: failedAttempts, budget: sliceBudget,
                               publish: publish, enqueue: enqueue, emit: emit, claim: claim,
                               scope: (organization: tenant.deduplicationOrganization(organization), project: project, jobSlug: registration.slug),
                               tenant: tenant, limits: limits)
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
    /// Holds the consumer's current slice (set by the consuming task, read by `onRebalance`).
    final class Holder: Sendable {
        private let slice = Mutex<InFlightSlice?>(nil)
        var current: InFlightSlice? {
            get { slice.withLock { $0 } }
            set { slice.withLock { $0 = newValue } }
        }
    }

    private struct State {
        var slice: SliceState?
        var fenced = false
        var finished = false
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
