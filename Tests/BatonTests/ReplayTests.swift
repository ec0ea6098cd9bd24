@testable import Baton
import BatonProtocol
import Foundation
import Synchronization
import Testing

/// Records what a slice publishes, standing in for the broker in SDK unit tests.
final class Recorder: Sendable {
    let events = Mutex<[RunEvent.Body]>([])
    var publish: @Sendable (RunEvent.Body) async throws -> Void {
        { body in self.events.withLock { $0.append(body) } }
    }
    var completed: [CompletedTask] {
        events.withLock { events in
            events.compactMap {
                if case .taskCompleted(let c) = $0 { return CompletedTask(taskId: c.taskId, key: c.key, output: c.output) }
                if case .waitRequested(let w) = $0 { return CompletedTask(taskId: w.taskId, key: w.key, output: .null) }
                if case .logged(let l) = $0 { return CompletedTask(taskId: l.taskId, key: l.message, output: .null) }
                return nil
            }
        }
    }
}

/// Counts executions of task bodies.
final class Counter: Sendable {
    let counts = Mutex<[String: Int]>([:])
    func hit(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }
    subscript(key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
}

@Suite("Replay of keyed tasks")
struct ReplayTests {
    struct Payload: Codable, Sendable { var n: Int }

    func job(_ counter: Counter) -> Job<Payload, Int> {
        Job(id: "replay", name: "Replay", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            await io.logger.info("starting")
            let a = try await io.runTask("a") { _ in counter.hit("a"); return payload.n + 1 }
            let again = try await io.runTask("a") { _ in counter.hit("a"); return -1 }  // same key: same task
            try await io.wait("pause", seconds: 60)
            let b = try await io.runTask("b") { io in
                counter.hit("b")
                return try await io.runTask("a") { _ in counter.hit("b/a"); return 100 }  // child key, new scope
            }
            return a + again + b
        }
    }

    func slice(_ job: some AnyJob, runId: String, completed: [CompletedTask], recorder: Recorder, payload: JSONValue) async throws -> JSONValue {
        let state = SliceState(runId: runId, completed: completed, publish: recorder.publish)
        let context = JobContext(runId: runId, jobId: "replay", jobSlug: "replay", jobVersion: "1.0.0",
                                 event: .init(id: "e", name: "go", timestamp: Date(), context: nil), attempt: 1,
                                 organization: "org", project: "proj")
        return try await job.execute(payload: payload, io: IO(slice: state, parentTaskId: nil, depth: 0), context: context)
    }

    @Test("a resumed slice returns stored outputs and never re-executes a completed task")
    func replay() async throws {
        let counter = Counter()
        let recorder = Recorder()
        let job = job(counter)
        await #expect(throws: BatonInterrupt.self) {
            _ = try await slice(job, runId: "r", completed: [], recorder: recorder, payload: ["n": 1])
        }
        #expect(counter["a"] == 1)
        #expect(counter["b"] == 0)

        // Second slice, fed what the first one recorded (as the task-result service would).
        let output = try await slice(job, runId: "r", completed: recorder.completed, recorder: recorder, payload: ["n": 1])
        #expect(output == .int(2 + 2 + 100))
        #expect(counter["a"] == 1)
        #expect(counter["b"] == 1)
        #expect(counter["b/a"] == 1)
        let logs = recorder.events.withLock { $0.filter { if case .logged = $0 { true } else { false } } }
        #expect(logs.count == 1, "a replayed log line is not recorded twice")

        // Third slice with everything stored: nothing runs.
        _ = try await slice(job, runId: "r", completed: recorder.completed, recorder: recorder, payload: ["n": 1])
        #expect(counter["a"] == 1 && counter["b"] == 1 && counter["b/a"] == 1)
    }

