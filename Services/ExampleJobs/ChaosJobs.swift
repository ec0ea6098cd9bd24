import Baton
import BatonProtocol
import Foundation

/// The payload of `chaos.start`.
struct ChaosRequest: Codable, Sendable {
    var waitSeconds: Double
    /// When given, the run performs a background fetch of `<fetchURL>?run=<run id>` (the chaos
    /// harness counts how often each run's fetch was performed).
    var fetchURL: String?
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

/// Detects two slices of one run at once, from outside the SDK, across job-service processes:
/// each slice holds a file named after its run (holder pid and slice token) while it runs. A
/// slice that finds the file held by a live process appends `overlap <run> <holder> <self>` to
/// the outbox (the chaos harness counts those lines); a file left by a killed process is taken
/// over.
struct SliceMarker {
    let path: String
    let token: String

    static func enter(runId: String, outbox: URL) throws -> SliceMarker {
        let directory = outbox.deletingLastPathComponent().appendingPathComponent("slices")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let marker = SliceMarker(path: directory.appendingPathComponent(runId).path, token: "\(getpid()) \(UUID().uuidString)")
        let descriptor = open(marker.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if descriptor < 0 {
            guard errno == EEXIST else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            let holder = (try? String(contentsOfFile: marker.path, encoding: .utf8)) ?? ""
            if let pid = holder.split(separator: " ").first.flatMap({ Int32($0) }), kill(pid, 0) == 0 || errno == EPERM {
                try appendLine("overlap \(runId) \(holder.replacingOccurrences(of: " ", with: "/")) \(marker.token.replacingOccurrences(of: " ", with: "/"))", to: outbox)
            }
            try marker.token.write(toFile: marker.path, atomically: true, encoding: .utf8)
        } else {
            defer { close(descriptor) }
            let bytes = Array(marker.token.utf8)
            _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        }
        return marker
    }

    /// Gives the file up, unless another slice took it over meanwhile.
    func leave() {
        if (try? String(contentsOfFile: path, encoding: .utf8)) == token { unlink(path) }
    }
}

/// A run with tasks, a background fetch, a durable wait and an event sent to another job: what the chaos harness
/// sends while it kills processes.
func chaosFlowJob(outbox: URL) -> Job<ChaosRequest, String> {
    Job(id: "chaos-flow", name: "Chaos flow", version: "1.0.0", trigger: .event(name: "chaos.start", payload: ChaosRequest.self)) { request, io, ctx in
        let marker = try SliceMarker.enter(runId: ctx.runId, outbox: outbox)
        defer { marker.leave() }
        let first = try await io.runTask("first step") { _ in try recordExecution("first step", runId: ctx.runId, outbox: outbox) }
        if let url = request.fetchURL {
            _ = try await io.backgroundFetch("probe", url: "\(url)?run=\(ctx.runId)",
                                             retry: ["5xx": RetryPolicy(limit: 5, factor: 1, minTimeoutInMs: 200, maxTimeoutInMs: 200, randomize: false)])
        }
        try await io.wait("pause", seconds: request.waitSeconds)
        _ = try await io.sendEvent("notify child", name: "chaos.child", payload: ChaosChildRequest(parent: ctx.runId))
        let second = try await io.runTask("second step") { _ in try recordExecution("second step", runId: ctx.runId, outbox: outbox) }
        return first + "/" + second
    }
}

/// The job the chaos flow's events start.
func chaosChildJob(outbox: URL) -> Job<ChaosChildRequest, String> {
    Job(id: "chaos-child", name: "Chaos child", version: "1.0.0", trigger: .event(name: "chaos.child", payload: ChaosChildRequest.self)) { _, io, ctx in
        let marker = try SliceMarker.enter(runId: ctx.runId, outbox: outbox)
        defer { marker.leave() }
        return try await io.runTask("child step") { _ in try recordExecution("child step", runId: ctx.runId, outbox: outbox) }
    }
}
