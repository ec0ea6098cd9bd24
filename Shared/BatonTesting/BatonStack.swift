import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import BatonProtocol
import Synchronization

/// The embedded Baton stack as real processes: Tansu, the three services and a job service,
/// on free loopback ports, with state in a temporary folder.
///
/// - Important: call ``stop()`` at the end of a test; `deinit` of each `ChildProcess` SIGKILLs
///   what is left if a test fails early.
public final class BatonStack: Sendable {
    /// The Baton services of a stack.
    public enum Role: String, Sendable, CaseIterable {
        case taskResults = "task-results"
        case dispatcher
        case ingester
    }

    private let currentBroker: Mutex<TansuBroker>
    /// The broker running now (see ``restartBroker()``).
    public var broker: TansuBroker { currentBroker.withLock { $0 } }
    public let directory: URL
    public let ingesterPort: Int
    public let dispatcherPort: Int
    public let taskResultsPort: Int
    private let services: Mutex<[Role: ChildProcess]>
    /// The task-result service process running now (see ``restart(_:)``).
    public var taskResults: ChildProcess { services.withLock { $0[.taskResults]! } }
    /// The dispatcher process running now.
    public var dispatcher: ChildProcess { services.withLock { $0[.dispatcher]! } }
    /// The ingester process running now.
    public var ingester: ChildProcess { services.withLock { $0[.ingester]! } }
    /// The current process of service `role`.
    public func process(_ role: Role) -> ChildProcess { services.withLock { $0[role]! } }
    private let startedJobServices = Mutex<[(process: ChildProcess, environment: [String: String])]>([])
    /// The job-service processes started so far.
    public var jobServices: [ChildProcess] { startedJobServices.withLock { $0.map(\.process) } }
    public let http: HTTPClient
    private let commonEnvironment: [String: String]
    /// Extra settings of each service's processes (e.g. a shared store for one role).
    private let roleEnvironment: [Role: [String: String]]

    /// The jobs `baton-example-jobs` registers.
    public static let exampleJobSlugs = ["new-user-welcome", "many-steps", "flaky", "fan-out", "parallel", "welcome-once", "fetch", "github-stars", "user-audit", "chaos-flow", "chaos-child", "monthly-report", "batch-import", "fulfil-order", "charge-card", "pack-item", "expense-approval", "versioned-greeter", "transcode-video", "rate-limited-ping", "throttled-ping", "debounced-ping",
                                              "limited-work", "per-user-sync", "per-user-export", "new-year-greeting"]

    /// The example job service's side-effect file.
    public var outbox: URL { directory.appendingPathComponent("outbox.txt") }
    public var logs: URL { directory.appendingPathComponent("logs") }

    private init(broker: TansuBroker, directory: URL, ports: (Int, Int, Int), environment: [String: String],
                 roleEnvironment: [Role: [String: String]]) throws {
        self.currentBroker = Mutex(broker)
        self.directory = directory
        (ingesterPort, dispatcherPort, taskResultsPort) = ports
        self.commonEnvironment = environment
        self.roleEnvironment = roleEnvironment
        // The shared client needs no shutdown, so a test that fails before `stop()` cannot
        // crash the test process in the client's deinit.
        http = .shared
        services = Mutex([:])
        for role in Role.allCases {
            let process = try launch(role)
            services.withLock { $0[role] = process }
        }
    }

    private func port(of role: Role) -> Int {
        switch role {
        case .taskResults: taskResultsPort
        case .dispatcher: dispatcherPort
        case .ingester: ingesterPort
        }
    }

    /// Starts a process of service `role` with the stack's settings (its port and store) plus
    /// `extra`, without making it the stack's current one: for a test that watches it fail.
    public func launch(_ role: Role, extra: [String: String] = [:]) throws -> ChildProcess {
        let executable = ["task-results": "baton-task-results", "dispatcher": "baton-dispatcher", "ingester": "baton-ingester"][role.rawValue]!
        var environment = commonEnvironment.merging(["HTTP_PORT": "\(port(of: role))"]) { _, n in n }
        switch role {
        case .taskResults, .dispatcher: environment["STORE_PATH"] = directory.appendingPathComponent("\(role.rawValue).sqlite").path
        case .ingester: environment["DISPATCHER_URL"] = "http://127.0.0.1:\(dispatcherPort)"
        }
        environment.merge(roleEnvironment[role] ?? [:]) { _, n in n }
        environment.merge(extra) { _, n in n }
        return try ChildProcess(name: role.rawValue, executable: TestEnvironment.executable(executable), environment: environment, logDirectory: logs)
    }

