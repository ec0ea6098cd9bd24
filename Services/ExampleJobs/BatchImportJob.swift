import Baton
import BatonProtocol
import Foundation

/// The payload of the `batch-import` job.
struct ImportRequest: Codable, Sendable {
    var batches: Int
}

/// A long import in batches: a random sample drawn once (`io.random`), a status after each
/// batch (`io.createStatus`, shown as the run's latest status) and a slice end after each
/// (`io.yield`), so other runs of the partition get their turn. Its log level is `info`
/// (`JobOptions`): debug lines are not stored. `onSuccess` notes the finished import once.
func batchImportJob(outbox: URL) -> Job<ImportRequest, String> {
    Job(id: "batch-import", name: "Batch import", version: "1.0.0",
        trigger: .event(name: "import.requested", payload: ImportRequest.self),
        options: JobOptions(logLevel: .info),
        onSuccess: { summary, ctx in try appendLine("import done \(ctx.runId): \(summary)", to: outbox) }) { request, io, ctx in
        let sample = Int(try await io.random("sample", min: 0, max: 1_000_000, round: true))
        // Outside any task: written once per slice, with the number every slice sees.
        try appendLine("import slice \(ctx.runId) \(ctx.attempt) sample \(sample)", to: outbox)
        for batch in 0..<request.batches {
            _ = try await io.runTask("import \(batch)") { _ in
                try appendLine("import batch \(ctx.runId) \(batch)", to: outbox)
                return batch
            }
            // The job keeps `info` and above: the first line is not stored.
            await io.logger.debug("batch \(batch) details", ["rows": .int(100)])
            await io.logger.info("batch \(batch) imported")
            try await io.createStatus("progress \(batch)", label: "Imported \(batch + 1) of \(request.batches) batches",
                                      state: batch + 1 == request.batches ? .success : .loading,
                                      data: ["done": .int(Int64(batch + 1)), "total": .int(Int64(request.batches))])
            try await io.yield("after batch \(batch)")
        }
        return "imported \(request.batches) batches, sample \(sample)"
    }
}
