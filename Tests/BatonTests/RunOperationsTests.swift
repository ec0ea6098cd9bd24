@testable import Baton
import BatonProtocol
import Foundation
import Synchronization
import Testing

@Suite("io.random, io.yield and io.createStatus")
struct RunOperationsTests {
    struct Payload: Codable, Sendable { var n: Int }

    /// The failure a run's final event records, or `nil` when the run did not fail.
    static func failure(_ outcome: RunEvent.Body?) -> RunEvent.RunFailed? {
        if case .runFailed(let failure) = outcome { return failure }
        return nil
    }

    @Test("io.random draws once: every slice of the run sees the same number, within its bounds and rounded when asked")
    func randomIsKeyed() async throws {
        let counter = Counter()
        let job = Job(id: "dice", name: "Dice", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, ctx in
            let roll = try await io.random("roll", min: 1, max: 7, round: true)
            let fraction = try await io.random("fraction")
            // Three slices: the numbers drawn in the first must come back in the others.
            try await io.wait("pause 1", seconds: 0)
            try await io.wait("pause 2", seconds: 0)
            _ = try await io.runTask("seen \(ctx.attempt)") { _ in counter.hit("seen \(roll) \(fraction)"); return 0 }
            return [roll, fraction]
        }
        let result = try await JobHarness(job: job, payload: ["n": 1]).runToCompletion()
        func number(_ value: JSONValue) -> Double? {
            switch value {
            case .int(let value): Double(value)
            case .double(let value): value
            default: nil
            }
        }
        guard case .runCompleted(let completed) = result.outcome, case .array(let values) = completed.output,
              let roll = number(values[0]), let fraction = number(values[1]) else {
            Issue.record("unexpected outcome \(result.outcome)")
            return
        }
        #expect(result.slices == 3)
        #expect((1...7).contains(roll) && roll == roll.rounded(), "roll \(roll)")
        #expect((0..<1).contains(fraction))
        #expect(counter["seen \(roll) \(fraction)"] == 1, "the numbers of the first slice reached the last one")
        let draws = result.events.filter { if case .taskCompleted(let task) = $0 { return task.key == "roll" || task.key == "fraction" } else { return false } }
        #expect(draws.count == 2, "each number drawn once")
        let bad = Job(id: "bad-dice", name: "Bad dice", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ in
            try await io.random("roll", min: 5, max: 5)
        }
        let failed = try await JobHarness(job: bad, payload: ["n": 1]).runToCompletion()
        let failure = try #require(Self.failure(failed.outcome), "expected a failed run: \(failed.outcome)")
        #expect(failure.error.contains("min (5.0) must be below max (5.0)"), "\(failure.error)")
    }