    @Test("a payload that does not decode is an InvalidPayload naming the field")
    func invalidPayload() async throws {
        let error = await #expect(throws: InvalidPayload.self) {
            _ = try await slice(job(Counter()), runId: "r", completed: [], recorder: Recorder(), payload: ["n": "one"])
        }
        #expect(error?.path == "$.n")
    }

    @Test("subtasks nest at most five levels")
    func nesting() async throws {
        let deep = Job(id: "deep", name: "Deep", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ in
            @Sendable func nest(_ io: IO, _ level: Int) async throws -> Int {
                try await io.runTask("level \(level)") { child in level == 6 ? level : try await nest(child, level + 1) }
            }
            return try await nest(io, 1)
        }
        let error = await #expect(throws: JobDefinitionError.self) {
            _ = try await slice(deep, runId: "r", completed: [], recorder: Recorder(), payload: ["n": 1])
        }
        #expect(error?.message.contains("at most 5") == true)
    }

    @Test("io.try hands errors to the handler but never the interrupt")
    func ioTry() async throws {
        let recorder = Recorder()
        let state = SliceState(runId: "r", completed: [], publish: recorder.publish)
        let io = IO(slice: state, parentTaskId: nil, depth: 0)
        struct Boom: Error {}
        let recovered = try await io.try({ () async throws -> Int in throw Boom() }, catch: { _ in 7 })
        #expect(recovered == 7)
        await #expect(throws: BatonInterrupt.self) {
            _ = try await io.try({ () async throws -> Int in try await io.wait("w", seconds: 1); return 1 }, catch: { _ in 0 })
        }
        #expect(isBatonInterrupt(state.raisedInterrupt!))
    }
}

@Suite("Retries in the SDK")
struct RetryFlowTests {
    struct Boom: Error {}

    @Test("a failed attempt with attempts left is recorded with its retry time and ends the slice; the last one reaches the run code")
    func retryFlow() async throws {
        let recorder = Recorder()
        let policy = RetryPolicy(limit: 2, factor: 1, minTimeoutInMs: 500, maxTimeoutInMs: 500, randomize: false)
        let first = IO(slice: SliceState(runId: "r", completed: [], publish: recorder.publish), parentTaskId: nil, depth: 0)
        let before = Date()
        await #expect(throws: BatonInterrupt.self) {
            _ = try await first.runTask("t", options: TaskOptions(retry: policy)) { _ -> Int in throw Boom() }
        }
        let failures = recorder.events.withLock { $0.compactMap { if case .taskFailed(let f) = $0 { f } else { nil } } }
        #expect(failures.count == 1)
        #expect(failures[0].attempt == 1)
        let retryAt = try #require(failures[0].retryAt)
        #expect(retryAt.timeIntervalSince(before) >= 0.5 && retryAt.timeIntervalSince(before) < 5)

        // The resumed slice knows one attempt failed: this is the last one.
        let taskId = failures[0].taskId
        let second = IO(slice: SliceState(runId: "r", completed: [], failedAttempts: [taskId: 1], publish: recorder.publish),
                        parentTaskId: nil, depth: 0)
        await #expect(throws: Boom.self) {
            _ = try await second.runTask("t", options: TaskOptions(retry: policy)) { _ -> Int in throw Boom() }
        }
        let last = recorder.events.withLock { $0.compactMap { if case .taskFailed(let f) = $0 { f } else { nil } } }.last
        #expect(last?.attempt == 2)
        #expect(last?.retryAt == nil)
    }

    @Test("doNotRetry ends the task at once; no policy means no retry")
    func noRetry() async throws {
        let recorder = Recorder()
        let io = IO(slice: SliceState(runId: "r", completed: [], publish: recorder.publish), parentTaskId: nil, depth: 0)
        await #expect(throws: TaskFailure.self) {
            _ = try await io.runTask("a", options: TaskOptions(retry: RetryPolicy())) { _ -> Int in throw TaskFailure.doNotRetry("bad input") }
        }
        await #expect(throws: Boom.self) {
            _ = try await io.runTask("b") { _ -> Int in throw Boom() }
        }
        let retryTimes = recorder.events.withLock { $0.compactMap { if case .taskFailed(let f) = $0 { f.retryAt } else { nil } } }
        #expect(retryTimes.isEmpty)
    }

    @Test("an invalid retry policy is a clear error before the task runs")
    func invalidPolicy() async throws {
        let io = IO(slice: SliceState(runId: "r", completed: [], publish: Recorder().publish), parentTaskId: nil, depth: 0)
        let error = await #expect(throws: JobDefinitionError.self) {
            _ = try await io.runTask("a", options: TaskOptions(retry: RetryPolicy(limit: 0))) { _ in 1 }
        }
        #expect(error?.message.contains("retry.limit") == true)
    }
}

