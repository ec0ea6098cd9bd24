import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Histogram
import Logging

/// Checks what a load run needs before anything starts.
enum Preflight {
    /// The executables the stack starts from `BATON_BIN_DIR`.
    static let executables = ["baton-ingester", "baton-dispatcher", "baton-task-results", "baton-example-jobs"]

    /// - Throws: ``LoadError/setup(_:)`` saying what is missing and how to provide it.
    static func check() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["BATON_BIN_DIR"], !directory.isEmpty else {
            throw LoadError.setup("BATON_BIN_DIR is not set; build the main package with `swift build -c release` in the repository root "
                                  + "and set BATON_BIN_DIR=$(swift build -c release --show-bin-path)")
        }
        for name in executables {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LoadError.setup("\(path) does not exist; run `swift build -c release` in the repository root, "
                                      + "and point BATON_BIN_DIR at `swift build -c release --show-bin-path`")
            }
        }
        if !directory.contains("release") {
            progress("warning: BATON_BIN_DIR=\(directory) does not look like a release build; numbers of a debug build mean little")
        }
        let tansu = TestEnvironment.tansu
        guard FileManager.default.isExecutableFile(atPath: tansu.path) else {
            throw LoadError.setup("no Tansu broker at \(tansu.path); run deploy/local/setup and eval \"$(deploy/local/setup --print-env)\"")
        }
        if (environment["LD_LIBRARY_PATH"] ?? "").isEmpty {
            progress("warning: LD_LIBRARY_PATH is empty; the Kafka clients need librdkafka 2.16: eval \"$(deploy/local/setup --print-env)\"")
        }
    }
}

/// Runs the chosen phases against one embedded stack with one `baton-example-jobs` service.
struct LoadRunner: Sendable {
    /// The job every phase runs, and the event that starts it.
    static let jobSlug = "many-steps"
    static let eventName = "steps.start"
    /// Events per `POST /api/v1/events/batch` (the ingester's limit).
    static let batchSize = 100
    /// Runs fetched at once while waiting for a set of runs.
    static let parallelProbes = 8

    let stack: BatonStack
    let settings: LoadSettings
    let logger: Logger
    /// Every ingester's port: batches go to them in turn.
    var ingesterPorts: [Int]

    /// Starts the stack, runs the phases, reads the peak RSS of every process and stops the
    /// stack, also when a phase fails (then the end of each process's log goes to stderr).
    static func run(settings: LoadSettings) async throws -> LoadReport {
        var logger = Logger(label: "baton-load")
        logger.logLevel = .warning
        let slices = "\(settings.concurrency)"
        progress("starting the embedded stack: \(settings.partitions) partitions, \(slices) concurrent slices, "
                 + "\(settings.instances) instance(s) of each service, \(settings.store) store")
        var roleEnvironment: [BatonStack.Role: [String: String]] = [:]
        var server: PostgresServer?
        if settings.store == "postgres" {
            let stores = try await BatonStack.postgresStores(label: "load")
            roleEnvironment = stores.roleEnvironment
            server = stores.server
        }
        let stack = try await BatonStack.start(label: "load", environment: [
            "LOG_LEVEL": settings.logLevel, "KAFKA_TOPIC_PARTITIONS": "\(settings.partitions)", "WORKER_MAX_CONCURRENT_SLICES": slices,
        ], roleEnvironment: roleEnvironment)
        var runner = LoadRunner(stack: stack, settings: settings, logger: logger, ingesterPorts: [stack.ingesterPort])
        do {
            var taskResultPorts = [stack.taskResultsPort]
            for index in 1..<settings.instances {
                runner.ingesterPorts.append(try await stack.startExtra(.ingester, name: "ingester-\(index)").port)
                try await stack.startExtra(.dispatcher, name: "dispatcher-\(index)", extra: ["DISPATCHER_INSTANCE": "dispatcher-\(index)"])
                taskResultPorts.append(try await stack.startExtra(.taskResults, name: "task-results-\(index)",
                                                                  extra: ["TASK_RESULTS_INSTANCE": "task-results-\(index)"]).port)
            }
            // At least info: startExampleJobs waits for the service's "job registered" log lines.
            let jobLogLevel = ["trace", "debug", "info"].contains(settings.logLevel) ? settings.logLevel : "info"
            // Only the job it drives: each job is a consumer group polling the broker. One job
            // service per instance, each asking its own task-result instance for checkpoints.
            for port in taskResultPorts {
                try await stack.startExampleJobs(environment: ["WORKER_MAX_CONCURRENT_SLICES": slices, "LOG_LEVEL": jobLogLevel,
                                                               "TASK_RESULTS_URL": "http://127.0.0.1:\(port)"], jobs: ["many-steps"])
            }
            var report = LoadReport(date: Date(), settings: settings)
            for phase in settings.phases {
                progress("phase \(phase.rawValue)")
                switch phase {
                case .sequential: report.sequential = try await runner.sequential()
                case .floor:
                    report.floor = try await KafkaFloor.measure(bootstrapServers: stack.broker.bootstrapServers,
                                                                produces: settings.floorProduces, hops: settings.floorHops, logger: logger)
                case .io: report.io = try await runner.ioBound()
                case .burst: report.burst = try await runner.burst()
                }
            }
            report.computeRatios()
            report.peakMemory = runner.peakMemory()
            try await stack.stop()
            try await server?.stop()
            return report
        } catch {
            progress("baton-load failed: \(error)\nthe end of each process's log:\n\(stack.allOutput())")
            try? await stack.stop()
            try? await server?.stop()
            throw error
        }
    }

