import Baton
import Foundation

/// The payload of `parallel.start`.
struct ParallelRequest: Codable, Sendable {
    var waitA: Double
    var waitB: Double
}

/// Two branches run in parallel with `async let`, each with a task, a durable wait and another
/// task; then five tasks in a task group. Identity is by key, so the branches interleave freely
/// and each task still runs once. Each task appends `parallel <run> <key>` to `outbox`.
func parallelJob(outbox: URL) -> Job<ParallelRequest, String> {
    Job(id: "parallel", name: "Parallel branches", version: "1.0.0",
        trigger: .event(name: "parallel.start", payload: ParallelRequest.self)) { request, io, ctx in
        @Sendable func record(_ key: String) throws { try appendLine("parallel \(ctx.runId) \(key)", to: outbox) }
        @Sendable func branch(_ name: String, wait: Double) async throws -> String {
            let first = try await io.runTask("\(name) first") { _ in try record("\(name) first"); return name }
            try await io.wait("\(name) wait", seconds: wait)
            let second = try await io.runTask("\(name) second") { _ in try record("\(name) second"); return name.uppercased() }
            return first + second
        }
        async let a = branch("a", wait: request.waitA)
        async let b = branch("b", wait: request.waitB)
        let (left, right) = try await (a, b)
        let sum = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<5 {
                group.addTask {
                    try await io.runTask("square \(index)") { _ in try record("square \(index)"); return index * index }
                }
            }
            return try await group.reduce(0, +)
        }
        return "\(left)-\(right)-\(sum)"
    }
}
