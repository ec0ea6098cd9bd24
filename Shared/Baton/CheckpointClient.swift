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
    /// The job service's API key (its tenant's), sent as `Authorization: Bearer`.
    let apiKey: String?
    let logger: Logger

    /// The checkpoint of `runId`.
    /// - Throws: `CheckpointUnavailable` when the service did not answer within `patience`.
    func fetch(runId: String) async throws -> RunCheckpoint {
        try await patiently(runId: runId) {
            try await call(HTTPClientRequest(url: "\(baseURL)/internal/v1/runs/\(runId)/checkpoint"), as: RunCheckpoint.self)
        }
    }

    /// Claims a deduplication key, waiting while another run's task holds it.
    /// - Throws: `CheckpointUnavailable` when no answer other than `busy` came within `patience`.
    func claim(_ claim: DeduplicationClaimRequest) async throws -> DeduplicationClaim {
        try await patiently(runId: claim.runId) {
            var request = HTTPClientRequest(url: "\(baseURL)/internal/v1/deduplication/claim")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try BatonJSON.encoder.encode(claim)))
            let answer = try await call(request, as: DeduplicationClaim.self)
            guard answer.outcome != .busy else { throw Busy() }
            return answer
        }
    }

    private struct Busy: Error, CustomStringConvertible {
        var description: String { "another run's task holds the deduplication key" }
    }

    private struct UnexpectedStatus: Error, CustomStringConvertible {
        var description: String
    }

    private func call<T: Decodable>(_ request: HTTPClientRequest, as type: T.Type) async throws -> T {
        var request = request
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            throw UnexpectedStatus(description: "HTTP \(response.status.code): \(String(buffer: body).prefix(300))")
        }
        return try BatonJSON.decoder.decode(T.self, from: Data(body.readableBytesView))
    }

    /// Retries `operation` with exponential back-off (50 ms to 2 s) until it succeeds or
    /// `patience` is used up.
    private func patiently<T>(runId: String, _ operation: () async throws -> T) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var delay = Duration.milliseconds(50)
        while true {
            do {
                return try await operation()
            } catch {
                guard clock.now + delay < deadline else {
                    throw CheckpointUnavailable(runId: runId, baseURL: baseURL, problem: "\(error)")
                }
                if !(error is Busy) {
                    logger.warning("task-result service not available yet; retrying", metadata: ["run.id": "\(runId)", "problem": "\(error)"])
                }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
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