    // MARK: - Phases

    /// Runs one at a time: send, wait until completed, next; the warm-up runs are not recorded.
    func sequential() async throws -> PhaseResult {
        let event = Self.eventJSON(steps: settings.tasks, stepMilliseconds: settings.taskMilliseconds)
        let clock = ContinuousClock()
        var observed = Stats.histogram()
        var runs: [RunDetails] = []
        var recordedSince = clock.now
        var lastProgress = clock.now
        for index in 0..<(settings.warmupRuns + settings.sequentialRuns) {
            if index == settings.warmupRuns { recordedSince = clock.now }
            let start = clock.now
            let eventID = try await sendEvent(event)
            let run = try await awaitRun(Identifiers.runID(eventID: eventID, jobSlug: Self.jobSlug), deadline: .seconds(60))
            guard index >= settings.warmupRuns else { continue }
            observed.record(Stats.microseconds(clock.now - start))
            runs.append(run)
            if clock.now - lastProgress >= .seconds(3) {
                progress("sequential: \(runs.count)/\(settings.sequentialRuns) runs completed")
                lastProgress = clock.now
            }
        }
        return try PhaseResult(runs: runs, clientSeconds: (clock.now - recordedSince) / .seconds(1), clientObserved: Percentiles(observed))
    }

    /// Runs of one task of `--io-task-ms` ms, all sent at once through concurrent batch requests.
    func ioBound() async throws -> PhaseResult {
        let event = Self.eventJSON(steps: 1, stepMilliseconds: settings.ioTaskMilliseconds)
        let clock = ContinuousClock()
        let start = clock.now
        let batches = (settings.ioRuns + Self.batchSize - 1) / Self.batchSize
        let eventIDs = try await sendBatches(event, total: settings.ioRuns, senders: batches, label: "io")
        // Long enough for a worker that runs one slice at a time, so a slow stack reports numbers.
        let deadline = Duration.seconds(max(120, 2 * settings.ioRuns * settings.ioTaskMilliseconds / 1000))
        let runs = try await awaitRuns(eventIDs.map(Self.runID), label: "io", deadline: deadline - (clock.now - start))
        return try PhaseResult(runs: runs, clientSeconds: (clock.now - start) / .seconds(1))
    }

    /// `--runs` runs sent as fast as possible, through the ingester or straight to Kafka.
    func burst() async throws -> PhaseResult {
        let clock = ContinuousClock()
        let start = clock.now
        let eventIDs: [String]
        switch settings.sendVia {
        case .http:
            let event = Self.eventJSON(steps: settings.tasks, stepMilliseconds: settings.taskMilliseconds)
            eventIDs = try await sendBatches(event, total: settings.runs, senders: settings.senders, label: "burst")
        case .kafka:
            eventIDs = try await produceEvents(total: settings.runs)
        }
        let sendSeconds: Double = (clock.now - start) / .seconds(1)
        progress("burst: \(eventIDs.count) events accepted in " + String(format: "%.2f s", sendSeconds))
        let runs = try await awaitRuns(eventIDs.map(Self.runID), label: "burst",
                                       deadline: Duration.seconds(settings.burstDeadlineSeconds) - (clock.now - start))
        return try PhaseResult(runs: runs, clientSeconds: (clock.now - start) / .seconds(1))
    }

