import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Run events applied in batches, and checkpoints read together, in a real SQLite store")
struct TaskResultStoreTests {
    func store() throws -> TaskResultStore {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-task-results-\(UUID().uuidString.prefix(8))")
        return try TaskResultStore(path: directory.appendingPathComponent("task-results.sqlite").path)
    }

    func created(_ run: String) -> RunEvent {
        RunEvent(runId: run, body: .runCreated(.init(jobSlug: "job", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(run)", name: "n"))))
    }

    func completed(_ run: String, _ key: String, _ output: JSONValue) -> RunEvent {
        RunEvent(runId: run, body: .taskCompleted(.init(taskId: "t-\(key)", key: key, parentTaskId: nil, output: output)))
    }

    @Test("a batch applies its events and its offsets in one go; applying it again changes nothing; unknown runs are reported")
    func batchApply() async throws {
        let store = try store()
        let topic = "baton.task-results"
        func at(_ partition: Int32, _ offset: Int64) -> SourceOffset { SourceOffset(topic: topic, partition: partition, offset: offset) }
        let batch: [TaskResultStore.ConsumedRecord] = [
            .init(event: created("r1"), source: at(0, 10), traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            .init(event: completed("r1", "a", 1), source: at(0, 11)),
            .init(event: nil, source: at(1, 4)),  // dead-lettered: only its offset counts
            .init(event: completed("ghost", "a", 2), source: at(1, 5)),
        ]
        #expect(try await store.apply(batch) == ["ghost"])
        #expect(try store.consumedOffsets(topic: topic) == [0: 12, 1: 6])
        #expect(try store.traceParent(runId: "r1") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        _ = try await store.apply(batch)
        let run = try #require(try store.run(id: "r1"))
        #expect(run.tasks.map(\.key) == ["a"] && run.tasks.first?.output == 1)
        #expect(try store.consumedOffsets(topic: topic) == [0: 12, 1: 6])
    }

    @Test("checkpoints read together answer each id in order; a repeated id counts two slices")
    func checkpointsTogether() async throws {
        let store = try store()
        _ = try await store.apply([
            .init(event: created("r1"), source: SourceOffset(topic: "t", partition: 0, offset: 0)),
            .init(event: completed("r1", "a", "done"), source: SourceOffset(topic: "t", partition: 0, offset: 1)),
            .init(event: created("r2"), source: SourceOffset(topic: "t", partition: 0, offset: 2)),
        ])
        let answers = try await store.checkpoints(runIds: ["r1", "unknown", "r2", "r1"])
        #expect(answers.map(\.runId) == ["r1", "unknown", "r2", "r1"])
        #expect(answers[0].completedTasks.map(\.key) == ["a"])
        #expect(answers[1].status == nil)
        #expect(answers[2].completedTasks.isEmpty)
        #expect(answers[0].slice == 1 && answers[3].slice == 2 && answers[2].slice == 1)
    }
}
