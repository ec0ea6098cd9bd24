import BatonTesting
import Testing

@Suite("Chaos", .tags(.integration, .fault))
struct ChaosTests {
    @Test("50 runs while 5 random Baton processes are SIGKILLed and restarted: nothing lost, duplicated or re-executed")
    func chaos() async throws {
        let report = try await ChaosHarness(runs: 50, kills: 5, seed: 1125, log: { print($0) }).run()
        print(report.line)
        #expect(report.kills == 5)
        #expect(report.runs >= 100, "every event accepted: \(report.runs / 2) of 50")
        #expect(report.completed == report.runs)
        #expect(report.lostEvents == 0)
        #expect(report.duplicateRuns == 0)
        #expect(report.reexecutedAckedTasks == 0)
        #expect(report.timersFiredTwice == 0)
    }
}
