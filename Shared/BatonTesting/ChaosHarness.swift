import BatonProtocol
import Foundation
import Synchronization

/// A small seeded generator (SplitMix64): a chaos schedule can be replayed from its seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What a chaos run found, counted from outside the services (the runs API and the jobs'
/// side-effect file), not from the services' own claims.
public struct ChaosReport: Sendable {
    /// Runs expected: one `chaos-flow` run per accepted event and one `chaos-child` run per flow.
    public var runs = 0
    public var completed = 0
    /// Accepted events (or events sent from runs) with no run.
    public var lostEvents = 0
    /// Runs beyond one per (event, job).
    public var duplicateRuns = 0
    /// Task executions after the execution whose result was acknowledged and stored.
    public var reexecutedAckedTasks = 0
    /// Runs whose post-wait task ran again after its acknowledged execution: the wait's timer
    /// resumed the job code twice.
    public var timersFiredTwice = 0
    /// Slices of one run that ran at once (seen by the chaos jobs' slice markers).
    public var overlappingSlices = 0
    /// Runs whose background fetch reached the test server more than once (counted by the server).
    public var fetchesPerformedTwice = 0
    /// Of those, the runs with two consecutive requests of the fetch and no stop of a task-result
    /// instance between them: a repeat nothing explains (a fetch is performed at least once: an instance
    /// stopped between the request and its stored response performs it again, see
    /// docs/operations.md; anything else is a bug).
    public var unexplainedFetchRepeats = 0
    /// PostgreSQL restarts during the run (`--store postgres`).
    public var storeRestarts = 0
    /// Processes that stopped without being killed (e.g. a service that gave up while the store restarted).
    public var stoppedOnTheirOwn = 0
    /// Processes SIGKILLed (or SIGTERMed) and restarted.
    public var kills = 0
    public var killed: [String] = []
    /// With SIGTERM: processes that did not exit 0 within the shutdown deadline.
    public var uncleanExits = 0
    /// Whether processes were stopped with SIGTERM (drain) instead of SIGKILL.
    public var terminated = false

    /// The invariant line.
    public var line: String {
        "runs: \(runs), completed: \(completed), lost events: \(lostEvents), duplicate runs: \(duplicateRuns), re-executed acked tasks: \(reexecutedAckedTasks), timers fired twice: \(timersFiredTwice), fetches performed twice: \(fetchesPerformedTwice) (with no task-result stop in between: \(unexplainedFetchRepeats)), overlapping slices: \(overlappingSlices)"
            + (terminated ? ", SIGTERMs: \(kills), unclean exits: \(uncleanExits)" : "")
            + (storeRestarts > 0 ? ", PostgreSQL restarts: \(storeRestarts)" : "")
            + (stoppedOnTheirOwn > 0 ? ", processes that stopped on their own: \(stoppedOnTheirOwn)" : "")
    }

    /// Whether every invariant held.
    public var holds: Bool {
        runs > 0 && completed == runs && lostEvents == 0 && duplicateRuns == 0 && reexecutedAckedTasks == 0 && timersFiredTwice == 0
            && unexplainedFetchRepeats == 0 && overlappingSlices == 0 && uncleanExits == 0 && stoppedOnTheirOwn == 0
    }
}

/// Starts the embedded stack (Tansu, the three services, two job services), sends a bounded
/// stream of `chaos.start` events to 127.0.0.1 — runs with tasks, a background fetch, a wait and
/// an event sent to another job — and, driven by `seed`, SIGKILLs and restarts random Baton
/// processes at random times. When the stream has ended and everything has settled it counts
/// the invariants.
///
/// Topology: with `postgres`, the dispatcher and the task-result service keep their state in a
/// PostgreSQL server of the harness's own (one database each), which is restarted once midway;
/// with `instances` > 1, each service runs that many instances (the dispatcher and the
/// task-result service only with `postgres`), events are sent to the ingesters in turn, and any
/// instance may be killed.
public struct ChaosHarness: Sendable {
    public var runs: Int
    public var kills: Int
    public var seed: UInt64
    public var waitSeconds: Double
    public var settleDeadline: Duration
    /// When set, processes get SIGTERM with this shutdown deadline (`SHUTDOWN_DEADLINE_MS`)
    /// instead of SIGKILL: each must drain and exit 0 in time.
    public var shutdownDeadline: Duration?
    /// Instances of each service.
    public var instances: Int
    /// Whether the stores are in PostgreSQL (restarted once midway) instead of SQLite files.
    public var postgres: Bool
    public var log: @Sendable (String) -> Void

    public init(runs: Int, kills: Int, seed: UInt64, waitSeconds: Double = 0.3, settleDeadline: Duration = .seconds(300),
                shutdownDeadline: Duration? = nil, instances: Int = 1, postgres: Bool = false,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.shutdownDeadline = shutdownDeadline
        self.instances = instances
        self.postgres = postgres
        self.runs = runs
        self.kills = kills
        self.seed = seed
        self.waitSeconds = waitSeconds
        self.settleDeadline = settleDeadline
        self.log = log
    }

