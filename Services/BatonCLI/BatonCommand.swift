import ArgumentParser
import AsyncHTTPClient
import Baton
import BatonKeys
import BatonProtocol
import BatonTesting
import Foundation
import NIOCore
import NIOHTTP1
import UnixSignals

/// `baton`: run the embedded stack for development, and operate runs, events and jobs over the
/// HTTP APIs (`RunsClient`, `BatonClient`).
@main
struct BatonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton", abstract: "Baton's command line: a local stack, runs, events and jobs.",
        subcommands: [Dev.self, Runs.self, Events.self, Jobs.self, KeysCommand.self])
}

/// Where the services are and which API key to use (`BATON_*_URL`, `BATON_API_KEY`).
struct Endpoints: ParsableArguments {
    @Option(help: "The ingester (BATON_INGESTER_URL).")
    var ingester = ProcessInfo.processInfo.environment["BATON_INGESTER_URL"] ?? "http://127.0.0.1:8080"

    @Option(name: .customLong("task-results"), help: "The task-result service (BATON_TASK_RESULTS_URL).")
    var taskResults = ProcessInfo.processInfo.environment["BATON_TASK_RESULTS_URL"] ?? "http://127.0.0.1:8082"

    @Option(help: "The run dispatcher (BATON_DISPATCHER_URL).")
    var dispatcher = ProcessInfo.processInfo.environment["BATON_DISPATCHER_URL"] ?? "http://127.0.0.1:8081"

    @Option(name: .customLong("api-key"), help: "An API key (BATON_API_KEY); none when the services run without keys.")
    var apiKeyOption: String?

    var apiKey: String? { apiKeyOption ?? ProcessInfo.processInfo.environment["BATON_API_KEY"] }

    var runs: RunsClient { RunsClient(baseURL: taskResults, apiKey: apiKey) }
}

/// Prints `value` as JSON (pretty, sorted keys).
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

