import ArgumentParser
import CheckpointFixture
import Foundation
import Histogram
import Synchronization

/// Load generator: the per-task checkpoint cost of `io.runTask` next to the raw durable-produce
/// cost on the same embedded broker, as percentiles (HdrHistogram, microseconds) and a ratio.
@main
struct CheckpointCost: AsyncParsableCommand {
    @Option(help: "Tasks to run (and raw sends to make), after the warm-up.")
    var count = 2000

    @Option(help: "Warm-up iterations of each, not recorded.")
    var warmup = 200

    func run() async throws {
        guard count > 0, warmup >= 0 else { throw ValidationError("--count must be positive and --warmup not negative") }
        let fixture = try await CheckpointFixture.start()
        let clock = ContinuousClock()

        for _ in 0..<warmup { try await fixture.rawSend() }
        var raw = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        for _ in 0..<count {
            let start = clock.now
            try await fixture.rawSend()
            _ = raw.record(Self.microseconds(clock.now - start))
        }

        try await fixture.runTasks(warmup) { _ in }
        let tasks = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000))
        try await fixture.runTasks(count) { duration in
            _ = tasks.withLock { $0.record(Self.microseconds(duration)) }
        }
        let taskHistogram = tasks.withLock { $0 }
        try await fixture.stop()

        print(Self.line("raw durable produce (acks=all, linger.ms=0)", raw))
        print(Self.line("io.runTask checkpoint (2 acked run events)", taskHistogram))
        let ratio50 = Double(taskHistogram.valueAtPercentile(50)) / Double(max(1, raw.valueAtPercentile(50)))
        let ratio99 = Double(taskHistogram.valueAtPercentile(99)) / Double(max(1, raw.valueAtPercentile(99)))
        print(String(format: "ratio io.runTask / raw produce: p50 %.2fx, p99 %.2fx", ratio50, ratio99))
    }

    static func microseconds(_ duration: Duration) -> UInt64 {
        UInt64(max(0, (duration / .microseconds(1)).rounded()))
    }

    static func line(_ label: String, _ histogram: Histogram<UInt64>) -> String {
        func ms(_ percentile: Double) -> String { String(format: "%.3f", Double(histogram.valueAtPercentile(percentile)) / 1000) }
        return "\(label): n=\(histogram.totalCount) p50=\(ms(50)) ms p90=\(ms(90)) ms p99=\(ms(99)) ms max=\(String(format: "%.3f", Double(histogram.max) / 1000)) ms"
    }
}
