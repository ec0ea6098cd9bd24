import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import NIOHTTP1
import Testing

/// Invariant 8 over a real broker: one job service runs slices of different runs at once, and
/// never two slices of one run.
@Suite("Concurrent slices in one job service", .tags(.integration), .serialized)
struct ConcurrentSlicesTests {
    func stepsEvent(id: String, steps: Int, milliseconds: Int) -> String {
        #"{"id":"\#(id)","name":"steps.start","payload":{"steps":\#(steps),"stepMilliseconds":\#(milliseconds)}}"#
    }

    @Test("two slow runs of one job overlap in one process")
    func slowRunsOverlap() async throws {
        let stack = try await BatonStack.start(label: "overlap")
        try await stack.startExampleJobs()
        let ids = (0..<2).map { "evt_overlap_\($0)_\(UUID().uuidString.prefix(6))" }
        // One request for both, and tasks long enough that a loaded machine (the suite runs many
        // stacks at once) cannot make them look sequential by delaying the second.
        let batch = #"{"events":["# + ids.map { stepsEvent(id: $0, steps: 1, milliseconds: 4000) }.joined(separator: ",") + "]}"
        let sent = try await stack.request(port: stack.ingesterPort, "/api/v1/events/batch", method: .POST, body: batch)
        #expect(sent.status == 200 && !sent.body.contains("\"error\""), "\(sent.body)")
        let runs = try await ids.asyncMap { try await stack.finishedRun(Identifiers.runID(eventID: $0, jobSlug: "many-steps")) }
        for run in runs { #expect(run.status == .completed, "\(run.error ?? "")\n\(stack.allOutput())") }
        let intervals = try runs.map { run in
            let task = try #require(run.tasks.first)
            return (try #require(task.startedAt), try #require(task.completedAt))
        }
        // Each task sleeps 4 s: one after the other, the second would start after the first ended.
        #expect(intervals[0].0 < intervals[1].1 && intervals[1].0 < intervals[0].1,
                "the two runs' tasks did not overlap: \(intervals)")
        try await stack.stop()
    }

    @Test("two records of one run never run at once: the second replays what the first recorded")
    func recordsOfOneRunDoNotOverlap() async throws {
        let stack = try await BatonStack.start(label: "one-run")
        try await stack.startExampleJobs()
        let producer = try stack.kafkaProducer()
        let topics = Topics()
        let event = EventEnvelope(id: "evt_dup_\(UUID().uuidString.prefix(6))", name: "steps.start",
                                  payload: ["steps": 1, "stepMilliseconds": 1000])
        let runId = Identifiers.runID(eventID: event.id, jobSlug: "many-steps")
        // As the dispatcher does: the run record first, then its command; here the command twice,
        // back to back on the run's partition, as a redelivery would put it.
        try await producer.send(topic: topics.taskResults, key: runId,
                                value: Array(try BatonJSON.encoder.encode(RunEvent(runId: runId, body: .runCreated(.init(jobSlug: "many-steps", jobVersion: "1.0.0", event: event))))))
        let command = Array(try BatonJSON.encoder.encode(RunCommand(kind: .execute, runId: runId, jobSlug: "many-steps", jobVersion: "1.0.0", event: event)))
        let first = try producer.enqueue(topic: topics.runs(jobSlug: "many-steps"), key: Array(runId.utf8), value: command)
        let second = try producer.enqueue(topic: topics.runs(jobSlug: "many-steps"), key: Array(runId.utf8), value: command)
        try await first.acknowledged()
        try await second.acknowledged()
        await producer.shutdown()

        let run = try await stack.finishedRun(runId)
        #expect(run.status == .completed, "\(run.error ?? "")")
        // Had the two slices overlapped, both would have executed the 1-second step (neither's
        // checkpoint had its result yet): the side-effect file would hold it twice.
        let executions = stack.outboxLines().filter { $0.hasPrefix("step \(runId) 0 ") }
        #expect(executions.count == 1, "step executed \(executions.count) times\n\(stack.allOutput())")
        try await stack.stop()
    }
}

extension Array {
    /// `transform` applied to each element in order, awaiting each.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
