import BatonProtocol
import Foundation

/// A wait for an event (`io.waitForEvent`) ended with no matching event.
public struct EventWaitTimedOut: Error, CustomStringConvertible, Sendable, Hashable {
    /// The wait's key.
    public var key: String
    /// The event name it waited for.
    public var name: String
    /// When it gave up.
    public var timeoutAt: Date?

    public var description: String {
        "no '\(name)' event arrived for wait '\(key)' before its timeout\(timeoutAt.map { " (\(BatonJSON.formatDate($0)))" } ?? "")"
    }
}

extension IO {
    /// Pauses the run until an event named `name` arrives (from `source`, and passing `filter`
    /// on its payload and `contextFilter` on its context, when given), and returns it.
    ///
    /// The slice ends while the run waits; the dispatcher matches events against the wait, and
    /// the event resumes the run. Race-free: the wait counts from the moment of this call, so an
    /// event that arrives before the dispatcher has registered the wait still matches it.
    /// Several runs may wait for the same event; each gets it once. Keyed: once the wait ended,
    /// every replay returns the same event (or throws the same timeout).
    ///
    /// ```swift
    /// let approval = try await io.waitForEvent("approval", name: "expense.approved",
    ///                                          filter: ["expenseId": [.string(expense.id)]], timeout: .seconds(86_400))
    /// let approver = try approval.payload(as: Approval.self).approver
    /// ```
    /// - Parameter timeout: 10 s to 365 days; 1 hour when not given.
    /// - Throws: ``EventWaitTimedOut`` when no event matched in time; `JobDefinitionError` for a
    ///   timeout out of bounds or an invalid filter; `BatonInterrupt` while it waits (let it
    ///   propagate).
    public func waitForEvent(
        _ key: String, name: String, source: String? = nil, filter: JSONValue? = nil, contextFilter: JSONValue? = nil,
        timeout: Duration = EventWaitRequest.defaultTimeout
    ) async throws -> WaitedEvent {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if let ended: WaitedEvent = try endedWait(taskId, key: key, timedOut: EventWaitTimedOut(key: key, name: name, timeoutAt: nil)) {
            return ended
        }
        try checkWaitTimeout(timeout, what: "wait for event '\(key)'")
        // When the wait began: recorded once (a task under the wait), so a replay that registers
        // it again (its first send failed) counts from the same moment and misses nothing.
        let sinceTaskId = Identifiers.taskID(runID: slice.runId, parentTaskID: taskId, key: "baton.since")
        let since: Date
        if let stored = slice.output(of: sinceTaskId), let recorded = try? stored.decode(as: Date.self) {
            since = recorded
        } else {
            since = Date()
            let recorded = try JSONValue(encoding: since)
            try slice.checkNotFenced(before: "wait for event '\(key)'")
            try await slice.publish(.taskCompleted(.init(taskId: sinceTaskId, key: "baton.since", parentTaskId: taskId, output: recorded)))
            slice.complete(sinceTaskId, output: recorded)
        }
        let request: EventWaitRequest
        do {
            request = EventWaitRequest(
                runId: slice.runId, taskId: taskId, name: name, source: source,
                filter: try filter.map { filter throws(ValidationError) in try EventFilter(filter, path: "filter") },
                contextFilter: try contextFilter.map { filter throws(ValidationError) in try EventFilter(filter, path: "contextFilter") },
                since: since, timeoutAt: since.addingTimeInterval(timeout / .seconds(1)))
            try slice.limits.checkKey(key, path: "key", what: "wait key '\(key.prefix(40))…'")
        } catch {
            throw JobDefinitionError(message: "wait for event '\(key)': \(error)")
        }
        // The registration's id derives from the run and the task: a replay's resend registers nothing new.
        let registration = EventEnvelope(id: Identifiers.eventID(runID: slice.runId, taskID: taskId), name: JobTrigger.eventWaitName, source: "baton",
                                         tenant: slice.tenant, eventWait: request)
        do {
            try registration.validate()
        } catch {
            throw JobDefinitionError(message: "wait for event '\(key)': \(error)")
        }
        try slice.checkNotFenced(before: "wait for event '\(key)'")
        // The waiting task and its timeout first (again on every replay while it waits: the run
        // is WAITING whenever its slice ends waiting), then, once, the registration.
        try await slice.publish(.eventWaitRequested(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, name: name, timeoutAt: request.timeoutAt)))
        if !requestSent(taskId) {
            try await sendRequest(registration, of: taskId, note: "waiting for event '\(name)' ('\(key)')")
        }
        throw slice.interrupt("waiting for event '\(name)' ('\(key)')")
    }
}

extension IO {
    /// How wait `taskId` ended, when it did: its stored outcome decoded as `T`, or `timedOut`
    /// thrown when the timeout completed it (`null`). `nil`: it has not ended.
    func endedWait<T: Decodable>(_ taskId: String, key: String, timedOut: some Error) throws -> T? {
        guard let stored = slice.output(of: taskId) else { return nil }
        guard stored != .null else { throw timedOut }
        do {
            return try stored.decode(as: T.self)
        } catch {
            throw JobDefinitionError(message: "the stored outcome of wait '\(key)' does not decode as \(T.self): \(BatonJSON.describe(error).message)")
        }
    }

    /// Checks a wait's timeout against ``EventWaitRequest/timeoutBounds``.
    func checkWaitTimeout(_ timeout: Duration, what: String) throws {
        guard EventWaitRequest.timeoutBounds.contains(timeout) else {
            throw JobDefinitionError(message: "\(what): the timeout \(timeout) is outside 10 s to 365 days")
        }
    }
}