    public func run() async throws -> ChaosReport {
        var environment = [
            "LOG_LEVEL": "info", "RUNS_PROGRESS_TIMEOUT_MS": "3000", "RUNS_PROGRESS_REISSUES": "50", "REAPER_INTERVAL_MS": "500",
        ]
        let signal: BatonStack.StopSignal
        if let shutdownDeadline {
            environment["SHUTDOWN_DEADLINE_MS"] = "\(Int(shutdownDeadline / .milliseconds(1)))"
            // The process gets its deadline plus the time to exit after it.
            signal = .terminate(deadline: shutdownDeadline + .seconds(10))
        } else {
            signal = .kill
        }
        // The stores: SQLite files, or a PostgreSQL of the harness's own with a database per service.
        var roleEnvironment: [BatonStack.Role: [String: String]] = [:]
        var server: PostgresServer?
        if postgres {
            let stores = try await BatonStack.postgresStores(label: "chaos")
            roleEnvironment = stores.roleEnvironment
            server = stores.server
        }
        let fetches = try await FetchCounter.start()
        let stack = try await BatonStack.start(label: "chaos", environment: environment, roleEnvironment: roleEnvironment)
        log("chaos: logs in \(stack.logs.path)")
        var targets: [Target] = [.main(.ingester), .main(.dispatcher), .main(.taskResults)]
        var ingesterPorts = [stack.ingesterPort]
        var taskResultPorts = [stack.taskResultsPort]
        for index in 1..<max(1, instances) {
            let ingester = try await stack.startExtra(.ingester, name: "ingester-\(index)")
            ingesterPorts.append(ingester.port)
            targets.append(.extra("ingester-\(index)"))
            guard postgres else { continue }
            try await stack.startExtra(.dispatcher, name: "dispatcher-\(index)", extra: ["DISPATCHER_INSTANCE": "dispatcher-\(index)"])
            let taskResults = try await stack.startExtra(.taskResults, name: "task-results-\(index)", extra: ["TASK_RESULTS_INSTANCE": "task-results-\(index)"])
            taskResultPorts.append(taskResults.port)
            targets += [.extra("dispatcher-\(index)"), .extra("task-results-\(index)")]
        }
        // Two job services; with several task-result instances, each asks another one for checkpoints.
        for index in 0..<2 {
            try await stack.startExampleJobs(environment: ["TASK_RESULTS_URL": "http://127.0.0.1:\(taskResultPorts[index % taskResultPorts.count])"])
        }
        targets += [.jobService, .jobService]
        var random = SeededGenerator(seed: seed)
        var plan = (0..<kills).map { _ in (delay: Int.random(in: 300...1500, using: &random), target: Int.random(in: 0..<targets.count, using: &random)) }
        if shutdownDeadline != nil, kills >= 4 {
            // Drains differ per service: make sure each kind is stopped at least once, in a
            // seeded order.
            let kinds = [0, 1, 2, targets.firstIndex(of: .jobService)!]
            for (index, target) in kinds.shuffled(using: &random).enumerated() { plan[index].target = target }
        }
        let pace = Duration.milliseconds(max(10, (kills * 2500) / max(1, runs)))
        log("chaos: seed \(seed), \(runs) runs, \(kills) kills, one event every \(pace), \(max(1, instances)) instance(s) per service, "
            + (postgres ? "PostgreSQL store (restarted once midway)" : "SQLite stores"))

        async let sent = send(stack, ports: ingesterPorts, fetchURL: fetches.url, pace: pace)
        var report = ChaosReport()
        report.terminated = shutdownDeadline != nil
        /// When a task-result instance was stopped (its restart began).
        var taskResultStops: [ContinuousClock.Instant] = []
        for (number, step) in plan.enumerated() {
            try await Task.sleep(for: .milliseconds(step.delay))
            if let server, number == plan.count / 2 {
                try await server.restart()
                report.storeRestarts += 1
                log("chaos: restarted PostgreSQL")
            }
            let target = targets[step.target]
            if target.name.hasPrefix("task-results") { taskResultStops.append(.now) }
            let status: Int32?
            switch target {
            case .main(let role): status = try await stack.restart(role, with: signal)
            case .extra(let name):
                let process = stack.extraInstances.first { $0.name == name }!
                status = try await stack.restartExtra(process, with: signal).status
            case .jobService:
                let running = stack.jobServices.filter(\.isRunning)
                status = try await stack.restartJobService(running[step.target % running.count], with: signal).status
            }
            if let status, status != 0 {
                // Non-zero, or still running at the deadline (SIGKILLed then).
                report.uncleanExits += 1
                log("chaos: \(target) " + (status == BatonStack.exitMissedDeadline ? "did not exit by its deadline" : "exited with status \(status)") + " after SIGTERM")
            }
            report.kills += 1
            report.killed.append(target.name)
            log("chaos: \(report.terminated ? "SIGTERMed" : "SIGKILLed") and restarted \(target.name)" + (status.map { " (exit \($0))" } ?? ""))
        }
        if let server, report.storeRestarts == 0 {
            try await server.restart()
            report.storeRestarts += 1
            log("chaos: restarted PostgreSQL")
        }
        let accepted = try await sent
        log("chaos: \(accepted.count) events accepted; waiting for every run to settle")
        try await audit(stack, accepted: accepted, into: &report)
        for process in [stack.ingester, stack.dispatcher, stack.taskResults] + stack.extraInstances + stack.jobServices where !process.isRunning {
            report.stoppedOnTheirOwn += 1
            log("chaos: \(process.name) stopped on its own (exit \(process.terminationStatus)); its log: \(process.logFile.path)")
        }
        // Counted by the fetched server, from outside the task-result service.
        for (run, times) in fetches.requestTimes where times.count > 1 {
            report.fetchesPerformedTwice += 1
            // Each repeat needs a stop of its own: between every two consecutive requests.
            let explained = zip(times, times.dropFirst()).allSatisfy { earlier, later in taskResultStops.contains { earlier < $0 && $0 < later } }
            if !explained { report.unexplainedFetchRepeats += 1 }
            log("chaos: the fetch of run \(run) was performed \(times.count) times"
                + (explained ? " (a task-result instance was stopped in between)" : ", with no task-result instance stopped in between"))
        }
        try await stack.stop()
        await fetches.stop()
        try await server?.stop()
        return report
    }

