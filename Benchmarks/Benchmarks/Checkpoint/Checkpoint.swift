import Benchmark
import CheckpointFixture
import Synchronization

/// The fixture shared by the benchmarks of this suite, started once in `setup`.
final class FixtureBox: Sendable {
    let fixture = Mutex<CheckpointFixture?>(nil)
    var value: CheckpointFixture { fixture.withLock { $0! } }
}

let box = FixtureBox()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(10), maxIterations: 20)

    Benchmark.setup = {
        let fixture = try await CheckpointFixture.start()
        box.fixture.withLock { $0 = fixture }
    }
    Benchmark.teardown = {
        try await box.value.stop()
    }

    Benchmark("raw durable produce ×100") { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<100 { try await box.value.rawSend() }
        }
    }

    Benchmark("io.runTask checkpoint ×100") { benchmark in
        for _ in benchmark.scaledIterations {
            try await box.value.runTasks(100) { _ in }
        }
    }
}
