import BatonProtocol
import Foundation
import Histogram

/// A phase of a load run (`--phases`).
enum Phase: String, Codable, Sendable, CaseIterable {
    case sequential, floor, io, burst
}

/// How the burst sends its events (`--send-via`).
enum SendPath: String, Codable, Sendable, CaseIterable {
    /// `POST /api/v1/events/batch` on the ingester, several requests at once.
    case http
    /// `EventEnvelope` JSON produced straight to the events topic, acknowledgements awaited in bulk.
    case kafka
}

/// The checked flags of a load run.
struct LoadSettings: Codable, Sendable {
    var runs: Int
    var tasks: Int
    var taskMilliseconds: Int
    var concurrency: Int
    var sequentialRuns: Int
    var warmupRuns: Int
    var ioRuns: Int
    var ioTaskMilliseconds: Int
    var partitions: Int
    var phases: [Phase]
    var sendVia: SendPath
    var senders: Int
    var burstDeadlineSeconds: Int
    var floorProduces: Int
    var floorHops: Int
    var logLevel: String
    /// Instances of each service (and job services).
    var instances: Int
    /// `sqlite` or `postgres`.
    var store: String
    var binDirectory: String

    /// The settings as command-line flags, for the report's header.
    var flags: String {
        "--runs \(runs) --tasks \(tasks) --task-ms \(taskMilliseconds) --concurrency \(concurrency) --partitions \(partitions) "
            + "--sequential-runs \(sequentialRuns) --warmup-runs \(warmupRuns) --io-runs \(ioRuns) --io-task-ms \(ioTaskMilliseconds) "
            + "--phases \(phases.map(\.rawValue).joined(separator: ",")) --send-via \(sendVia.rawValue) --senders \(senders) "
            + "--burst-deadline \(burstDeadlineSeconds) --floor-produces \(floorProduces) --floor-hops \(floorHops) --log-level \(logLevel) "
            + "--instances \(instances) --store \(store)"
    }
}

/// What went wrong in a load run, and what to do about it.
enum LoadError: Error, CustomStringConvertible {
    /// The environment is not ready (binaries, Tansu).
    case setup(String)
    /// The ingester (or the broker) did not accept an event.
    case rejected(String)
    /// A run ended in another status than COMPLETED.
    case runFailed(id: String, status: String, error: String)
    /// Runs did not complete before their deadline.
    case deadline(String)
    /// The Kafka floor could not be measured.
    case floor(String)

    var description: String {
        switch self {
        case .setup(let message):
            "not ready to run: \(message)"
        case .rejected(let message):
            "an event was not accepted: \(message); see the ingester's log above"
        case .runFailed(let id, let status, let error):
            "run \(id) ended \(status) instead of COMPLETED: \(error); see the job service's log above"
        case .deadline(let message):
            "\(message); the stack is too slow for this load or lost runs: lower the load (or raise --burst-deadline) and read the logs above"
        case .floor(let message):
            "the Kafka floor could not be measured: \(message); check that Tansu is running and LD_LIBRARY_PATH has librdkafka 2.16"
        }
    }
}

/// Writes `message` to stderr: progress and diagnostics; stdout carries only the table.
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Histogram helpers: every latency is recorded in microseconds.
enum Stats {
    /// One hour, in microseconds: the largest latency recorded.
    static let highestMicroseconds: UInt64 = 3_600_000_000

    /// An empty histogram of microseconds.
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: highestMicroseconds)
    }

    /// `duration` in whole microseconds, clamped to what a histogram records.
    static func microseconds(_ duration: Duration) -> UInt64 {
        clamp((duration / .microseconds(1)).rounded())
    }

    /// The time from `start` to `end` in whole microseconds (0 when `end` is earlier).
    static func microseconds(from start: Date, to end: Date) -> UInt64 {
        clamp((end.timeIntervalSince(start) * 1_000_000).rounded())
    }

    private static func clamp(_ value: Double) -> UInt64 {
        value <= 0 ? 0 : UInt64(min(value, Double(highestMicroseconds)))
    }
}

/// Percentiles of a histogram of microseconds, in milliseconds.
struct Percentiles: Codable, Sendable {
    var count: UInt64
    var p50: Double
    var p90: Double
    var p99: Double
    var maximum: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        p50 = Double(histogram.valueAtPercentile(50)) / 1000
        p90 = Double(histogram.valueAtPercentile(90)) / 1000
        p99 = Double(histogram.valueAtPercentile(99)) / 1000
        maximum = Double(histogram.max) / 1000
    }
}

