@testable import Baton
import BatonProtocol
import Foundation
import Synchronization
import Testing

@Suite("Child jobs: invokeAndWait and batchInvokeAndWait (JobHarness)")
struct ChildJobsTests {
    struct Square: Codable, Sendable { var n: Int }

    let square = Job(id: "square", name: "Square", version: "1.0.0", trigger: .invokeTrigger(payload: Square.self)) { input, _, _ in
        input.n * input.n
    }

    /// Child runs as the harness ends them: squares, except a negative number, which fails.
    static func childRuns(_ counter: Counter) -> @Sendable (EventEnvelope) async throws -> ChildRunOutcome {
        { envelope in
            let n = try envelope.payload.decode(as: Square.self).n
            counter.hit("child \(n)")
            let runId = Identifiers.runID(eventID: envelope.id, jobSlug: envelope.invoke ?? "")
            guard n >= 0 else { return ChildRunOutcome(runId: runId, jobId: envelope.invoke ?? "", status: .failed, error: "negative: \(n)") }
            return ChildRunOutcome(runId: runId, jobId: envelope.invoke ?? "", status: .completed, output: .int(Int64(n * n)))
        }
    }

    @Test("the parent resumes with the child's output; the child is invoked once, with a parent link, in the parent's tenant, however often the parent replays")
    func invokeAndWait() async throws {
        let counter = Counter()
        let square = self.square
        let parent = Job(id: "parent", name: "Parent", version: "1.0.0", trigger: .event(name: "go", payload: Square.self)) { input, io, _ in
            let first = try await square.invokeAndWait(io, "first", payload: Square(n: input.n))
            try await io.wait("pause", seconds: 0)
            let second = try await square.invokeAndWait(io, "second", payload: Square(n: first))
            return [first, second]
        }
        let result = try await JobHarness(job: parent, payload: ["n": 3], runId: "run_parent", childRuns: Self.childRuns(counter)).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: [9, 81])))
        #expect(counter["child 3"] == 1 && counter["child 9"] == 1, "each child invoked once")
        let invocations = result.events.compactMap { if case .childInvoked(let child) = $0 { child } else { nil } }
        #expect(invocations.map(\.key) == ["first", "second"] && invocations.allSatisfy { $0.jobId == "square" })
        let first = try #require(invocations.first)
        #expect(first.childRunId == Identifiers.runID(eventID: Identifiers.eventID(runID: "run_parent", taskID: first.taskId), jobSlug: "square"),
                "the child's run id is derived from the parent's run and task: a replay names the same child")
        #expect(result.slices == 4, "a slice per child and the wait, and the last")
    }

    @Test("a child's failure reaches the parent as ChildRunFailed, which it can catch; uncaught, it fails the parent")
    func childFailure() async throws {
        let counter = Counter()
        let square = self.square
        let catching = Job(id: "catching", name: "Catching", version: "1.0.0", trigger: .event(name: "go", payload: Square.self)) { input, io, _ in
            do {
                return try await square.invokeAndWait(io, "child", payload: Square(n: input.n))
            } catch let failure as ChildRunFailed {
                #expect(failure.status == .failed && failure.jobId == "square" && failure.message == "negative: -2")
                #expect(failure.description.contains("ended FAILED: negative: -2"))
                return -1
            }
        }
        let caught = try await JobHarness(job: catching, payload: ["n": -2], childRuns: Self.childRuns(counter)).runToCompletion()
        #expect(caught.outcome == .runCompleted(.init(output: -1)))
        let uncaught = Job(id: "uncaught", name: "Uncaught", version: "1.0.0", trigger: .event(name: "go", payload: Square.self)) { input, io, _ in
            try await square.invokeAndWait(io, "child", payload: Square(n: input.n))
        }
        let failed = try await JobHarness(job: uncaught, payload: ["n": -5], childRuns: Self.childRuns(counter)).runToCompletion()
        guard case .runFailed(let failure) = failed.outcome else { Issue.record("\(failed.outcome)"); return }
        #expect(failure.error.contains("child run run_") && failure.error.contains("of job 'square' ended FAILED: negative: -5"), "\(failure.error)")
    }

    @Test("batchInvokeAndWait invokes every child in one slice and returns each outcome in order, a failure as a result, not a throw")
    func batch() async throws {
        let counter = Counter()
        let square = self.square
        let parent = Job(id: "batch", name: "Batch", version: "1.0.0", trigger: .event(name: "go", payload: Square.self)) { input, io, _ in
            let results = try await square.batchInvokeAndWait(io, "squares", payloads: [Square(n: 1), Square(n: -1), Square(n: input.n)])
            return results.map { result in (try? result.get()).map(String.init) ?? "\(result.status.rawValue) \(result.error?.message ?? "")" }
        }
        let result = try await JobHarness(job: parent, payload: ["n": 4], childRuns: Self.childRuns(counter)).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: ["1", "FAILED negative: -1", "16"])))
        #expect(result.slices == 2, "all three children were invoked in the first slice")
        #expect(counter["child 1"] == 1 && counter["child -1"] == 1 && counter["child 4"] == 1)
        let invoked = result.events.compactMap { if case .childInvoked(let child) = $0 { child } else { nil } }
        #expect(Set(invoked.map(\.key)) == ["0", "1", "2"] && Set(invoked.map(\.parentTaskId)).count == 1, "subtasks of the batch task")
    }

    @Test("a parent's event must be an invocation: a parent link without 'invoke' is refused")
    func parentNeedsInvoke() throws {
        let envelope = EventEnvelope(id: "e", name: "x", parent: ParentRun(runId: "r", taskId: "t"))
        #expect(throws: ValidationError.self) { try envelope.validate() }
        let invoking = EventEnvelope(id: "e", name: "x", invoke: "square", parent: ParentRun(runId: "r", taskId: "t"))
        try invoking.validate()
        let decoded = try EventEnvelope.decode(from: try BatonJSON.encoder.encode(invoking))
        #expect(decoded.parent == ParentRun(runId: "r", taskId: "t"))
    }
}
