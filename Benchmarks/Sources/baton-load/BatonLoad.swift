// baton-load: a load generator for the embedded Baton stack (release build).
//
// Run it from the repository root (/work/main):
//
//   eval "$(deploy/local/setup --print-env)" && swift build -c release && \
//     BATON_BIN_DIR=$(swift build -c release --show-bin-path) \
//     .build/release/baton-load --runs 20000 --tasks 3 --task-ms 0 --concurrency 100
//
// (The target is declared in the main Package.swift, so the release build of the services
// builds it too.)
//
// It starts Tansu and the three services from $BATON_BIN_DIR on free loopback ports plus one
// `baton-example-jobs` job service, drives the `many-steps` job (event `steps.start`) through the
// phases chosen with `--phases` (in the order given):
//   sequential  --sequential-runs runs one at a time, each of --tasks tasks of --task-ms ms;
//   floor       the Kafka floor on the same Tansu: acked produce and produce→consume hop;
//   io          --io-runs runs of 1 task of --io-task-ms ms, all sent at once;
//   burst       --runs runs sent as fast as possible (--send-via http|kafka);
// and prints ONE markdown table on stdout (progress goes to stderr); `--json <path>` also writes
// the raw numbers. Latencies come from the servers' own timestamps (millisecond resolution): the
// event's timestamp as the ingester accepted it (it stamps events sent without one), the run's
// createdAt (dispatcher), its first task's startedAt and its completedAt (job service).
// A run that fails, or a deadline that passes, ends the program with a non-zero status.

import ArgumentParser
import Foundation