/// The server-side timings of a set of completed runs.
struct PhaseResult: Codable, Sendable {
    var runs: Int
    /// Earliest event timestamp (accepted by the ingester) of the set.
    var firstAccepted: Date
    /// Latest `completedAt` of the set.
    var lastCompleted: Date
    /// From `firstAccepted` to `lastCompleted`, in seconds.
    var wallSeconds: Double
    /// `runs / wallSeconds`.
    var runsPerSecond: Double
    /// Event accepted → run completed.
    var endToEnd: Percentiles
    /// Event accepted → run created (dispatcher).
    var acceptedToCreated: Percentiles
    /// Run created → its first task started (job service).
    var createdToFirstTask: Percentiles
    /// First task started → run completed.
    var firstTaskToCompleted: Percentiles
    /// Wall time on this machine's clock from the first send to the last run seen completed.
    var clientSeconds: Double
    /// Per run, from sending to seeing it COMPLETED (sequential phase only).
    var clientObserved: Percentiles?

    /// Computes the timings of `runs`, which must all have completed.
    init(runs: [RunDetails], clientSeconds: Double, clientObserved: Percentiles? = nil) throws {
        guard !runs.isEmpty else { throw LoadError.deadline("no run completed, so there is nothing to measure") }
        var endToEnd = Stats.histogram(), toCreated = Stats.histogram(), toFirstTask = Stats.histogram(), toCompleted = Stats.histogram()
        var first = Date.distantFuture
        var last = Date.distantPast
        for run in runs {
            guard let completed = run.completedAt else {
                throw LoadError.runFailed(id: run.id, status: run.status.rawValue, error: "the runs API shows no completedAt")
            }
            let accepted = run.event.timestamp
            let firstTask = run.tasks.compactMap(\.startedAt).min() ?? completed
            endToEnd.record(Stats.microseconds(from: accepted, to: completed))
            toCreated.record(Stats.microseconds(from: accepted, to: run.createdAt))
            toFirstTask.record(Stats.microseconds(from: run.createdAt, to: firstTask))
            toCompleted.record(Stats.microseconds(from: firstTask, to: completed))
            first = min(first, accepted)
            last = max(last, completed)
        }
        self.runs = runs.count
        firstAccepted = first
        lastCompleted = last
        let wall = max(0, last.timeIntervalSince(first))
        wallSeconds = wall
        runsPerSecond = Double(runs.count) / max(wall, 0.001)
        self.endToEnd = Percentiles(endToEnd)
        acceptedToCreated = Percentiles(toCreated)
        createdToFirstTask = Percentiles(toFirstTask)
        firstTaskToCompleted = Percentiles(toCompleted)
        self.clientSeconds = clientSeconds
        self.clientObserved = clientObserved
    }
}

/// The Kafka floor on the stack's broker.
struct FloorResult: Codable, Sendable {
    /// One `send` (acks=all, linger 0) until acknowledged.
    var ackedProduce: Percentiles
    /// One record from produce until a consumer of its own group receives it.
    var hop: Percentiles
    /// Size of each record's value.
    var recordBytes: Int
}

/// The peak resident set (VmHWM) of one process.
struct PeakMemory: Codable, Sendable {
    var process: String
    /// `nil` when /proc had no status for it (the process is gone).
    var megabytes: Double?
    /// Whether the ≤ 150 MB target applies (Baton processes; the broker is for information).
    var isBaton: Bool

    /// VmHWM of `pid` from /proc, in MB (10^6 bytes).
    static func read(pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let kibibytes = Double(fields[1]) { return kibibytes * 1024 / 1_000_000 }
        }
        return nil
    }
}

/// Sequential latency against the Kafka floor.
struct Ratios: Codable, Sendable {
    /// Sequential e2e p50 / hop p50.
    var sequentialOverHop: Double
    /// 3 hops + 2 × tasks acked produces, from the p50s, in ms: the least a run can take.
    var floorMilliseconds: Double
    /// Sequential e2e p50 / `floorMilliseconds`.
    var sequentialOverFloor: Double
}

/// Everything a load run measured; printed as one table, optionally written as JSON.
struct LoadReport: Codable, Sendable {
    var date: Date
    var host: String
    var settings: LoadSettings
    var sequential: PhaseResult?
    var io: PhaseResult?
    var burst: PhaseResult?
    var floor: FloorResult?
    var peakMemory: [PeakMemory] = []
    var ratios: Ratios?

    init(date: Date, settings: LoadSettings) {
        self.date = date
        self.settings = settings
        let info = ProcessInfo.processInfo
        host = "\(info.activeProcessorCount) cores, \(info.physicalMemory / 1_000_000) MB RAM, \(info.operatingSystemVersionString)"
    }