    /// Starts one more instance of the task-result service, with the stack's settings for it
    /// (give them a shared `STORE_URL`) plus `extra`, on a port of its own; waits until it answers.
    @discardableResult
    public func startExtraTaskResults(name: String, extra: [String: String] = [:]) async throws -> (process: ChildProcess, port: Int) {
        try await startExtra(.taskResults, name: name, extra: extra)
    }

    /// An instance started besides the stack's own three: how to start it again.
    private struct ExtraInstance {
        var process: ChildProcess
        var role: Role
        var name: String
        var port: Int
        var environment: [String: String]
    }

    private let extras = Mutex<[ExtraInstance]>([])

    /// The instances started besides the stack's own three (the current process of each).
    public var extraInstances: [ChildProcess] { extras.withLock { $0.map(\.process) } }

    /// Starts one more instance of service `role` with the stack's settings for it plus `extra`,
    /// on a port of its own (and its own SQLite file, unless the settings give a shared
    /// `STORE_URL`); an ingester sends cancels to the stack's dispatcher. Waits until it answers.
    @discardableResult
    public func startExtra(_ role: Role, name: String, extra: [String: String] = [:]) async throws -> (process: ChildProcess, port: Int) {
        let port = try freeLoopbackPort()
        var environment = commonEnvironment.merging(["HTTP_PORT": "\(port)"]) { _, n in n }
        switch role {
        case .taskResults, .dispatcher: environment["STORE_PATH"] = directory.appendingPathComponent("\(name).sqlite").path
        case .ingester: environment["DISPATCHER_URL"] = "http://127.0.0.1:\(dispatcherPort)"
        }
        environment.merge(roleEnvironment[role] ?? [:]) { _, n in n }
        environment.merge(extra) { _, n in n }
        let process = try launchExtra(role, name: name, environment: environment)
        extras.withLock { $0.append(ExtraInstance(process: process, role: role, name: name, port: port, environment: environment)) }
        try await awaitHealthy(process, port: port)
        return (process, port)
    }

    private func launchExtra(_ role: Role, name: String, environment: [String: String]) throws -> ChildProcess {
        let executable = ["task-results": "baton-task-results", "dispatcher": "baton-dispatcher", "ingester": "baton-ingester"][role.rawValue]!
        return try ChildProcess(name: name, executable: TestEnvironment.executable(executable), environment: environment, logDirectory: logs)
    }

    /// Stops extra instance `process` with `signal` and starts it again with the same settings
    /// and port; returns once it answers, with the new process and the old one's exit status
    /// after SIGTERM.
    public func restartExtra(_ process: ChildProcess, with signal: StopSignal = .kill) async throws -> (process: ChildProcess, status: Int32?) {
        guard let instance = extras.withLock({ $0.first { $0.process === process } }) else {
            throw DeadlineExceeded(what: "extra instance \(process.name) to be known to the stack", deadline: .zero)
        }
        let status = try await stop(process, with: signal)
        let next = try launchExtra(instance.role, name: instance.name, environment: instance.environment)
        extras.withLock { list in
            if let index = list.firstIndex(where: { $0.process === process }) { list[index].process = next }
        }
        try await awaitHealthy(next, port: instance.port)
        return (next, status)
    }

    /// The port of extra instance `process`.
    public func port(ofExtra process: ChildProcess) -> Int? {
        extras.withLock { $0.first { $0.process === process }?.port }
    }

    /// Waits until `process` answers `/health` on `port`; fails at once, with its output, when
    /// it exits first (a port it could not bind, a configuration error).
    private func awaitHealthy(_ process: ChildProcess, port: Int) async throws {
        _ = try await eventually("\(process.name) to answer /health on port \(port)", deadline: .seconds(60)) { () -> Bool? in
            try process.requireRunning()
            guard try await get(port: port, "/health").status == 200 else { return nil }
            // Answered: make sure it was this process, not a stranger on the port.
            try process.requireRunning()
            return true
        }
    }