    /// Peak RSS of the services, the job service and (for information) the broker.
    func peakMemory() -> [PeakMemory] {
        var processes: [(name: String, process: ChildProcess, isBaton: Bool)] = [
            ("baton-ingester", stack.ingester, true), ("baton-dispatcher", stack.dispatcher, true), ("baton-task-results", stack.taskResults, true),
        ]
        for process in stack.extraInstances {
            processes.append(("baton-\(process.name)", process, true))
        }
        let jobServices = stack.jobServices
        for (index, service) in jobServices.enumerated() {
            processes.append((jobServices.count == 1 ? "baton-example-jobs" : "baton-example-jobs #\(index + 1)", service, true))
        }
        processes.append(("tansu (broker)", stack.broker.process, false))
        return processes.map { PeakMemory(process: $0.name, megabytes: PeakMemory.read(pid: $0.process.pid), isBaton: $0.isBaton) }
    }

    // MARK: - Sending

    /// A `steps.start` event without id or timestamp: the ingester generates the id and stamps
    /// the time it accepted the event, which is the run's `event.timestamp`.
    static func eventJSON(steps: Int, stepMilliseconds: Int) -> String {
        "{\"name\":\"\(eventName)\",\"payload\":{\"steps\":\(steps),\"stepMilliseconds\":\(stepMilliseconds)}}"
    }

    /// The run the `many-steps` job gets for event `eventID`.
    static func runID(_ eventID: String) -> String {
        Identifiers.runID(eventID: eventID, jobSlug: jobSlug)
    }

    /// `POST /api/v1/events`; returns the id the ingester gave the event.
    func sendEvent(_ json: String) async throws -> String {
        struct Accepted: Decodable { var id: String }
        let (status, body) = try await stack.sendEvent(json)
        guard status == 202 else { throw LoadError.rejected("POST /api/v1/events answered \(status): \(body.prefix(500))") }
        return try BatonJSON.decoder.decode(Accepted.self, from: Data(body.utf8)).id
    }

    /// Sends `total` copies of `eventJSON` in batches of up to 100, `senders` requests at a time;
    /// returns the event ids, in the order their batches were answered.
    func sendBatches(_ eventJSON: String, total: Int, senders: Int, label: String) async throws -> [String] {
        let sizes = stride(from: 0, to: total, by: Self.batchSize).map { min(Self.batchSize, total - $0) }
        let clock = ContinuousClock()
        return try await withThrowingTaskGroup(of: [String].self, returning: [String].self) { group in
            var next = 0
            while next < sizes.count && next < senders {
                let size = sizes[next]
                group.addTask { try await sendBatch(eventJSON, count: size) }
                next += 1
            }
            var ids: [String] = []
            ids.reserveCapacity(total)
            var lastProgress = clock.now
            while let batch = try await group.next() {
                ids.append(contentsOf: batch)
                if next < sizes.count {
                    let size = sizes[next]
                    group.addTask { try await sendBatch(eventJSON, count: size) }
                    next += 1
                }
                if clock.now - lastProgress >= .seconds(3) {
                    progress("\(label): \(ids.count)/\(total) events accepted")
                    lastProgress = clock.now
                }
            }
            return ids
        }
    }

