import Baton
import BatonProtocol
import Foundation

/// The payload of `chaos.start`.
struct ChaosRequest: Codable, Sendable {
    var waitSeconds: Double
}

/// The payload of `chaos.child`.
struct ChaosChildRequest: Codable, Sendable {
    var parent: String
}

/// Records one execution of task `key` of run `runId` in `outbox` (`chaos <run> <key> <id>`)
/// and returns the execution id, which becomes the task's stored output.
func recordExecution(_ key: String, runId: String, outbox: URL) throws -> String {
    let execution = UUID().uuidString.lowercased()
    try appendLine("chaos \(runId) \(key.replacingOccurrences(of: " ", with: "_")) \(execution)", to: outbox)
    return execution
}

/// A run with tasks, a durable wait and an event sent to another job: what the chaos harness
/// sends while it kills processes.
func chaosFlowJob(outbox: URL) -> Job<ChaosRequest, String> {
    Job(id: "chaos-flow", name: "Chaos flow", version: "1.0.0", trigger: .event(name: "chaos.start", payload: ChaosRequest.self)) { request, io, ctx in
        let first = try await io.runTask("first step") { _ in try recordExecution("first step", runId: ctx.runId, outbox: outbox) }
        try await io.wait("pause", seconds: request.waitSeconds)
        _ = try await io.sendEvent("notify child", name: "chaos.child", payload: ChaosChildRequest(parent: ctx.runId))
        let second = try await io.runTask("second step") { _ in try recordExecution("second step", runId: ctx.runId, outbox: outbox) }
        return first + "/" + second
    }
}

/// The job the chaos flow's events start.
func chaosChildJob(outbox: URL) -> Job<ChaosChildRequest, String> {
    Job(id: "chaos-child", name: "Chaos child", version: "1.0.0", trigger: .event(name: "chaos.child", payload: ChaosChildRequest.self)) { _, io, ctx in
        try await io.runTask("child step") { _ in try recordExecution("child step", runId: ctx.runId, outbox: outbox) }
    }
}