    /// The status ``stop(_:with:)`` reports for a process that did not exit by its deadline.
    public static let exitMissedDeadline: Int32 = -1

    /// How a test stops a process before restarting it.
    public enum StopSignal: Sendable {
        /// SIGKILL: a crash.
        case kill
        /// SIGTERM, then wait up to `deadline` for the exit.
        case terminate(deadline: Duration)
    }

    /// Stops `process` with `signal`; returns its exit status for SIGTERM (`nil` for SIGKILL),
    /// or ``exitMissedDeadline`` when it was still running at the deadline (it is SIGKILLed).
    @discardableResult
    public func stop(_ process: ChildProcess, with signal: StopSignal) async throws -> Int32? {
        switch signal {
        case .kill:
            try await process.kill9()
            return nil
        case .terminate(let deadline):
            do {
                return try await process.terminate(deadline: deadline)
            } catch is DeadlineExceeded {
                try await process.kill9()
                return Self.exitMissedDeadline
            }
        }
    }

    /// Stops service `role` (SIGKILL by default) and starts a new one on the same port and
    /// store; returns once it answers `/health`, and the old process's exit status after SIGTERM.
    @discardableResult
    public func restart(_ role: Role, with signal: StopSignal = .kill) async throws -> Int32? {
        let old = services.withLock { $0[role]! }
        let status = try await stop(old, with: signal)
        let next = try launch(role)
        services.withLock { $0[role] = next }
        try await awaitHealthy(next, port: port(of: role))
        return status
    }

    /// SIGKILLs the broker and starts a new one on the same port: memory storage, so every
    /// topic, record and group is gone, as when an embedded broker restarts.
    public func restartBroker() async throws {
        let old = broker
        try await old.stop()
        let next = try await TansuBroker.start(logDirectory: logs, port: old.port)
        currentBroker.withLock { $0 = next }
    }

    /// SIGKILLs the dispatcher and starts a new one (see ``restart(_:)``).
    public func restartDispatcher() async throws {
        try await restart(.dispatcher)
    }

    /// Stops job service `process` (SIGKILL by default) and starts a new one with the same
    /// settings; returns it, and the old process's exit status after SIGTERM.
    @discardableResult
    public func restartJobService(_ process: ChildProcess, with signal: StopSignal = .kill) async throws -> (process: ChildProcess, status: Int32?) {
        let environment = startedJobServices.withLock { services in
            services.first { $0.process === process }?.environment ?? [:]
        }
        let status = try await stop(process, with: signal)
        startedJobServices.withLock { $0.removeAll { $0.process === process } }
        let jobs = environment["EXAMPLE_JOBS"].map { $0.split(separator: ",").map(String.init) }
        return (try await startExampleJobs(environment: environment, jobs: jobs), status)
    }

    /// Starts one more dispatcher instance (its own port; its own SQLite store unless the
    /// stack's dispatcher settings share one) and waits until it answers.
    @discardableResult
    public func startExtraDispatcher(extra: [String: String] = [:]) async throws -> (process: ChildProcess, port: Int) {
        try await startExtra(.dispatcher, name: "dispatcher-\(UUID().uuidString.prefix(4))", extra: extra)
    }

    /// `DELETE` `path`.
    public func delete(port: Int, _ path: String, apiKey: String? = nil) async throws -> (status: UInt, body: String) {
        try await request(port: port, path, method: .DELETE, apiKey: apiKey)
    }

    /// Starts a PostgreSQL server of its own (a throwaway cluster on a loopback port) with a
    /// database per service, and returns it with the settings that put the dispatcher's and the
    /// task-result service's stores there (for ``start(label:environment:roleEnvironment:)``);
    /// the first instances are named `dispatcher-0` and `task-results-0`.
    public static func postgresStores(label: String) async throws -> (server: PostgresServer, roleEnvironment: [Role: [String: String]]) {
        let server = try await PostgresServer.start(logDirectory: try TestEnvironment.temporaryDirectory("\(label)-postgres"))
        try await server.createDatabase("baton_task_results")
        try await server.createDatabase("baton_dispatcher")
        return (server, [
            .taskResults: ["STORE_URL": server.url(database: "baton_task_results"), "TASK_RESULTS_INSTANCE": "task-results-0"],
            .dispatcher: ["STORE_URL": server.url(database: "baton_dispatcher"), "DISPATCHER_INSTANCE": "dispatcher-0"],
        ])
    }