    /// Fills ``ratios`` when both the sequential phase and the floor were measured.
    mutating func computeRatios() {
        guard let sequential, let floor, floor.hop.p50 > 0, floor.ackedProduce.p50 > 0 else { return }
        let floorMilliseconds = 3 * floor.hop.p50 + Double(2 * settings.tasks) * floor.ackedProduce.p50
        ratios = Ratios(sequentialOverHop: sequential.endToEnd.p50 / floor.hop.p50, floorMilliseconds: floorMilliseconds,
                        sequentialOverFloor: sequential.endToEnd.p50 / floorMilliseconds)
    }

    /// The report as a markdown table with the date, flags and host on top.
    func table() -> String {
        var lines = ["# baton-load \(BatonJSON.formatDate(date))", "", "flags: `\(settings.flags)`  ",
                     "host: \(host); BATON_BIN_DIR=\(settings.binDirectory)", "",
                     "| workload | result | target |", "|---|---|---|"]
        func row(_ workload: String, _ result: String, _ target: String = "—") {
            lines.append("| \(workload) | \(result) | \(target) |")
        }
        func ms(_ value: Double) -> String { String(format: "%.2f ms", value) }
        func verdict(_ met: Bool) -> String { met ? "met" : "**missed**" }
        func stages(_ result: PhaseResult) -> String {
            "accepted→created \(ms(result.acceptedToCreated.p50)) · created→first task \(ms(result.createdToFirstTask.p50))"
                + " · first task→completed \(ms(result.firstTaskToCompleted.p50))"
        }
        let shape = "\(settings.tasks) task\(settings.tasks == 1 ? "" : "s") × \(settings.taskMilliseconds) ms"

        if let sequential {
            let e2e = sequential.endToEnd
            row("sequential e2e: \(sequential.runs) runs of \(shape), one at a time (accepted → completed)",
                "p50 \(ms(e2e.p50)) · p90 \(ms(e2e.p90)) · p99 \(ms(e2e.p99)) · max \(ms(e2e.maximum))",
                "p50 ≤ 15 ms, p99 ≤ 30 ms: \(verdict(e2e.p50 <= 15 && e2e.p99 <= 30))")
            row("sequential stages (medians)", stages(sequential))
            if let observed = sequential.clientObserved {
                row("sequential as the client saw it (send → COMPLETED seen, 5 ms polls)", "p50 \(ms(observed.p50)) · p99 \(ms(observed.p99))")
            }
        }
        if let burst {
            row("burst throughput: \(burst.runs) runs of \(shape) via \(settings.sendVia.rawValue), \(settings.concurrency) concurrent slices",
                String(format: "%.0f runs/s (%.2f s from first accepted to last completed)", burst.runsPerSecond, burst.wallSeconds),
                "≥ 1000 runs/s: \(verdict(burst.runsPerSecond >= 1000))")
            row("burst latency (accepted → completed)",
                "p50 \(ms(burst.endToEnd.p50)) · p99 \(ms(burst.endToEnd.p99)) · max \(ms(burst.endToEnd.maximum))")
            row("burst stages (medians)", stages(burst))
        }
        if let io {
            row("I/O-bound: \(io.runs) runs of 1 task × \(settings.ioTaskMilliseconds) ms, sent at once",
                String(format: "%.2f s from first accepted to last completed · %.0f runs/s", io.wallSeconds, io.runsPerSecond)
                    + " · p50 \(ms(io.endToEnd.p50)) · p99 \(ms(io.endToEnd.p99))",
                "≤ 3 s: \(verdict(io.wallSeconds <= 3))")
        }
        for memory in peakMemory {
            let value = memory.megabytes.map { String(format: "%.1f MB", $0) } ?? "n/a (no /proc entry)"
            row("peak RSS (VmHWM) \(memory.process)", value,
                memory.isBaton ? "≤ 150 MB: \(verdict((memory.megabytes ?? .infinity) <= 150))" : "— (for information)")
        }
        if let floor {
            row("Kafka hop: produce → consumed, \(floor.hop.count) one at a time, linger 0",
                "p50 \(ms(floor.hop.p50)) · p99 \(ms(floor.hop.p99))")
            row("Kafka acked produce: \(floor.ackedProduce.count) one at a time × \(floor.recordBytes) B, linger 0",
                "p50 \(ms(floor.ackedProduce.p50)) · p99 \(ms(floor.ackedProduce.p99))")
        }
        if let ratios {
            row("ratio sequential e2e p50 / hop p50", String(format: "%.1f×", ratios.sequentialOverHop))
            row("floor of a \(settings.tasks)-task run: at least 3 hops + \(2 * settings.tasks) acked produces (p50s)",
                "\(ms(ratios.floorMilliseconds)); sequential e2e p50 is " + String(format: "%.2f×", ratios.sequentialOverFloor) + " of it")
        }
        return lines.joined(separator: "\n")
    }

    /// Writes the report as pretty-printed JSON (dates in RFC 3339).
    func writeJSON(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(self).write(to: url)
    }
}