// MARK: - baton dev

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the embedded stack (Tansu, the three services and the dashboard, optionally a job service) until Ctrl-C.",
        discussion: "Needs the provisioned tools: eval \"$(deploy/local/setup --print-env)\". Everything stops on SIGINT or SIGTERM; no process is left behind.")

    @Option(name: .customLong("job-service"), help: "An executable that serves your jobs (started with KAFKA_BROKERS and TASK_RESULTS_URL set).")
    var jobService: String?

    @Flag(help: "Print the services' log lines as they come.")
    var logs = false

    func run() async throws {
        let started = ContinuousClock.now
        say("baton dev: starting Tansu and the three services…")
        // A first start creates topics and stores: say it is still going every few seconds.
        let progress = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(5))
                say("baton dev: still starting (\((ContinuousClock.now - started).components.seconds) s)…")
            }
        }
        defer { progress.cancel() }
        let stack = try await BatonStack.start(label: "dev", environment: ["LOG_LEVEL": "info"])
        say("baton dev: services up; starting the dashboard…")
        let dashboard = try await stack.startDashboard()
        progress.cancel()
        var job: ChildProcess?
        if let jobService {
            let executable = URL(fileURLWithPath: jobService)
            job = try ChildProcess(name: executable.lastPathComponent, executable: executable, environment: [
                "KAFKA_BROKERS": stack.broker.bootstrapServers, "KAFKA_PROFILE": "embedded",
                "TASK_RESULTS_URL": "http://127.0.0.1:\(stack.taskResultsPort)",
            ], logDirectory: stack.logs)
        }
        let processes = [stack.broker.process, stack.ingester, stack.dispatcher, stack.taskResults, dashboard.process] + (job.map { [$0] } ?? [])
        say("""
            baton dev: ready in \(ContinuousClock.now - started)
              dashboard      http://127.0.0.1:\(dashboard.port)/runs
              ingester       http://127.0.0.1:\(stack.ingesterPort)   (POST /api/v1/events)
              dispatcher     http://127.0.0.1:\(stack.dispatcherPort)   (GET /api/v1/jobs)
              task results   http://127.0.0.1:\(stack.taskResultsPort)   (GET /api/v1/runs)
              broker         \(stack.broker.bootstrapServers)
              logs           \(stack.logs.path)
              processes      \(processes.map { "\($0.name)=\($0.pid)" }.joined(separator: " "))
            export BATON_INGESTER_URL=http://127.0.0.1:\(stack.ingesterPort) BATON_DISPATCHER_URL=http://127.0.0.1:\(stack.dispatcherPort) BATON_TASK_RESULTS_URL=http://127.0.0.1:\(stack.taskResultsPort)
            Ctrl-C stops everything.
            """)
        let signal = await Self.awaitStop(watching: processes, logs: logs ? stack.logs : nil)
        say("baton dev: \(signal); stopping…")
        if let job, job.isRunning { try await job.kill9() }
        try await stack.stop()
        say("baton dev: stopped")
    }

    /// Waits for SIGINT or SIGTERM, saying when a process exits on its own; with `logs`, prints
    /// new log lines as they come.
    static func awaitStop(watching processes: [ChildProcess], logs: URL?) async -> String {
        await withTaskGroup(of: String?.self) { group in
            group.addTask {
                for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return "\(signal)" }
                return nil
            }
            group.addTask {
                var reported: Set<String> = []
                var printed: [String: Int] = [:]
                while !Task.isCancelled {
                    for process in processes where !process.isRunning && !reported.contains(process.name) {
                        reported.insert(process.name)
                        say("baton dev: \(process.name) exited (status \(process.terminationStatus)); see its log in \(process.logFile.path)")
                    }
                    if let logs {
                        for file in (try? FileManager.default.contentsOfDirectory(at: logs, includingPropertiesForKeys: nil)) ?? [] {
                            let lines = ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
                            let from = printed[file.lastPathComponent, default: 0]
                            for line in lines.dropFirst(from).dropLast() where !line.isEmpty {
                                say("[\(file.deletingPathExtension().lastPathComponent)] \(line)")
                            }
                            printed[file.lastPathComponent] = max(from, lines.count - 1)
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(250))
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? "stopped"
        }
    }
}

/// Writes `line` to standard output at once (not buffered: a supervising process reads it).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

// MARK: - baton runs

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List, show, cancel and replay runs.",
                                                    subcommands: [List.self, Show.self, Cancel.self, Replay.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs newest first, one line each (all pages with --all).")
        @OptionGroup var endpoints: Endpoints
        @Option(help: "Only this job's runs.") var job: String?
        @Option(help: "Only these statuses, comma-separated (e.g. FAILED,TIMED_OUT).") var status: String?
        @Option(help: "Runs per page (1-100).") var limit = 20
        @Flag(help: "Every page, not only the first.") var all = false
        @Flag(help: "JSON instead of lines.") var json = false

        func run() async throws {
            let statuses = (status ?? "").split(separator: ",").map { RunStatus(rawValue: $0.uppercased()) }
            let filter = RunsClient.Filter(job: job, statuses: statuses, limit: limit)
            var page = try await endpoints.runs.list(filter)
            var runs = page.runs
            var pages = 1
            while all, let cursor = page.nextCursor {
                // Progress on standard error (standard output stays the list, or the JSON).
                FileHandle.standardError.write(Data("baton: \(runs.count) runs in \(pages) pages so far, reading on…\n".utf8))
                page = try await endpoints.runs.list(filter, after: cursor)
                runs += page.runs
                pages += 1
            }
            if pages > 1 { FileHandle.standardError.write(Data("baton: \(runs.count) runs in \(pages) pages\n".utf8)) }
            if json { return try printJSON(runs) }
            for run in runs {
                print("\(run.id)  \(run.status.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0))  \(run.jobId)@\(run.jobVersion)  \(run.createdAt.formatted(.iso8601))")
            }
            if !all, page.nextCursor != nil { print("… more: --all, or --limit up to 100") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A run as a tree of its tasks, with its logs and output.")
        @OptionGroup var endpoints: Endpoints
        @Argument(help: "The run id.") var id: String
        @Flag(help: "JSON instead of the tree.") var json = false

        func run() async throws {
            guard let run = try await endpoints.runs.run(id: id) else { throw ValidationError("no run with id '\(id)'") }
            if json { return try printJSON(run) }
            print(RunTree.render(run))
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a run.")
        @OptionGroup var endpoints: Endpoints
        @Argument(help: "The run id.") var id: String
        func run() async throws {
            let answer = try await endpoints.runs.cancel(runId: id)
            print(answer.canceled ? "\(id): canceled" : "\(id): already \(answer.status.rawValue)")
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a new run of the run's job version with its payload.")
        @OptionGroup var endpoints: Endpoints
        @Argument(help: "The run id.") var id: String
        func run() async throws {
            let answer = try await endpoints.runs.replay(runId: id)
            print("\(answer.runId) replays \(answer.replayOf) (\(answer.jobVersion))")
        }
    }
}

/// A run as a terminal tree: subtasks under their parents.
enum RunTree {
    static func render(_ run: RunDetails) -> String {
        var lines = ["\(run.id)  \(run.status.rawValue)  \(run.jobId)@\(run.jobVersion)  event \(run.event.name) (\(run.event.id))"]
        if let replayOf = run.replayOf { lines.append("replays \(replayOf)") }
        if let parent = run.parentRun { lines.append("child of \(parent.runId)") }
        if let children = run.childRuns, !children.isEmpty { lines.append("children: \(children.joined(separator: ", "))") }
        if let status = run.latestStatus {
            lines.append("status: \(status.label)" + (status.state.map { " (\($0.rawValue))" } ?? ""))
        }
        let children = Dictionary(grouping: run.tasks, by: \.parentId)
        func add(_ parent: String?, _ indent: String) {
            let tasks = children[parent] ?? []
            for (index, task) in tasks.enumerated() {
                let last = index == tasks.count - 1
                var line = indent + (last ? "└─ " : "├─ ") + "\(task.name ?? task.key)  \(task.status.rawValue)"
                if task.attempts > 1 { line += "  attempts \(task.attempts)" }
                if let error = task.error { line += "  error: \(error)" }
                lines.append(line)
                add(task.id, indent + (last ? "   " : "│  "))
            }
        }
        add(nil, "")
        for log in run.logs { lines.append("log \(log.level): \(log.message)") }
        if let output = run.output { lines.append("output: \(String(decoding: (try? BatonJSON.encoder.encode(output)) ?? Data(), as: UTF8.self))") }
        if let error = run.error { lines.append("error: \(error)") }
        return lines.joined(separator: "\n")
    }
}

// MARK: - baton events, baton jobs

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send events.", subcommands: [Send.self])

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send an event to the ingester; prints its id.")
        @OptionGroup var endpoints: Endpoints
        @Option(help: "The event's name.") var name: String
        @Option(help: "The payload, JSON.") var payload = "{}"
        @Option(help: "The event's id (sending an id again starts nothing new).") var id: String?

        func run() async throws {
            let value: JSONValue
            do {
                value = try BatonJSON.decoder.decode(JSONValue.self, from: Data(payload.utf8))
            } catch {
                throw ValidationError("--payload is not JSON: \(error)")
            }
            let client = BatonClient.http(baseURL: endpoints.ingester, apiKey: endpoints.apiKey)
            print(try await client.sendEvent(name: name, payload: value, id: id))
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Registered jobs.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The jobs the dispatcher knows.")
        @OptionGroup var endpoints: Endpoints
        @Flag(help: "JSON instead of lines.") var json = false

        func run() async throws {
            let jobs = try await DispatcherClient(baseURL: endpoints.dispatcher, apiKey: endpoints.apiKey).jobs()
            if json { return try printJSON(jobs) }
            for job in jobs { print("\(job.slug)  \(job.version)  \(job.name)  trigger: \(job.trigger.summary)") }
        }
    }
}