    /// A process the harness kills: one of the stack's own, an extra instance, or a job service.
    enum Target: Equatable {
        case main(BatonStack.Role)
        case extra(String)
        case jobService

        var name: String {
            switch self {
            case .main(let role): role == .taskResults ? "task-results" : role.rawValue
            case .extra(let name): name
            case .jobService: "job service"
            }
        }
    }

    /// Sends `runs` events to the ingesters at `ports` in turn, each retried with the same id
    /// (at the next ingester) until one answers 2xx.
    func send(_ stack: BatonStack, ports: [Int], fetchURL: String, pace: Duration) async throws -> [String] {
        var accepted: [String] = []
        var turn = 0
        for index in 0..<runs {
            let id = "evt_chaos_\(seed)_\(index)"
            let body = #"{"id":"\#(id)","name":"chaos.start","payload":{"waitSeconds":\#(waitSeconds),"fetchURL":"\#(fetchURL)"}}"#
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                turn += 1
                if let answer = try? await stack.post(port: ports[turn % ports.count], "/api/v1/events", body: body), answer.status == 202 {
                    accepted.append(id)
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            try await Task.sleep(for: pace)
        }
        return accepted
    }

    func run(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    func runsOf(_ stack: BatonStack, event: String) async throws -> [RunDetails] {
        try await stack.runs(event: event)
    }

    func audit(_ stack: BatonStack, accepted: [String], into report: inout ChaosReport) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + settleDeadline
        // Each accepted event: one chaos-flow run, and through it one chaos-child run.
        var events: [(event: String, job: String)] = accepted.map { ($0, "chaos-flow") }
        report.runs = accepted.count * 2
        var index = 0
        var finished: [RunDetails] = []
        while index < events.count {
            let (event, job) = events[index]
            var runs: [RunDetails] = []
            while clock.now < deadline {
                runs = (try? await runsOf(stack, event: event)) ?? []
                if !runs.isEmpty && runs.allSatisfy(\.status.isTerminal) { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let ofJob = runs.filter { $0.jobId == job }
            if ofJob.isEmpty {
                report.lostEvents += 1
                log("chaos: no \(job) run for event \(event)")
            }
            report.duplicateRuns += max(0, ofJob.count - 1)
            for run in ofJob {
                finished.append(run)
                if run.status == .completed { report.completed += 1 }
                if job == "chaos-flow", let child = run.tasks.first(where: { $0.key == "notify child" })?.output?.stringValue {
                    events.append((child, "chaos-child"))
                } else if job == "chaos-flow" {
                    report.lostEvents += 1  // the flow never sent its child event
                    log("chaos: flow run \(run.id) (\(run.status)) has no child event: its tasks are \(run.tasks.map { "\($0.key)=\($0.status)" })")
                }
            }
            index += 1
        }
        // Re-executions of acknowledged tasks, from the side-effect file.
        var executions: [String: [String]] = [:]
        let lines = stack.outboxLines()
        for line in lines where line.hasPrefix("overlap ") {
            report.overlappingSlices += 1
            log("chaos: two slices of one run at once: \(line)")
        }
        for line in lines where line.hasPrefix("chaos ") {
            let parts = line.split(separator: " ")
            guard parts.count == 4 else { continue }
            executions["\(parts[1]) \(parts[2])", default: []].append(String(parts[3]))
        }
        for run in finished {
            for task in run.tasks where ["first step", "second step", "child step"].contains(task.key) {
                guard let stored = task.output?.stringValue,
                      let seen = executions["\(run.id) \(task.key.replacingOccurrences(of: " ", with: "_"))"],
                      let position = seen.firstIndex(of: stored)
                else { continue }
                let after = seen.count - 1 - position
                report.reexecutedAckedTasks += after
                if task.key == "second step", after > 0 { report.timersFiredTwice += 1 }
            }
        }
    }
}
