import BatonProtocol
import BatonTesting
import Foundation
import Testing

/// What the side-effect file and the store say about one run's steps.
struct StepAudit {
    var executions = 0
    /// Steps executed again after the execution whose result was acknowledged and stored.
    var reexecutedAcknowledged: [Int] = []
    var missing: [Int] = []

    /// Checks each step: the stored output (an execution id) must be the last execution of
    /// that step in the outbox; executions before it are allowed (never acknowledged).
    init(runId: String, steps: Int, outbox: [String], run: RunDetails) {
        var executionsByStep: [Int: [String]] = [:]
        for line in outbox {
            let parts = line.split(separator: " ")
            guard parts.count == 4, parts[0] == "step", parts[1] == runId, let index = Int(parts[2]) else { continue }
            executionsByStep[index, default: []].append(String(parts[3]))
            executions += 1
        }
        let stored = Dictionary(run.tasks.map { ($0.key, $0.output?.stringValue) }, uniquingKeysWith: { first, _ in first })
        for index in 0..<steps {
            guard let storedExecution = stored["step \(index)"] ?? nil, let seen = executionsByStep[index],
                  let position = seen.firstIndex(of: storedExecution)
            else {
                missing.append(index)
                continue
            }
            if position != seen.count - 1 { reexecutedAcknowledged.append(index) }
        }
    }
}

@Suite("Invariant 2 under faults", .tags(.integration, .fault), .serialized)
struct InvariantUnderFaultsTests {
    @Test("job services SIGKILLed at seeded random points: every run completes, no acknowledged task runs again",
          arguments: [UInt64(20261125)])
    func killJobServicesRepeatedly(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let stack = try await BatonStack.start(label: "faults")
        var worker = try await stack.startExampleJobs()
        let runs = 3
        let steps = 40
        var runIds: [String] = []
        for index in 0..<runs {
            let eventId = "evt_steps_\(seed)_\(index)_\(UUID().uuidString.prefix(6))"
            let body = #"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":\#(steps),"stepMilliseconds":15}}"#
            #expect(try await stack.sendEvent(body).status == 202)
            runIds.append(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"))
        }
        let kills = 4
        for _ in 0..<kills {
            // A fault schedule, not a wait for a condition: kill at a random point of the work.
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...900, using: &random)))
            try await worker.kill9()
            worker = try await stack.startExampleJobs()
        }
        var audits: [String: StepAudit] = [:]
        for runId in runIds {
            let run = try await stack.finishedRun(runId, deadline: .seconds(120))
            #expect(run.status == .completed, "\(run.error ?? "")")
            #expect(run.output == .int(Int64(steps)))
            audits[runId] = StepAudit(runId: runId, steps: steps, outbox: stack.outboxLines(), run: run)
        }
        let reexecuted = audits.values.map(\.reexecutedAcknowledged.count).reduce(0, +)
        let missing = audits.values.map(\.missing.count).reduce(0, +)
        let executions = audits.values.map(\.executions).reduce(0, +)
        print("invariant 2 (seed \(seed)): runs: \(runs), steps: \(runs * steps), kills: \(kills), step executions: \(executions), re-executed acked tasks: \(reexecuted), missing: \(missing)")
        for (runId, audit) in audits {
            #expect(audit.reexecutedAcknowledged.isEmpty, "run \(runId): steps \(audit.reexecutedAcknowledged) ran again after their result was acknowledged")
            #expect(audit.missing.isEmpty, "run \(runId): steps \(audit.missing) have no matching side effect")
        }
        try await stack.stop()
    }

    @Test("job services join and leave while runs are in flight (partitions revoked from live members): no acknowledged task runs again")
    func scaleOutAndIn() async throws {
        var random = SeededGenerator(seed: 7)
        let stack = try await BatonStack.start(label: "rebalance", environment: ["KAFKA_TOPIC_PARTITIONS": "4"])
        try await stack.startExampleJobs()
        let steps = 40
        var runIds: [String] = []
        for index in 0..<4 {
            let eventId = "evt_scale_\(index)_\(UUID().uuidString.prefix(6))"
            #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":\#(steps),"stepMilliseconds":15}}"#).status == 202)
            runIds.append(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"))
        }
        // Scale out twice (each join revokes partitions from the live members), then scale in
        // gracefully (its partitions move back while the others keep working).
        try await Task.sleep(for: .milliseconds(Int.random(in: 200...600, using: &random)))
        let second = try await stack.startExampleJobs()
        try await Task.sleep(for: .milliseconds(Int.random(in: 200...600, using: &random)))
        try await stack.startExampleJobs()
        try await Task.sleep(for: .milliseconds(Int.random(in: 200...600, using: &random)))
        #expect(try await second.terminate() == 0)

        var reexecuted = 0
        for runId in runIds {
            let run = try await stack.finishedRun(runId, deadline: .seconds(120))
            #expect(run.status == .completed)
            let audit = StepAudit(runId: runId, steps: steps, outbox: stack.outboxLines(), run: run)
            #expect(audit.reexecutedAcknowledged.isEmpty, "run \(runId): steps \(audit.reexecutedAcknowledged) ran again")
            #expect(audit.missing.isEmpty)
            reexecuted += audit.reexecutedAcknowledged.count
        }
        print("rebalance: runs: \(runIds.count), steps: \(runIds.count * steps), joins: 2, leaves: 1, re-executed acked tasks: \(reexecuted)")
        try await stack.stop()
    }
}