    /// Starts Tansu and the three services, and waits until they answer.
    /// - Parameter environment: extra settings for every Baton process.
    /// - Parameter roleEnvironment: extra settings for the processes of one service.
    public static func start(label: String, environment: [String: String] = [:],
                             roleEnvironment: [Role: [String: String]] = [:]) async throws -> BatonStack {
        let directory = try TestEnvironment.temporaryDirectory(label)
        let broker = try await TansuBroker.start(logDirectory: directory.appendingPathComponent("logs"))
        let env = [
            "KAFKA_BROKERS": broker.bootstrapServers, "KAFKA_PROFILE": "embedded", "KAFKA_TOPIC_REPLICATION": "1",
            "KAFKA_TOPIC_PARTITIONS": "2", "LOG_LEVEL": "debug",
        ].merging(environment) { _, new in new }
        let stack = try BatonStack(broker: broker, directory: directory,
                                   ports: (try freeLoopbackPort(), try freeLoopbackPort(), try freeLoopbackPort()), environment: env,
                                   roleEnvironment: roleEnvironment)
        for role in Role.allCases {
            try await stack.awaitHealthy(stack.process(role), port: stack.port(of: role))
        }
        return stack
    }

    /// Starts a `baton-example-jobs` process and waits until it has registered its jobs (its
    /// signal handlers are installed by then) and the dispatcher knows them.
    @discardableResult
    /// - Parameter jobs: the example jobs to run (`EXAMPLE_JOBS`); all when `nil`.
    public func startExampleJobs(waitSeconds: Double = 3, environment: [String: String] = [:], jobs: [String]? = nil) async throws -> ChildProcess {
        var settings = ["EXAMPLE_WAIT_SECONDS": "\(waitSeconds)"].merging(environment) { _, n in n }
        if let jobs { settings["EXAMPLE_JOBS"] = jobs.joined(separator: ",") }
        let slugs = jobs ?? Self.exampleJobSlugs
        let process = try ChildProcess(
            name: "example-jobs-\(UUID().uuidString.prefix(4))", executable: TestEnvironment.executable("baton-example-jobs"),
            environment: commonEnvironment.merging(["EXAMPLE_OUTBOX": outbox.path,
                                        "TASK_RESULTS_URL": "http://127.0.0.1:\(taskResultsPort)"]) { _, n in n }
                .merging(settings) { _, n in n },
            logDirectory: logs)
        startedJobServices.withLock { $0.append((process, settings)) }
        _ = try await eventually("\(process.name) to register its jobs", deadline: .seconds(60)) {
            process.output().components(separatedBy: "job registered").count > slugs.count ? true : nil
        }
        _ = try await eventually("dispatcher to know the example jobs", deadline: .seconds(60)) {
            let jobs = try await get(port: dispatcherPort, "/api/v1/jobs", apiKey: settings["BATON_API_KEY"]).body
            return slugs.allSatisfy { jobs.contains("\"\($0)\"") } ? true : nil
        }
        return process
    }

    /// Sends a request (with `Authorization: Bearer apiKey` when given, and `headers`) and
    /// returns status and body.
    public func request(port: Int, _ path: String, method: HTTPMethod = .GET, body: String? = nil,
                        apiKey: String? = nil, headers: [String: String] = [:]) async throws -> (status: UInt, body: String) {
        try await request(port: port, path, method: method, bytes: body.map { Array($0.utf8) }, apiKey: apiKey, headers: headers)
    }

    /// Sends a request whose body is raw `bytes` (which need not be UTF-8).
    public func request(port: Int, _ path: String, method: HTTPMethod, bytes: [UInt8]?,
                        apiKey: String? = nil, headers: [String: String] = [:]) async throws -> (status: UInt, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let bytes {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 16 << 20)
        return (response.status.code, String(buffer: buffer))
    }

