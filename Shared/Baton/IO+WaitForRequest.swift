import BatonProtocol
import Foundation

/// A wait for a request (`io.waitForRequest`) ended with no request to its callback URL.
public struct RequestWaitTimedOut: Error, CustomStringConvertible, Sendable, Hashable {
    /// The wait's key.
    public var key: String

    public var description: String { "no request reached the callback URL of wait '\(key)' before its timeout" }
}

extension IO {
    /// Hands `callback` a URL, served by Baton, and pauses the run until something POSTs to it;
    /// returns the request's JSON body.
    ///
    /// The URL is unguessable (a 256-bit random token, drawn once per wait: the output of its
    /// `baton.token` subtask, which the run's own tenant sees in the runs API like any task
    /// output; the lookup table keeps only its hash) and answers one request: the first POST
    /// before the timeout resumes the run (200); a second gets 409, one after the timeout 410. `callback` runs once, as a task of the wait (e.g. to give the URL
    /// to a service that calls back when its work is done); the slice ends after it.
    ///
    /// ```swift
    /// let result = try await io.waitForRequest("transcode", timeout: .seconds(3600)) { url in
    ///     try await transcoder.submit(video, notify: url)
    /// }
    /// let status = try result.body(as: TranscodeDone.self).status
    /// ```
    /// - Parameter timeout: 10 s to 365 days; 1 hour when not given.
    /// - Throws: ``RequestWaitTimedOut`` when no request came in time; `JobDefinitionError` for
    ///   a timeout out of bounds, or a worker without a callback base URL; what `callback`
    ///   throws; `BatonInterrupt` while it waits (let it propagate).
    public func waitForRequest(
        _ key: String, timeout: Duration = EventWaitRequest.defaultTimeout, _ callback: @escaping @Sendable (String) async throws -> Void
    ) async throws -> WaitedRequest {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if let ended: WaitedRequest = try endedWait(taskId, key: key, timedOut: RequestWaitTimedOut(key: key)) {
            return ended
        }
        try checkWaitTimeout(timeout, what: "wait for request '\(key)'")
        guard let base = slice.callbackBaseURL, !base.isEmpty else {
            throw JobDefinitionError(message: "wait for request '\(key)' needs the address callers reach Baton at: set the worker's callbackBaseURL (or taskResultsURL)")
        }
        do {
            try slice.limits.checkKey(key, path: "key", what: "wait key '\(key.prefix(40))…'")
        } catch {
            throw JobDefinitionError(message: error.message)
        }
        try slice.checkNotFenced(before: "wait for request '\(key)'")
        // The token and the timeout are drawn once (a subtask of the wait): replays hand out the
        // same URL and keep the same deadline.
        let waitIO = IO(slice: slice, parentTaskId: taskId, depth: depth + 1)
        let plan = try await waitIO.runTask("baton.token", options: TaskOptions(name: "callback URL")) { _ in
            CallbackPlan(token: CallbackToken.make(), timeoutAt: Date().addingTimeInterval(timeout / .seconds(1)))
        }
        let waiting = RunEvent.Body.requestWaitRequested(.init(taskId: taskId, key: key, parentTaskId: parentTaskId,
                                                              tokenHash: CallbackToken.hash(plan.token), timeoutAt: plan.timeoutAt))
        // Recorded before the URL is handed out (a caller may answer at once), and again after
        // the callback task (which made the run EXECUTING): the slice ends with the run WAITING.
        try await slice.publish(waiting)
        let url = base.trimmingSuffix("/") + CallbackToken.path(plan.token)
        let callbackId = Identifiers.taskID(runID: slice.runId, parentTaskID: taskId, key: "callback")
        if slice.output(of: callbackId) == nil {
            _ = try await waitIO.runTask("callback", options: TaskOptions(name: "callback")) { _ in
                try await callback(url)
                return true
            }
            try await slice.publish(waiting)
        }
        throw slice.interrupt("waiting for a request to the callback URL of '\(key)'")
    }
}

/// What a wait for a request draws once: its token and its deadline.
struct CallbackPlan: Codable, Sendable {
    var token: String
    var timeoutAt: Date
}

extension String {
    /// The string without `suffix` at its end (as many times as it repeats).
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while !suffix.isEmpty, text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
