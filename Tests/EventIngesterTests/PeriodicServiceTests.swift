import BatonService
import BatonTesting
import Logging
import Synchronization
import Testing

/// How many rounds a periodic service ran.
final class Rounds: Sendable {
    let count = Atomic<Int>(0)
}

@Suite("Periodic service loop")
struct PeriodicServiceTests {
    @Test("cancelled, a periodic service stops instead of spinning on its work's CancellationError")
    func stopsWhenCancelled() async throws {
        let rounds = Rounds()
        let service = PeriodicService("test loop", every: .milliseconds(10), logger: Logger(label: "test")) {
            rounds.count.add(1, ordering: .relaxed)
            try await Task.sleep(for: .seconds(30))  // throws CancellationError once cancelled, as async store calls do
        }
        let task = Task { try await service.run() }
        _ = try await eventually("the first round", deadline: .seconds(5)) { rounds.count.load(ordering: .relaxed) >= 1 ? true : nil }
        task.cancel()
        try await Task.sleep(for: .milliseconds(300))
        // Before the fix this loop ran thousands of rounds per second once cancelled.
        #expect(rounds.count.load(ordering: .relaxed) <= 2, "\(rounds.count.load(ordering: .relaxed)) rounds after the cancel")
    }
}