/// `baton-load`: starts the embedded stack and measures sequential latency, burst throughput,
/// an I/O-bound workload, peak memory per process and the Kafka floor in one run.
@main
struct BatonLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-load",
        abstract: "Drives the embedded Baton stack and prints latency, throughput, memory and the Kafka floor as one table.",
        discussion: """
            Needs BATON_BIN_DIR (the main package's release build: `swift build -c release --show-bin-path`) \
            and the environment `deploy/local/setup --print-env` prints (librdkafka 2.16, Tansu).
            """)

    @Option(help: "Runs of the burst phase.")
    var runs = 20_000

    @Option(help: "Tasks per run in the sequential and burst phases.")
    var tasks = 3

    @Option(name: .customLong("task-ms"), help: "How long each task works, in milliseconds (sequential and burst).")
    var taskMilliseconds = 0

    @Option(help: "Slices the job service runs at once (WORKER_MAX_CONCURRENT_SLICES).")
    var concurrency = 100

    @Option(name: .customLong("sequential-runs"), help: "Runs of the sequential phase, recorded.")
    var sequentialRuns = 50

    @Option(name: .customLong("warmup-runs"), help: "Sequential runs before those recorded.")
    var warmupRuns = 5

    @Option(name: .customLong("io-runs"), help: "Runs of the I/O-bound phase (1 task each).")
    var ioRuns = 200

    @Option(name: .customLong("io-task-ms"), help: "How long the I/O-bound task sleeps, in milliseconds.")
    var ioTaskMilliseconds = 500

    @Option(help: "KAFKA_TOPIC_PARTITIONS of the stack.")
    var partitions = 3

    @Option(help: "Phases to run, comma-separated, run in the order given; any of sequential, floor, io, burst.")
    var phases = "sequential,floor,io,burst"

    @Option(name: .customLong("send-via"), help: "How the burst sends its events: http (ingester batch endpoint) or kafka (EventEnvelope straight to the events topic).")
    var sendVia: SendPath = .http

    @Option(help: "Concurrent batch requests of 100 events in the HTTP burst.")
    var senders = 8

    @Option(name: .customLong("burst-deadline"), help: "Seconds the burst may take to complete, sending included.")
    var burstDeadlineSeconds = 600

    @Option(name: .customLong("floor-produces"), help: "Acked produces measured for the Kafka floor.")
    var floorProduces = 2000

    @Option(name: .customLong("floor-hops"), help: "Produce→consume hops measured for the Kafka floor.")
    var floorHops = 500

    @Option(name: .customLong("log-level"), help: "LOG_LEVEL of the three services (the job service logs at least at info).")
    var logLevel = "warning"

    @Option(help: "Instances of each service, and job services (more than 1 needs --store postgres).")
    var instances = 1

    @Option(help: "Where the dispatcher and the task-result service keep their state: sqlite or postgres (a PostgreSQL server of the tool's own on a loopback port).")
    var store = "sqlite"

    @Option(name: .customLong("json"), help: "Also write the raw numbers as JSON to this file.")
    var jsonPath: String?

    func validate() throws {
        _ = try makeSettings()
    }

    func run() async throws {
        let settings = try makeSettings()
        try Preflight.check()
        let report = try await LoadRunner.run(settings: settings)
        print(report.table())
        if let jsonPath {
            try report.writeJSON(to: URL(fileURLWithPath: jsonPath))
            progress("raw numbers written to \(jsonPath)")
        }
    }

    /// The flags, checked, as the settings the runner uses.
    /// - Throws: `ValidationError` naming the flag that is out of range.
    func makeSettings() throws -> LoadSettings {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw ValidationError(message) }
        }
        try require(runs >= 1, "--runs must be at least 1, got \(runs)")
        try require((1...10_000).contains(tasks), "--tasks must be between 1 and 10000 (the many-steps job's limit), got \(tasks)")
        try require(taskMilliseconds >= 0, "--task-ms must not be negative, got \(taskMilliseconds)")
        try require(concurrency >= 1, "--concurrency must be at least 1, got \(concurrency)")
        try require(sequentialRuns >= 1, "--sequential-runs must be at least 1, got \(sequentialRuns)")
        try require(warmupRuns >= 0, "--warmup-runs must not be negative, got \(warmupRuns)")
        try require(ioRuns >= 1, "--io-runs must be at least 1, got \(ioRuns)")
        try require(ioTaskMilliseconds >= 0, "--io-task-ms must not be negative, got \(ioTaskMilliseconds)")
        try require(partitions >= 1, "--partitions must be at least 1, got \(partitions)")
        try require(senders >= 1, "--senders must be at least 1, got \(senders)")
        try require(burstDeadlineSeconds >= 1, "--burst-deadline must be at least 1 second, got \(burstDeadlineSeconds)")
        try require(floorProduces >= 1 && floorHops >= 1, "--floor-produces and --floor-hops must be at least 1")
        try require((1...4).contains(instances), "--instances must be between 1 and 4, got \(instances)")
        try require(["sqlite", "postgres"].contains(store), "--store must be sqlite or postgres, got '\(store)'")
        try require(instances == 1 || store == "postgres",
                    "--instances \(instances) needs --store postgres: a SQLite store serves one dispatcher and one task-result service")
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        try require(levels.contains(logLevel), "--log-level must be one of \(levels.joined(separator: ", ")), got '\(logLevel)'")
        var chosen: [Phase] = []
        for name in phases.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let phase = Phase(rawValue: name) else {
                throw ValidationError("unknown phase '\(name)' in --phases; choose from \(Phase.allCases.map(\.rawValue).joined(separator: ","))")
            }
            if !chosen.contains(phase) { chosen.append(phase) }
        }
        try require(!chosen.isEmpty, "--phases names no phase; choose from \(Phase.allCases.map(\.rawValue).joined(separator: ","))")
        return LoadSettings(
            runs: runs, tasks: tasks, taskMilliseconds: taskMilliseconds, concurrency: concurrency,
            sequentialRuns: sequentialRuns, warmupRuns: warmupRuns, ioRuns: ioRuns, ioTaskMilliseconds: ioTaskMilliseconds,
            partitions: partitions, phases: chosen, sendVia: sendVia, senders: senders, burstDeadlineSeconds: burstDeadlineSeconds,
            floorProduces: floorProduces, floorHops: floorHops, logLevel: logLevel, instances: instances, store: store,
            binDirectory: ProcessInfo.processInfo.environment["BATON_BIN_DIR"] ?? "")
    }
}

extension SendPath: ExpressibleByArgument {}
