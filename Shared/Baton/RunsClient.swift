import AsyncHTTPClient
import BatonProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// A typed client of the runs API (the task-result service; see `docs/openapi.yaml`): list and
/// page through runs, read, cancel and replay them, cancel an event's runs, a job's run counts.
/// Every call acts for the API key's project and environment.
///
///     let runs = RunsClient(baseURL: "http://127.0.0.1:8082", apiKey: key)
///     var page = try await runs.list(.init(job: "new-user-welcome", statuses: [.failed]))
///     while let cursor = page.nextCursor { page = try await runs.list(.init(job: "new-user-welcome", statuses: [.failed]), after: cursor) }
public struct RunsClient: Sendable {
    private let api: APIRequester

    public init(baseURL: String, apiKey: String? = nil, client: HTTPClient = .shared) {
        api = APIRequester(baseURL: baseURL, apiKey: apiKey, client: client, service: "task-result service")
    }

    /// Which runs to list (every filter optional; they combine).
    public struct Filter: Sendable, Hashable {
        public var job: String?
        public var statuses: [RunStatus]
        public var createdFrom: Date?
        public var createdTo: Date?
        public var eventId: String?
        /// Page size, 1 to 100 (the API's default, 50, when `nil`).
        public var limit: Int?

        public init(job: String? = nil, statuses: [RunStatus] = [], createdFrom: Date? = nil, createdTo: Date? = nil,
                    eventId: String? = nil, limit: Int? = nil) {
            self.job = job
            self.statuses = statuses
            self.createdFrom = createdFrom
            self.createdTo = createdTo
            self.eventId = eventId
            self.limit = limit
        }
    }

    /// A page of runs, newest first; pass its `nextCursor` as `after` for the next one.
    public func list(_ filter: Filter = Filter(), after cursor: String? = nil) async throws -> RunListResponse {
        var query: [(String, String)] = []
        if let job = filter.job { query.append(("job", job)) }
        if !filter.statuses.isEmpty { query.append(("status", filter.statuses.map(\.rawValue).joined(separator: ","))) }
        let dates = ISO8601DateFormatter()
        if let from = filter.createdFrom { query.append(("createdFrom", dates.string(from: from))) }
        if let to = filter.createdTo { query.append(("createdTo", dates.string(from: to))) }
        if let event = filter.eventId { query.append(("eventId", event)) }
        if let limit = filter.limit { query.append(("limit", "\(limit)")) }
        if let cursor { query.append(("cursor", cursor)) }
        var components = URLComponents()
        components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        let encoded = components.percentEncodedQuery.map { "?" + $0.replacingOccurrences(of: "+", with: "%2B") } ?? ""
        return try await request(.GET, "/api/v1/runs" + encoded, expecting: .ok)
    }

    /// The run with its tasks and log lines (and, with `includePayload`, the payload and context
    /// of the event that started it); `nil` when there is no such run (or it is another project's).
    public func run(id: String, includePayload: Bool = false) async throws -> RunDetails? {
        do {
            return try await request(.GET, "/api/v1/runs/\(Self.escaped(id))" + (includePayload ? "?include=payload" : ""), expecting: .ok)
        } catch let error as BatonClientError where error.status == 404 {
            return nil
        }
    }

    /// Cancels the run unless it finished.
    public func cancel(runId: String) async throws -> CancelRunResponse {
        try await request(.POST, "/api/v1/runs/\(Self.escaped(runId))/cancel", expecting: .ok)
    }

    /// Starts a new run of the run's job version with its payload; give `id` to make a retried
    /// call start one run.
    public func replay(runId: String, id: String? = nil) async throws -> ReplayResponse {
        struct Body: Encodable { var id: String? }
        return try await request(.POST, "/api/v1/runs/\(Self.escaped(runId))/replay", body: Body(id: id), expecting: .accepted)
    }

    /// Cancels every run event `eventId` started.
    public func cancelRuns(eventId: String) async throws -> CancelEventRunsResponse {
        try await request(.POST, "/api/v1/events/\(Self.escaped(eventId))/cancel-runs", expecting: .ok)
    }

    /// The job's runs counted by status and version, and its newest run.
    public func stats(jobId: String) async throws -> JobStats {
        try await request(.GET, "/api/v1/jobs/\(Self.escaped(jobId))/stats", expecting: .ok)
    }

    private func request<Answer: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = APIRequester.NoBody?.none,
                                            expecting status: HTTPResponseStatus) async throws -> Answer {
        try await api.request(method, path, body: body, expecting: status)
    }

    private static func escaped(_ segment: String) -> String { APIRequester.escaped(segment) }
}

/// Calls of one service's JSON API with an optional API key: the status expected or a
/// ``BatonClientError`` with the body, the answer decoded.
struct APIRequester: Sendable {
    let baseURL: String
    let apiKey: String?
    let client: HTTPClient
    let service: String

    init(baseURL: String, apiKey: String?, client: HTTPClient, service: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.client = client
        self.service = service
    }

    struct NoBody: Encodable {}

    func request<Answer: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = NoBody?.none,
                                    expecting status: HTTPResponseStatus) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try BatonJSON.encoder.encode(body)))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let answer = try await response.body.collect(upTo: 32 << 20)
        guard response.status == status else {
            throw BatonClientError(status: Int(response.status.code), body: String(buffer: answer), service: service)
        }
        return try BatonJSON.decoder.decode(Answer.self, from: Data(answer.readableBytesView))
    }

    static func escaped(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }
}
