import Baton
import BatonProtocol
import Foundation

/// The payload of `fetch.start`.
struct FetchJobRequest: Codable, Sendable {
    var url: String
    /// Extra request headers (e.g. `authorization`).
    var headers: [String: String]?
}

/// Fetches `url` in the background, retrying 5xx answers four times 100 ms apart; returns
/// "<status> <body>". For tests of `io.backgroundFetch`.
func fetchJob() -> Job<FetchJobRequest, String> {
    Job(id: "fetch", name: "Background fetch", version: "1.0.0", trigger: .event(name: "fetch.start", payload: FetchJobRequest.self)) { request, io, _ in
        let response = try await io.backgroundFetch(
            "call the API", url: request.url, headers: ["accept": "application/json"].merging(request.headers ?? [:]) { _, given in given },
            retry: ["5xx": RetryPolicy(limit: 4, factor: 1, minTimeoutInMs: 100, maxTimeoutInMs: 100, randomize: false)])
        return "\(response.status) \(response.body)"
    }
}