@Suite("Auto-yield")
struct AutoYieldTests {
    @Test("past its budget a slice replays stored tasks, then yields once before the first new one")
    func yieldsOnce() async throws {
        let recorder = Recorder()
        let done = Identifiers.taskID(runID: "r", parentTaskID: nil, key: "done")
        let slice = SliceState(runId: "r", completed: [CompletedTask(taskId: done, key: "done", output: 5)], budget: .zero, publish: recorder.publish)
        let io = IO(slice: slice, parentTaskId: nil, depth: 0)
        let counter = Counter()
        #expect(try await io.runTask("done") { _ -> Int in counter.hit("done"); return 0 } == 5)
        await withThrowingTaskGroup(of: Void.self) { group in
            for branch in 0..<3 {
                group.addTask { _ = try await io.runTask("new \(branch)") { _ -> Int in counter.hit("new"); return 1 } }
            }
            await #expect(throws: BatonInterrupt.self) { try await group.waitForAll() }
        }
        #expect(counter["done"] == 0 && counter["new"] == 0)
        let yields = recorder.events.withLock { $0.filter { if case .yielded = $0 { true } else { false } } }
        #expect(yields.count == 1)
    }
}

@Suite("Job harness")
struct JobHarnessTests {
    struct Payload: Codable, Sendable { var n: Int }

    @Test("runs a job to completion through its replays; completed tasks never run again, a retried one runs per attempt")
    func harness() async throws {
        let counter = Counter()
        let job = Job(id: "harnessed", name: "H", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            let a = try await io.runTask("a") { _ in counter.hit("a"); return payload.n }
            try await io.wait("pause", seconds: 3600)
            let policy = RetryPolicy(limit: 3, minTimeoutInMs: 1, maxTimeoutInMs: 1, randomize: false)
            let b = try await io.runTask("b", options: TaskOptions(retry: policy)) { _ -> Int in
                counter.hit("b")
                if counter["b"] < 3 { throw TaskFailure.retryAfter(.milliseconds(1), "not yet") }
                return 10
            }
            return a + b
        }
        let result = try await JobHarness(job: job, payload: ["n": 5]).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: 15)))
        #expect(counter["a"] == 1)
        #expect(counter["b"] == 3)
        #expect(result.slices == 4)  // start, after the wait, after each of two back-offs
    }

    @Test("a run that never finishes is reported, not looped forever")
    func bounded() async throws {
        let job = Job(id: "endless", name: "E", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, ctx -> Int in
            try await io.wait("wait \(ctx.attempt)", seconds: 1)
            return 0
        }
        let error = await #expect(throws: JobDefinitionError.self) { _ = try await JobHarness(job: job, payload: ["n": 1]).runToCompletion(maxSlices: 5) }
        #expect(error?.message.contains("5 slices") == true)
    }
}

@Suite("Swallowed interrupts")
struct SwallowedInterruptTests {
    struct Payload: Codable, Sendable { var n: Int }

    @Test("a run whose code catches Baton's interrupt and carries on fails with an error naming the mistake")
    func swallowed() async throws {
        let job = Job(id: "swallow", name: "S", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ -> Int in
            do {
                try await io.wait("w", seconds: 10)
            } catch {
                // The mistake: a catch-all that carries on.
            }
            return 1
        }
        let outcome = try await JobHarness(job: job, payload: ["n": 1]).runSlice { _ in }
        guard case .runFailed(let failed) = outcome else {
            Issue.record("expected the run to fail, got \(String(describing: outcome))")
            return
        }
        #expect(failed.error.contains("caught Baton's interrupt"))
        #expect(failed.error.contains("isBatonInterrupt"))
    }
}
