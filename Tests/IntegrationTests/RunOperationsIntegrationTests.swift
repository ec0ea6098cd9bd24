import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("io.random, io.yield and io.createStatus over a real broker", .tags(.integration))
struct RunOperationsIntegrationTests {
    @Test("batch-import: a slice per batch (yield), the same random sample in every slice, each batch once, the run record's latest status the last one set")
    func batchImport() async throws {
        let stack = try await BatonStack.start(label: "run-ops")
        try await stack.startExampleJobs(jobs: ["batch-import"])
        let eventId = "evt_import_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"import.requested","payload":{"batches":3}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "batch-import")
        let run = try await eventually("the import run to end", deadline: .seconds(90), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await stack.run(runId), run.status.isTerminal else { return nil }
            return run
        }
        #expect(run.status == .completed, "\(run.status) \(run.error ?? "")")
        let lines = stack.outboxLines()
        let slices = lines.filter { $0.hasPrefix("import slice \(runId) ") }
        let samples = Set(slices.map { $0.split(separator: " ").last.map(String.init) ?? "" })
        #expect(slices.count >= 4, "a slice per batch and the last: \(slices)")
        #expect(samples.count == 1, "every slice saw the same sample: \(samples)")
        for batch in 0..<3 {
            #expect(lines.filter { $0 == "import batch \(runId) \(batch)" }.count == 1, "batch \(batch) imported once")
        }
        let sample = try #require(samples.first)
        #expect(run.output == .string("imported 3 batches, sample \(sample)"))
        #expect(run.tasks.first { $0.key == "sample" }?.name == "random")
        #expect(run.latestStatus == RunStatusUpdate(key: "progress 2", label: "Imported 3 of 3 batches", state: .success, data: ["done": 3, "total": 3]))
        // The runs API sends it as the document says.
        let raw = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(runId)").body
        #expect(raw.contains(#""latestStatus""#) && raw.contains("Imported 3 of 3 batches"))
        try await stack.stop()
    }
}