    /// One `POST /api/v1/events/batch` of `count` copies of `eventJSON`; every event must be accepted.
    func sendBatch(_ eventJSON: String, count: Int) async throws -> [String] {
        struct Answer: Decodable {
            struct Item: Decodable {
                struct Detail: Decodable { var code: String?; var message: String? }
                var index: Int
                var status: Int
                var id: String?
                var error: Detail?
            }
            var results: [Item]
        }
        let body = "{\"events\":[" + repeatElement(eventJSON, count: count).joined(separator: ",") + "]}"
        let (status, text) = try await stack.post(port: ingesterPorts.randomElement() ?? stack.ingesterPort, "/api/v1/events/batch", body: body)
        guard (200..<300).contains(status) else {
            throw LoadError.rejected("POST /api/v1/events/batch answered \(status): \(text.prefix(500))")
        }
        let answer = try JSONDecoder().decode(Answer.self, from: Data(text.utf8))
        var ids: [String] = []
        for item in answer.results {
            guard item.status == 202, let id = item.id else {
                throw LoadError.rejected("event \(item.index) of a batch got \(item.status): \(item.error?.message ?? "no message")")
            }
            ids.append(id)
        }
        return ids
    }

    /// Produces `total` `EventEnvelope`s straight to the events topic (key = event id), awaiting
    /// the broker's acknowledgements 1000 at a time; the envelope's timestamp is set here.
    func produceEvents(total: Int) async throws -> [String] {
        let configuration = KafkaConfiguration(bootstrapServers: stack.broker.bootstrapServers, clientID: "baton-load-events",
                                               profile: .embeddedBroker, topicPartitions: settings.partitions, topicReplicationFactor: 1)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let topic = Topics().events
        let payload = JSONValue.object(["steps": .int(Int64(settings.tasks)), "stepMilliseconds": .int(Int64(settings.taskMilliseconds))])
        let clock = ContinuousClock()
        var lastProgress = clock.now
        var ids: [String] = []
        ids.reserveCapacity(total)
        do {
            var inFlight: [KafkaProducer.Delivery] = []
            for _ in 0..<total {
                let envelope = EventEnvelope(name: Self.eventName, payload: payload)
                let value = Array(try BatonJSON.encoder.encode(envelope))
                inFlight.append(try await producer.enqueueWhenRoom(topic: topic, key: Array(envelope.id.utf8), value: value))
                ids.append(envelope.id)
                if inFlight.count >= 1000 {
                    for delivery in inFlight { try await delivery.acknowledged() }
                    inFlight.removeAll(keepingCapacity: true)
                }
                if clock.now - lastProgress >= .seconds(3) {
                    progress("burst: \(ids.count)/\(total) events produced")
                    lastProgress = clock.now
                }
            }
            for delivery in inFlight { try await delivery.acknowledged() }
        } catch {
            await producer.shutdown()
            throw LoadError.rejected("producing to \(topic) failed after \(ids.count) events: \(error)")
        }
        await producer.shutdown()
        return ids
    }

    // MARK: - Waiting

    /// Throws ``ProcessExited`` (which stops any waiting at once) when a process of the stack died.
    func checkAlive() throws {
        for process in [stack.ingester, stack.dispatcher, stack.taskResults, stack.broker.process] + stack.extraInstances + stack.jobServices {
            try process.requireRunning()
        }
    }

    /// Fails unless `run` completed.
    static func requireCompleted(_ run: RunDetails) throws {
        guard run.status == .completed else {
            throw LoadError.runFailed(id: run.id, status: run.status.rawValue, error: run.error ?? "no error message")
        }
    }

    /// Polls run `runID` every 5 ms until it finished; it must have completed.
    func awaitRun(_ runID: String, deadline: Duration) async throws -> RunDetails {
        let run = try await eventually("run \(runID) to finish", deadline: deadline, every: .milliseconds(5)) { () -> RunDetails? in
            try checkAlive()
            guard let run = try await stack.run(runID), run.status.isTerminal else { return nil }
            return run
        }
        try Self.requireCompleted(run)
        return run
    }

    /// What one look at a run found.
    enum Probe: Sendable {
        case finished(RunDetails)
        /// Not finished yet in the runs API (its id).
        case pending(String)
        case failed(String)
    }