    @Test("io.yield ends the slice and the run goes on in the next; work before it is not done again, the yield not taken again")
    func yieldEndsTheSlice() async throws {
        let counter = Counter()
        let job = Job(id: "batches", name: "Batches", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            var total = 0
            for batch in 0..<payload.n {
                total += try await io.runTask("batch \(batch)") { _ in counter.hit("batch \(batch)"); return batch }
                try await io.yield("after batch \(batch)")
            }
            return total
        }
        let result = try await JobHarness(job: job, payload: ["n": 3]).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: 3)))
        #expect(result.slices == 4, "one slice per batch, then the one that completes")
        #expect((0..<3).allSatisfy { counter["batch \($0)"] == 1 })
        let yields = result.events.filter { if case .yielded = $0 { return true } else { return false } }
        #expect(yields.count == 3)
    }

    @Test("io.createStatus records a status task; the run record shows the one completed last")
    func statuses() async throws {
        let job = Job(id: "import", name: "Import", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            try await io.createStatus("progress 0", label: "Starting", state: .loading)
            for done in 1...payload.n {
                _ = try await io.runTask("import \(done)") { _ in done }
                try await io.createStatus("progress \(done)", label: "Imported \(done) of \(payload.n)", state: done == payload.n ? .success : .loading,
                                          data: ["done": .int(Int64(done)), "total": .int(Int64(payload.n))])
            }
            return "ok"
        }
        let result = try await JobHarness(job: job, payload: ["n": 2]).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: "ok")))
        // The run record as the task-result service builds it from these events.
        var tasks: [RunDetails.TaskDetails] = []
        var started: [String: RunEvent.TaskStarted] = [:]
        for (index, event) in result.events.enumerated() {
            switch event {
            case .taskStarted(let start): started[start.taskId] = start
            case .taskCompleted(let task):
                tasks.append(.init(id: task.taskId, key: task.key, parentId: nil, name: started[task.taskId]?.name, properties: started[task.taskId]?.properties,
                                   status: .completed, output: task.output, error: nil, attempts: 1, startedAt: nil,
                                   completedAt: Date(timeIntervalSince1970: Double(index)), waitUntil: nil))
            default: break
            }
        }
        let latest = try #require(RunStatusUpdate.latest(in: tasks))
        #expect(latest == RunStatusUpdate(key: "progress 2", label: "Imported 2 of 2", state: .success, data: ["done": 2, "total": 2]))
        #expect(tasks.first { $0.key == "progress 1" }?.name == "Imported 1 of 2", "the label names the task")
        // A task of the job's own with other properties is not a status.
        #expect(RunStatusUpdate.latest(in: tasks.filter { $0.properties != RunStatusUpdate.taskProperties }) == nil)
        let empty = Job(id: "empty-status", name: "Empty", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ in
            try await io.createStatus("s", label: "  ")
        }
        let failed = try await JobHarness(job: empty, payload: ["n": 1]).runToCompletion()
        let failure = try #require(Self.failure(failed.outcome), "expected a failed run: \(failed.outcome)")
        #expect(failure.error.contains("the label is empty"), "\(failure.error)")
    }

    @Test("job options: logLevel keeps the io.logger lines at or above it; enabled and logLevel go into the registration only when not the defaults")
    func options() async throws {
        let job = Job(id: "quiet", name: "Quiet", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self),
                      options: JobOptions(enabled: false, logLevel: .warn)) { _, io, _ in
            await io.logger.debug("details")
            await io.logger.log("plain")
            await io.logger.info("progress")
            await io.logger.warn("slow upstream")
            await io.logger.error("gave up on one item")
            return 1
        }
        let result = try await JobHarness(job: job, payload: ["n": 1]).runToCompletion()
        let levels = result.events.compactMap { event -> String? in
            if case .logged(let line) = event { return "\(line.level) \(line.message)" } else { return nil }
        }
        #expect(levels == ["WARN slow upstream", "ERROR gave up on one item"])
        let registration = try job.registration()
        #expect(registration.enabled == false && registration.logLevel == .warn && !registration.isEnabled)
        let plain = try Job(id: "plain", name: "Plain", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, _, _ in 1 }.registration()
        #expect(plain.enabled == nil && plain.logLevel == nil && plain.isEnabled)
        let encoded = String(decoding: try BatonJSON.encoder.encode(plain), as: UTF8.self)
        #expect(!encoded.contains("enabled") && !encoded.contains("logLevel"), "defaults stay absent: \(encoded)")
    }

    @Test("onSuccess is called once per completed run, after every slice; its failure is recorded and the run still completes")
    func onSuccessHook() async throws {
        let counter = Counter()
        let job: Job<Payload, Int> = Job(id: "hooked", name: "Hooked", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self),
                                         onSuccess: { output, ctx in counter.hit("success \(output) \(ctx.runId)") }) { payload, io, _ in
            try await io.wait("pause", seconds: 0)
            return payload.n * 2
        }
        let result = try await JobHarness(job: job, payload: ["n": 21]).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: 42)))
        #expect(counter["success 42 run_harness"] == 1)
        let failing: Job<Payload, Int> = Job(id: "hook-fails", name: "Hook fails", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self),
                                             onSuccess: { _, _ in throw TaskFailure.doNotRetry("notification service down") }) { payload, _, _ in payload.n }
        let failed = try await JobHarness(job: failing, payload: ["n": 1]).runToCompletion()
        #expect(failed.outcome == .runCompleted(.init(output: 1)), "a failing hook does not fail the run")
        #expect(failed.events.contains { if case .taskFailed(let task) = $0 { return task.key == "baton.onSuccess" && task.error.contains("notification service down") } else { return false } })
    }

    @Test("onFailure is called once with the error of a failed run; the run fails with its own error")
    func onFailureHook() async throws {
        let counter = Counter()
        let job: Job<Payload, Int> = Job(id: "doomed", name: "Doomed", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self),
                      onSuccess: { _, _ in counter.hit("success") },
                      onFailure: { error, _ in counter.hit("failure: \(error)") }) { _, io, _ in
            try await io.wait("pause", seconds: 0)
            throw TaskFailure.doNotRetry("the CRM refused the record")
        }
        let result = try await JobHarness(job: job, payload: ["n": 1]).runToCompletion()
        let failure = try #require(Self.failure(result.outcome), "expected a failed run: \(result.outcome)")
        #expect(failure.error == "the CRM refused the record")
        #expect(counter["failure: the CRM refused the record"] == 1 && counter["success"] == 0)
        // Replayed after the hook ran (a crash before the failure was recorded): not called again.
        let completed = result.events.compactMap { event -> CompletedTask? in
            if case .taskCompleted(let task) = event { return CompletedTask(taskId: task.taskId, key: task.key, output: task.output) }
            if case .waitRequested(let wait) = event { return CompletedTask(taskId: wait.taskId, key: wait.key, output: .null) }
            return nil
        }
        let replay = try await JobHarness(job: job, payload: ["n": 1]).runSlice(completed: completed, attempt: 3) { _ in }
        #expect(Self.failure(replay) != nil, "the replay fails the run again: \(String(describing: replay))")
        #expect(counter["failure: the CRM refused the record"] == 1, "the hook ran once")
    }

    @Test("onFailure runs in the slice that decided the failure even with its time budget used up (a yield would run the failed code again)")
    func onFailureIgnoresTheBudget() async throws {
        let counter = Counter()
        let job: Job<Payload, Int> = Job(id: "late-failure", name: "Late failure", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self),
                                         onFailure: { error, _ in counter.hit("failure: \(error)") }) { _, _, _ in
            counter.hit("run")
            throw TaskFailure.doNotRetry("rejected")
        }
        let outcome = try await JobHarness(job: job, payload: ["n": 1]).runSlice(budget: .zero) { _ in }
        #expect(outcome == .runFailed(.init(error: "rejected")), "\(String(describing: outcome))")
        #expect(counter["run"] == 1 && counter["failure: rejected"] == 1)
        // A payload that does not decode fails the run too: the hook hears of it.
        let invalid = try await JobHarness(job: job, payload: ["n": "not a number"]).runSlice { _ in }
        #expect(Self.failure(invalid)?.status == .invalidPayload, "\(String(describing: invalid))")
        #expect(counter["run"] == 1, "the job's code did not run")
        #expect(counter.counts.withLock { $0.keys.contains { $0.hasPrefix("failure: payload does not match") } })
    }

    @Test("io.random with round: whole numbers from min to max, both ends included; a range with none is refused")
    func randomWholeNumbers() async throws {
        let job = Job(id: "die", name: "Die", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            var seen: Set<Double> = []
            for index in 0..<payload.n { seen.insert(try await io.random("roll \(index)", min: 1, max: 3, round: true)) }
            return seen.sorted()
        }
        let result = try await JobHarness(job: job, payload: ["n": 200]).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: [1, 2, 3])), "\(result.outcome)")
        let none = Job(id: "none", name: "None", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ in
            try await io.random("roll", min: 1.2, max: 1.8, round: true)
        }
        let failed = try await JobHarness(job: none, payload: ["n": 1]).runToCompletion()
        let failure = try #require(Self.failure(failed.outcome), "expected a failed run: \(failed.outcome)")
        #expect(failure.error.contains("no whole number from 1.2 to 1.8"), "\(failure.error)")
    }
}
