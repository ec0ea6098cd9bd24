import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Child runs in the run store: the parent notice fires once the child ends (completed or canceled); the parent's task gets the outcome, on SQLite and PostgreSQL", .serialized)
struct ChildRunStoreTests {
    let topic = "baton.task-results"

    func records(_ events: [RunEvent], from offset: Int64) -> [ConsumedRunEvent] {
        events.enumerated().map { ConsumedRunEvent(event: $1, topic: topic, partition: 0, offset: offset + Int64($0)) }
    }

    func child(_ id: String, parent: String) -> RunEvent {
        let invoking = EventEnvelope(id: "e-\(id)", name: JobTrigger.invokedEventName, invoke: "child", parent: ParentRun(runId: parent, taskId: "t-child"))
        return RunEvent(runId: id, body: .runCreated(.init(jobSlug: "child", jobVersion: "1.0.0", event: invoking)))
    }

    @Test("a child's notice is dormant while it runs and due when it ends; the parent's task completes with the outcome and a resume timer is due", arguments: StoreBackend.allCases)
    func notice(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let parent = RunEvent(runId: "p", body: .runCreated(.init(jobSlug: "parent", jobVersion: "1.0.0", event: EventEnvelope(id: "e-p", name: "n"))))
            let invoked = RunEvent(runId: "p", body: .childInvoked(.init(taskId: "t-child", key: "charge", parentTaskId: nil, childRunId: "c1", jobId: "child")))
            _ = try await store.apply(records([parent, invoked, child("c1", parent: "p"), child("c2", parent: "p")], from: 0))
            let waiting = try #require(try await store.run(id: "p"))
            #expect(waiting.status == .waiting && waiting.childRuns == ["c1"])
            #expect(waiting.tasks.first?.status == .waiting && waiting.tasks.first?.name == "invoke child")
            #expect(try await store.run(id: "c1")?.parentRun == ParentRun(runId: "p", taskId: "t-child"))
            #expect(try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(86_400), lease: .seconds(30), limit: 10).isEmpty,
                    "dormant while the children run")

            _ = try await store.apply(records([RunEvent(runId: "c1", body: .runCompleted(.init(output: 42)))], from: 4))
            _ = try await store.cancel(runId: "c2", at: Date())
            let due = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(1), lease: .seconds(30), limit: 10)
            #expect(Set(due.map { "\($0.runId) \($0.taskId)" }) == ["c1 \(RunRules.parentNoticeTimerID)", "c2 \(RunRules.parentNoticeTimerID)"],
                    "completed and canceled children both notice their parent")
            try await store.markFired(due, owner: "a")
            #expect(try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(2), lease: .seconds(30), limit: 10).isEmpty, "once")

            let outcome = ChildRunOutcome(runId: "c1", jobId: "child", status: .completed, output: 42)
            let finished = RunEvent(runId: "p", body: .childRunFinished(.init(taskId: "t-child", outcome: outcome)))
            _ = try await store.apply(records([finished, finished], from: 5))
            let outcomeJSON = try JSONValue(encoding: outcome)
            let resumed = try #require(try await store.run(id: "p"))
            #expect(resumed.tasks.first?.status == .completed && resumed.tasks.first?.output == outcomeJSON)
            let resume = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(1), lease: .seconds(30), limit: 10)
            #expect(resume.map(\.taskId) == [RunRules.childTimerID(taskId: "t-child")])
            let command = try #require(try await store.resumeCommand(runId: "p", counting: resume.first?.taskId))
            #expect(command.completedTasks.contains { $0.taskId == "t-child" && $0.output == outcomeJSON })
            try await store.markFired(resume, owner: "a")
            #expect(try await store.run(id: "p")?.status == .queued, "the resume timer's end queues the waiting parent")
        }
    }
}