    public func get(port: Int, _ path: String, apiKey: String? = nil) async throws -> (status: UInt, body: String) {
        try await request(port: port, path, apiKey: apiKey)
    }

    public func post(port: Int, _ path: String, body: String? = nil, apiKey: String? = nil) async throws -> (status: UInt, body: String) {
        try await request(port: port, path, method: .POST, body: body, apiKey: apiKey)
    }

    /// `POST /api/v1/events` on the ingester.
    public func sendEvent(_ json: String, apiKey: String? = nil) async throws -> (status: UInt, body: String) {
        try await request(port: ingesterPort, "/api/v1/events", method: .POST, body: json, apiKey: apiKey)
    }

    /// Run `id` from the runs API; `nil` while it is unknown (or not visible to `apiKey`).
    public func run(_ id: String, apiKey: String? = nil) async throws -> RunDetails? {
        let (status, body) = try await get(port: taskResultsPort, "/api/v1/runs/\(id)", apiKey: apiKey)
        return status == 200 ? try BatonJSON.decoder.decode(RunDetails.self, from: Data(body.utf8)) : nil
    }

    /// The runs event `eventId` started.
    public func runs(event eventId: String, apiKey: String? = nil) async throws -> [RunDetails] {
        struct RunList: Decodable { var runs: [RunDetails] }
        let body = try await get(port: taskResultsPort, "/api/v1/runs?eventId=\(eventId)", apiKey: apiKey).body
        return try BatonJSON.decoder.decode(RunList.self, from: Data(body.utf8)).runs
    }

    /// Waits (up to `deadline`) until run `id` exists and has finished, and returns it.
    public func finishedRun(_ id: String, deadline: Duration = .seconds(60), apiKey: String? = nil) async throws -> RunDetails {
        try await eventually("run \(id) to finish", deadline: deadline, every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await run(id, apiKey: apiKey), run.status.isTerminal else { return nil }
            return run
        }
    }

    /// Lines of the example job service's side-effect file.
    public func outboxLines() -> [String] {
        ((try? String(contentsOf: outbox, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The output of every process, for failure messages.
    /// - Parameter full: every log file of the stack in full (also of processes restarted since,
    ///   and the broker's), instead of the last 4,000 characters of each running process.
    public func allOutput(full: Bool = false) -> String {
        guard full else {
            return ([taskResults, dispatcher, ingester] + extraInstances + jobServices).map { "=== \($0.name)\n\($0.output().suffix(4000))" }.joined(separator: "\n")
        }
        let files = (try? FileManager.default.contentsOfDirectory(at: logs, includingPropertiesForKeys: nil)) ?? []
        return files.sorted { $0.path < $1.path }
            .map { "=== \($0.lastPathComponent)\n" + ((try? String(contentsOf: $0, encoding: .utf8)) ?? "") }
            .joined(separator: "\n")
    }

    private let dashboards = Mutex<[ChildProcess]>([])

    /// Starts a `baton-dashboard` reading this stack's dispatcher and task-result service, on a
    /// port of its own; waits until it answers.
    @discardableResult
    public func startDashboard(extra: [String: String] = [:]) async throws -> (process: ChildProcess, port: Int) {
        let port = try freeLoopbackPort()
        let environment = [
            "HTTP_PORT": "\(port)", "LOG_LEVEL": commonEnvironment["LOG_LEVEL"] ?? "info",
            "DISPATCHER_URL": "http://127.0.0.1:\(dispatcherPort)", "TASK_RESULTS_URL": "http://127.0.0.1:\(taskResultsPort)",
        ].merging(extra) { _, n in n }
        let process = try ChildProcess(name: "dashboard", executable: TestEnvironment.executable("baton-dashboard"),
                                       environment: environment, logDirectory: logs)
        dashboards.withLock { $0.append(process) }
        try await awaitHealthy(process, port: port)
        return (process, port)
    }

    /// Stops every process and the HTTP client.
    public func stop() async throws {
        for process in jobServices + extraInstances + dashboards.withLock({ $0 }) + [ingester, dispatcher, taskResults] where process.isRunning {
            try await process.kill9()
        }
        if broker.process.isRunning { try await broker.stop() }
    }
}
