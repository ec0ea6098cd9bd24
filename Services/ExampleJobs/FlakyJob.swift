import Baton
import BatonProtocol
import Foundation

/// The payload of `flaky.start`.
struct FlakyRequest: Codable, Sendable {
    /// How many attempts fail before one succeeds.
    var failures: Int
    /// Attempts allowed (the retry policy's limit).
    var limit: Int
}

/// A task that fails `failures` times, retried with a short durable back-off; for tests of retries.
/// Each attempt appends `attempt <run> <n>` to `outbox`.
func flakyJob(outbox: URL) -> Job<FlakyRequest, String> {
    Job(id: "flaky", name: "Flaky task", version: "1.0.0", trigger: .event(name: "flaky.start", payload: FlakyRequest.self)) { request, io, ctx in
        let policy = RetryPolicy(limit: request.limit, factor: 2, minTimeoutInMs: 200, maxTimeoutInMs: 1000, randomize: false)
        return try await io.runTask("call the flaky service", options: TaskOptions(retry: policy)) { _ in
            let previous = ((try? String(contentsOf: outbox, encoding: .utf8)) ?? "")
                .split(separator: "\n").filter { $0.hasPrefix("attempt \(ctx.runId) ") }.count
            try appendLine("attempt \(ctx.runId) \(previous + 1)", to: outbox)
            if previous < request.failures {
                throw TaskFailure.retryAfter(.milliseconds(200), "flaky service failed (attempt \(previous + 1))")
            }
            return "succeeded on attempt \(previous + 1)"
        }
    }
}
