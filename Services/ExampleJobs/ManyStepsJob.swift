import Baton
import Foundation

/// The payload of `steps.start`.
struct StepsRequest: Codable, Sendable {
    var steps: Int
    /// How long each step works before its side effect, in milliseconds.
    var stepMilliseconds: Int?
}

/// A run of many sequential tasks, for fault tests of invariant 2.
///
/// Each step appends `step <run> <index> <execution id>` to `outbox` and returns the execution
/// id, so a test can tell from outside which execution's result was acknowledged and whether a
/// step ran again after that.
func manyStepsJob(outbox: URL) -> Job<StepsRequest, Int> {
    Job(id: "many-steps", name: "Many sequential steps", version: "1.0.0",
        trigger: .event(name: "steps.start", payload: StepsRequest.self)) { request, io, ctx in
        guard (1...10_000).contains(request.steps) else {
            throw StepsOutOfRange(steps: request.steps)
        }
        for index in 0..<request.steps {
            _ = try await io.runTask("step \(index)") { _ in
                let execution = UUID().uuidString.lowercased()
                try await Task.sleep(for: .milliseconds(request.stepMilliseconds ?? 10))
                try appendLine("step \(ctx.runId) \(index) \(execution)", to: outbox)
                return execution
            }
        }
        return request.steps
    }
}

/// `steps` outside 1...10000.
struct StepsOutOfRange: Error, CustomStringConvertible {
    var steps: Int
    var description: String { "steps must be between 1 and 10000, got \(steps)" }
}
