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

    @Test("woken, a periodic service runs a round at once instead of at its interval; signals during a round make one more; it still rounds on its interval and stops when cancelled")
    func wakeUp() async throws {
        let rounds = Rounds()
        let wakeUp = WakeUp()
        let service = PeriodicService("woken loop", every: .seconds(30), wakeUp: wakeUp, logger: Logger(label: "test")) {
            rounds.count.add(1, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(200))
        }
        let task = Task { try await service.run() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(rounds.count.load(ordering: .relaxed) == 0, "no round before a signal or the interval")
        wakeUp.signal()
        _ = try await eventually("a round after the signal", deadline: .seconds(5)) { rounds.count.load(ordering: .relaxed) >= 1 ? true : nil }
        for _ in 0..<5 { wakeUp.signal() }
        try await Task.sleep(for: .milliseconds(900))
        #expect(rounds.count.load(ordering: .relaxed) == 2, "five signals during a round make one more round: \(rounds.count.load(ordering: .relaxed))")
        task.cancel()
        try await Task.sleep(for: .milliseconds(300))
        wakeUp.signal()
        try await Task.sleep(for: .milliseconds(300))
        #expect(rounds.count.load(ordering: .relaxed) == 2, "no round once cancelled")
        let interval = PeriodicService("ticking loop", every: .milliseconds(50), wakeUp: WakeUp(), logger: Logger(label: "test")) {
            rounds.count.add(1, ordering: .relaxed)
        }
        let ticking = Task { try await interval.run() }
        _ = try await eventually("rounds on the interval alone", deadline: .seconds(5)) { rounds.count.load(ordering: .relaxed) >= 5 ? true : nil }
        ticking.cancel()
    }
}