    /// Waits until every run of `runIDs` has finished and returns them, all completed.
    ///
    /// While the runs execute it only reads `baton.task-results` (as a consumer group of its
    /// own, from the start), looking for each run's `runCompleted` or `runFailed`: polling the
    /// runs API would take CPU from the task-result service it measures. Once all have
    /// finished it reads each run from the runs API, ``parallelProbes`` at a time, for the
    /// servers' timestamps. Prints progress every 3 s; fails at once on a failed run or a dead
    /// process.
    func awaitRuns(_ runIDs: [String], label: String, deadline: Duration) async throws -> [RunDetails] {
        let clock = ContinuousClock()
        let end = clock.now + deadline
        var waiting = Set(runIDs)
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(bootstrapServers: stack.broker.bootstrapServers, clientID: "baton-load-watch", profile: .embeddedBroker),
            groupID: "baton-load-watch-\(UUID().uuidString.prefix(8))", topics: [Topics().taskResults], logger: logger)
        let finishedMarker = Array(#""runCompleted""#.utf8)
        let failedMarker = Array(#""runFailed""#.utf8)
        var lastProgress = clock.now
        do {
            while !waiting.isEmpty {
                try checkAlive()
                guard clock.now < end else {
                    throw LoadError.deadline("\(label): \(runIDs.count - waiting.count) of \(runIDs.count) runs finished in time; still waiting for \(waiting.prefix(3).joined(separator: ", "))")
                }
                // At most a second per look, so deadlines and dead processes are noticed.
                let batch: [KafkaRecord] = try await withThrowingTaskGroup(of: [KafkaRecord]?.self, returning: [KafkaRecord]?.self) { group in
                    group.addTask { try await consumer.nextBatch(max: 10_000) }
                    group.addTask {
                        try await Task.sleep(for: .seconds(1))
                        return nil
                    }
                    defer { group.cancelAll() }
                    return try await group.next() ?? nil
                } ?? []
                for record in batch {
                    guard let key = record.keyString, waiting.contains(key) else { continue }
                    // Only a run's last event matters; the others are not decoded.
                    let failed = record.value.firstRange(of: failedMarker) != nil
                    guard failed || record.value.firstRange(of: finishedMarker) != nil else { continue }
                    if failed, case .runFailed(let failure)? = try? RunEvent.decode(from: record.value).body {
                        throw LoadError.runFailed(id: key, status: failure.status.rawValue, error: failure.error)
                    }
                    waiting.remove(key)
                }
                if clock.now - lastProgress >= .seconds(3) {
                    progress("\(label): \(runIDs.count - waiting.count)/\(runIDs.count) runs finished")
                    lastProgress = clock.now
                }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        progress("\(label): all \(runIDs.count) runs finished; reading them from the runs API")
        var finished: [RunDetails] = []
        finished.reserveCapacity(runIDs.count)
        // The store applies the task-results topic a moment after the run's last event is on it
        // (more so with PostgreSQL): a run not finished in the runs API yet is read again.
        var remaining = runIDs[...]
        while !remaining.isEmpty {
            let chunk = Array(remaining.prefix(256))
            remaining = remaining.dropFirst(chunk.count)
            for result in await probeRuns(chunk) {
                switch result {
                case .finished(let run):
                    try Self.requireCompleted(run)
                    finished.append(run)
                case .failed(let message):
                    throw LoadError.deadline("\(label): reading a finished run from the runs API failed: \(message)")
                case .pending(let id):
                    guard clock.now < end else {
                        throw LoadError.deadline("\(label): run \(id) reported finished on Kafka is still not finished in the runs API at the deadline")
                    }
                    finished.append(try await awaitRun(id, deadline: end - clock.now))
                }
            }
        }
        return finished
    }

    /// Looks at `runIDs` through the runs API, ``parallelProbes`` requests at a time.
    func probeRuns(_ runIDs: [String]) async -> [Probe] {
        await withTaskGroup(of: Probe.self, returning: [Probe].self) { group in
            var remaining = runIDs.makeIterator()
            for _ in 0..<Self.parallelProbes {
                guard let id = remaining.next() else { break }
                group.addTask { await probe(id) }
            }
            var results: [Probe] = []
            while let result = await group.next() {
                results.append(result)
                if let id = remaining.next() { group.addTask { await probe(id) } }
            }
            return results
        }
    }

    /// One look at run `runID`.
    func probe(_ runID: String) async -> Probe {
        do {
            guard let run = try await stack.run(runID), run.status.isTerminal else { return .pending(runID) }
            return .finished(run)
        } catch {
            return .failed("\(error)")
        }
    }
}
