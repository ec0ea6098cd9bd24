import AsyncHTTPClient
import BatonProtocol
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Fetches a run's checkpoint from the task-result service before a slice starts.
///
/// The service answers only after it has recorded everything already acknowledged on the
/// task-results topic, so a slice never re-executes a task whose completion was acknowledged —
/// also when its run command was delivered again (worker crash before commit, duplicate command).
struct CheckpointClient: Sendable {
    let http: HTTPClient
    /// Base URL of the task-result service, e.g. `http://127.0.0.1:8082`.
    let baseURL: String
    /// How long to keep retrying before giving up (the command is then not committed).
    let patience: Duration
    let logger: Logger

    /// The checkpoint of `runId`.
    /// - Throws: `CheckpointUnavailable` when the service did not answer within `patience`.
    func fetch(runId: String) async throws -> RunCheckpoint {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var delay = Duration.milliseconds(50)
        var lastProblem = ""
        while true {
            do {
                let request = HTTPClientRequest(url: "\(baseURL)/internal/v1/runs/\(runId)/checkpoint")
                let response = try await http.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 64 << 20)
                if response.status == .ok {
                    return try BatonJSON.decoder.decode(RunCheckpoint.self, from: Data(body.readableBytesView))
                }
                lastProblem = "HTTP \(response.status.code): \(String(buffer: body).prefix(300))"
            } catch {
                lastProblem = "\(error)"
            }
            guard clock.now + delay < deadline else {
                throw CheckpointUnavailable(runId: runId, baseURL: baseURL, problem: lastProblem)
            }
            logger.warning("checkpoint not available yet; retrying", metadata: ["run.id": "\(runId)", "problem": "\(lastProblem)"])
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}

/// The task-result service could not say which tasks of a run completed, so the slice did not
/// start (its command is not committed and comes back).
public struct CheckpointUnavailable: Error, CustomStringConvertible {
    public var runId: String
    public var baseURL: String
    public var problem: String
    public var description: String {
        "no checkpoint for run \(runId) from the task-result service at \(baseURL): \(problem); check that it runs and that the worker's task-results URL points at it"
    }
}
