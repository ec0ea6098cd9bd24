import BatonProtocol
import Foundation

/// A wait for a request to a callback URL as a store keeps it (see ``RequestWaitRules``).
public struct RequestWaitRecord: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    public var timeoutAt: Date
    /// When its request arrived (the first one: later ones are refused).
    public var receivedAt: Date?

    public init(runId: String, taskId: String, timeoutAt: Date, receivedAt: Date? = nil) {
        self.runId = runId
        self.taskId = taskId
        self.timeoutAt = timeoutAt
        self.receivedAt = receivedAt
    }
}

/// What a request to a callback URL gets.
public enum RequestWaitAnswer: Sendable, Hashable {
    /// The first request before the timeout: the run resumes with its body.
    case accepted(runId: String, taskId: String)
    /// A request came before: 409.
    case alreadyReceived
    /// The wait timed out: 410.
    case expired
    /// No wait has this token: 404.
    case unknown
}

/// The rules of callback requests (`io.waitForRequest`), as pure functions: the first request
/// before the timeout is the one the run gets; any later one is refused, and says why.
public enum RequestWaitRules {
    /// The answer to a request arriving at `now` for `wait` (`nil`: unknown token).
    public static func answer(_ wait: RequestWaitRecord?, now: Date) -> RequestWaitAnswer {
        guard let wait else { return .unknown }
        if wait.receivedAt != nil { return .alreadyReceived }
        guard now < wait.timeoutAt else { return .expired }
        return .accepted(runId: wait.runId, taskId: wait.taskId)
    }
}

/// A request received whose run was not told yet (see ``RequestWaitStore``).
public struct ReceivedRequest: Sendable, Hashable {
    public var tokenHash: String
    public var runId: String
    public var taskId: String
    public var request: WaitedRequest

    public init(tokenHash: String, runId: String, taskId: String, request: WaitedRequest) {
        self.tokenHash = tokenHash
        self.runId = runId
        self.taskId = taskId
        self.request = request
    }

    /// The run event that delivers it.
    public var notice: RunEvent { RunEvent(runId: runId, body: .requestReceived(.init(taskId: taskId, request: request))) }
}

/// Where waits for callback requests live, for one or several task-result instances.
public protocol RequestWaitStore: Sendable {
    /// Records the request for the wait whose token hashes to `tokenHash`, if it is the first
    /// before the timeout (``RequestWaitRules/answer(_:now:)``), with its body, in one
    /// transaction; returns the answer.
    func receiveRequest(tokenHash: String, request: WaitedRequest, at now: Date) async throws -> RequestWaitAnswer
    /// Requests received before `before` whose run was not told yet, oldest first.
    func undeliveredRequests(before: Date, limit: Int) async throws -> [ReceivedRequest]
    /// Records that the runs of the requests with these token hashes were told.
    func markRequestsDelivered(tokenHashes: [String], at now: Date) async throws
}
