import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("Version pinning over a real broker", .tags(.integration))
struct VersionPinningTests {
    private func greet(_ stack: BatonStack, _ name: String, pause: Double) async throws -> String {
        let eventId = "evt_greet_\(name)"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"greet.requested","payload":{"name":"\#(name)","pauseSeconds":\#(pause)}}"#).status == 202)
        return Identifiers.runID(eventID: eventId, jobSlug: "versioned-greeter")
    }

    @Test("1.0.0 runs that are waiting when 2.0.0 is deployed beside it finish on 1.0.0 workers; new runs are 2.0.0 and run only there; then 1.0.0 drains and stops cleanly")
    func deployWhileOldRunsDrain() async throws {
        let stack = try await BatonStack.start(label: "versions")
        let old = try await stack.startExampleJobs(environment: ["EXAMPLE_GREETER_VERSION": "1.0.0"], jobs: ["versioned-greeter"])
        let suffix = UUID().uuidString.prefix(6)
        var runs: [String: String] = [:]  // run id → version it must run on
        for index in 0..<4 { runs[try await greet(stack, "old\(index)-\(suffix)", pause: 5)] = "1.0.0" }
        _ = try await eventually("the 1.0.0 runs to say hello and wait", deadline: .seconds(60), every: .milliseconds(100)) { () -> Bool? in
            for id in runs.keys { guard try await stack.run(id)?.status == .waiting else { return nil } }
            return true
        }
        try await stack.startExampleJobs(environment: ["EXAMPLE_GREETER_VERSION": "2.0.0"], jobs: ["versioned-greeter"])
        _ = try await eventually("the dispatcher to know 2.0.0", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/versioned-greeter").body.contains(#""version":"2.0.0""#) ? true : nil
        }
        for index in 0..<4 { runs[try await greet(stack, "new\(index)-\(suffix)", pause: 0.2)] = "2.0.0" }
        for (id, version) in runs {
            let run = try await stack.finishedRun(id, deadline: .seconds(90))
            #expect(run.status == .completed && run.jobVersion == version, "\(id): \(run.status) \(run.jobVersion)")
            #expect(run.output.map { "\($0)" }?.contains("by v\(version)") == true, "\(String(describing: run.output))")
        }
        // Every line of a run names the version it was created with: no worker ran another version's run.
        let lines = stack.outboxLines().filter { $0.hasPrefix("greet ") }
        for (id, version) in runs {
            let mine = lines.filter { $0.contains("run=\(id) ") }
            #expect(mine.count >= 2 && mine.allSatisfy { $0.contains(" v\(version) run=") }, "\(id) (\(version)): \(mine)")
        }
        // Drained: the 1.0.0 service has nothing left and stops cleanly.
        #expect(try await stack.stop(old, with: .terminate(deadline: .seconds(30))) == 0)
        try await stack.stop()
    }
}
