import AsyncHTTPClient
import BatonProtocol
import Foundation
import NIOHTTP1

/// A typed client of the run dispatcher's API (see `docs/openapi.yaml`): the jobs registered,
/// the events received and delayed, and cancelling a delayed event. Every call acts for the API
/// key's project and environment.
///
///     let dispatcher = DispatcherClient(baseURL: "http://127.0.0.1:8081", apiKey: key)
///     for job in try await dispatcher.jobs() { print(job.slug, job.version) }
public struct DispatcherClient: Sendable {
    private let api: APIRequester

    public init(baseURL: String, apiKey: String? = nil, client: HTTPClient = .shared) {
        api = APIRequester(baseURL: baseURL, apiKey: apiKey, client: client, service: "run dispatcher")
    }

    /// The jobs of the key's tenant.
    public func jobs() async throws -> [JobRegistration] {
        struct Jobs: Decodable { var jobs: [JobRegistration] }
        let answer: Jobs = try await api.request(.GET, "/api/v1/jobs", expecting: .ok)
        return answer.jobs
    }

    /// The events received most recently and the delayed events not delivered yet, up to
    /// `limit` (1 to 100) of each.
    public func events(limit: Int = 50) async throws -> EventListResponse {
        try await api.request(.GET, "/api/v1/events?limit=\(limit)", expecting: .ok)
    }

    /// Cancels the delayed event `id` unless it was delivered.
    public func cancelDelayedEvent(id: String) async throws -> CancelEventResponse {
        try await api.request(.DELETE, "/api/v1/events/\(APIRequester.escaped(id))", expecting: .ok)
    }
}
