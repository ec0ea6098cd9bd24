import AsyncHTTPClient
import BatonDomain
import BatonKafka
import BatonProtocol
import BatonStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import BatonService

/// Performs background fetches (`io.backgroundFetch`) for runs: sends each due request, retries
/// it by the request's per-status rules, stores the response as the task's output and resumes
/// the run. The job service is not blocked meanwhile: its slice ended when it asked.
struct FetchService: Sendable {
    let store: any TaskResultStoring
    let producer: KafkaProducer
    let topics: Topics
    let http: HTTPClient
    /// Largest response body kept, in bytes.
    let maxBodyBytes: Int
    /// Opens sealed requests (see `FetchSecrets`).
    let secrets: FetchSecrets?
    /// This instance, as the holder of the fetches it claims (see `FetchRules`).
    let owner: String
    /// How long a claim holds: past it, another instance performs the fetch.
    let lease: Duration
    /// How long an outcome in hand is written again while the store fails transiently (see
    /// `retryingStoreOutage`): dropping it would perform the request again.
    let outage: StoreOutagePolicy
    let logger: Logger

    /// One round: resume runs of finished fetches, perform the due ones, resume again.
    func tick() async throws {
        try await resumeFinished()
        try await performDue()
        try await resumeFinished()
    }

    /// Sends the resume command of every finished fetch not resumed yet (also after a crash
    /// between storing a response and sending the command).
    func resumeFinished() async throws {
        for pending in try await store.fetchResumes(limit: 50) {
            if let command = pending.command {
                try await producer.send(command, topics: topics, continuingTrace: try await store.traceParent(runId: command.runId))
                logger.info("run resumed after background fetch", metadata: ["run.id": "\(pending.runId)"])
            }
            try await store.markFetchResumed(runId: pending.runId, taskId: pending.taskId)
        }
    }

    func performDue() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for fetch in try await store.claimDueFetches(owner: owner, now: Date(), lease: lease, limit: 50) {
                group.addTask { try await perform(fetch) }
            }
            try await group.waitForAll()
        }
    }

    func perform(_ fetch: ClaimedFetch) async throws {
        let attempt = fetch.attempts + 1
        // A sealed request that cannot be opened will never be: the fetch ends with the reason.
        switch opened(fetch) {
        case .success(let plain):
            try await perform(fetch, plain, attempt: attempt)
        case .failure(let error) where error.isMissingKey:
            // Fixable by configuration (a key rotated in the wrong order): try again later.
            logger.error("background fetch waits for its key", metadata: ["run.id": "\(fetch.runId)", "error": "\(error)"])
            try await store.rescheduleFetch(fetch, owner: owner, next: Date().addingTimeInterval(60))
        case .failure(let error):
            logger.error("background fetch cannot be performed", metadata: ["run.id": "\(fetch.runId)", "error": "\(error)"])
            try await store.completeFetch(fetch, owner: owner, response: BackgroundFetchResponse(status: 0, headers: [:], body: "", error: error.message, attempts: attempt), now: Date())
        }
    }

    /// The fetch's request, opened with ``secrets`` when it is sealed.
    private func opened(_ fetch: ClaimedFetch) -> Result<BackgroundFetchRequest, FetchSecretsError> {
        guard let secrets else {
            guard let sealed = fetch.request.sealed else { return .success(fetch.request) }
            return .failure(FetchSecretsError(message: "the request is sealed (key \(sealed.keyID)) and this service has no FETCH_SECRETS_KEYS",
                                              isMissingKey: true))
        }
        return Result { () throws(FetchSecretsError) in try secrets.open(fetch.request, context: "\(fetch.runId)/\(fetch.taskId)") }
    }

    private func perform(_ fetch: ClaimedFetch, _ plain: BackgroundFetchRequest, attempt: Int) async throws {
        let response: BackgroundFetchResponse
        do {
            var request = HTTPClientRequest(url: plain.url)
            request.method = HTTPMethod(rawValue: plain.method.uppercased())
            for (name, value) in plain.headers { request.headers.add(name: name, value: value) }
            if let body = plain.body { request.body = .bytes(ByteBuffer(string: body)) }
            let answer = try await http.execute(request, timeout: .seconds(30))
            let body = try await answer.body.collect(upTo: maxBodyBytes)
            var headers: [String: String] = [:]
            for header in answer.headers { headers[header.name.lowercased()] = header.value }
            response = BackgroundFetchResponse(status: Int(answer.status.code), headers: headers, body: String(buffer: body), attempts: attempt)
        } catch {
            response = BackgroundFetchResponse(status: 0, headers: [:], body: "", error: "\(error)", attempts: attempt)
        }
        if !response.isSuccess,
           let policy = fetch.request.retryPolicy(forStatus: response.status == 0 ? nil : response.status) {
            var generator = SystemRandomNumberGenerator()
            if let delay = policy.delayMilliseconds(afterAttempt: attempt, using: &generator) {
                try await retryingStoreOutage(outage, what: "recording a background fetch's attempt", logger: logger) {
                    try await store.rescheduleFetch(fetch, owner: owner, next: Date().addingTimeInterval(Double(delay) / 1000))
                }
                logger.debug("background fetch retried", metadata: ["run.id": "\(fetch.runId)", "status": "\(response.status)", "delay.ms": "\(delay)"])
                return
            }
        }
        // The response is in hand: while the store restarts, write it again rather than drop it
        // (the next round would perform the request again).
        let stored = try await retryingStoreOutage(outage, what: "storing a background fetch's response", logger: logger) {
            try await store.completeFetch(fetch, owner: owner, response: response, now: Date())
        }
        guard stored else {
            logger.warning("background fetch finished after its lease ended; another instance's outcome counts", metadata: ["run.id": "\(fetch.runId)"])
            return
        }
        logger.info("background fetch finished", metadata: ["run.id": "\(fetch.runId)", "status": "\(response.status)", "attempts": "\(attempt)"])
    }
}
