import BatonProtocol
import Foundation
import Tracing

/// The durable operations a job's `run` function performs: keyed tasks, waits and logs.
///
/// Every operation has a key. The same key in the same run (under the same parent task) is the
/// same operation: once it completed, every later call returns the stored result instead of
/// running again — across slices, restarts and workers.
public final class IO: Sendable {
    /// The deepest allowed nesting of subtasks.
    public static let maximumDepth = 5

    let slice: SliceState
    /// The task this `IO` belongs to; `nil` at the top of the run.
    let parentTaskId: String?
    let depth: Int

    /// Log lines recorded in the run, keyed by their message.
    public let logger: IOLogger

    init(slice: SliceState, parentTaskId: String?, depth: Int) {
        self.slice = slice
        self.parentTaskId = parentTaskId
        self.depth = depth
        self.logger = IOLogger(slice: slice, parentTaskId: parentTaskId)
    }

    /// Runs `body` once for `key`, storing its output; later calls return the stored output.
    ///
    /// - Parameters:
    ///   - key: identity of the task within its parent; keep it stable across deploys.
    ///   - options: display name, properties, retry policy, deduplication key and scope.
    ///   - body: the task's work. It receives an `IO` whose tasks are subtasks of this one.
    /// - Returns: the task's output, decoded from the stored JSON on replays.
    /// - Throws: what `body` throws once no attempt is left (every failure is recorded; with
    ///   a retry policy, earlier failures end the slice and the task is tried again after a
    ///   durable back-off); `JobDefinitionError` when nesting exceeds ``maximumDepth``, the
    ///   retry policy is invalid, or a stored output no longer decodes as `T`.
    public func runTask<T: Codable & Sendable>(
        _ key: String, options: TaskOptions = TaskOptions(), _ body: @Sendable (IO) async throws -> T
    ) async throws -> T {
        switch try await runTaskCore(key, options: options, body) {
        case .value(let value): return value
        case .earlierFailure(let error): throw EarlierFailure(error: error)
        }
    }

    /// ``runTask(_:options:_:)`` with `skipFailure`: when a task failed earlier under the
    /// options' deduplication key, returns `nil` (the failure is recorded) and the run goes on.
    public func runTaskSkippingFailure<T: Codable & Sendable>(
        _ key: String, options: TaskOptions, _ body: @Sendable (IO) async throws -> T
    ) async throws -> T? {
        var options = options
        options.skipFailure = true
        switch try await runTaskCore(key, options: options, body) {
        case .value(let value): return value
        case .earlierFailure: return nil
        }
    }

    enum TaskResult<T> {
        case value(T)
        case earlierFailure(String)
    }

    func runTaskCore<T: Codable & Sendable>(
        _ key: String, options: TaskOptions, _ body: @Sendable (IO) async throws -> T
    ) async throws -> TaskResult<T> {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if let stored = slice.output(of: taskId) {
            return .value(try decodeStored(stored, key: key))
        }
        do {
            try slice.limits.checkKey(key, path: "key", what: "task key '\(key.prefix(40))…'")
            if let deduplicationKey = options.deduplicationKey {
                try slice.limits.checkKey(deduplicationKey, path: "deduplicationKey", what: "deduplication key of task '\(key)'")
            }
        } catch {
            throw JobDefinitionError(message: error.message)
        }
        guard depth < Self.maximumDepth else {
            throw JobDefinitionError(message: "task '\(key)' is nested \(depth + 1) levels deep; subtasks may nest at most \(Self.maximumDepth) levels")
        }
        if let retry = options.retry {
            do {
                try retry.validate()
            } catch {
                throw JobDefinitionError(message: "task '\(key)': invalid retry option \(error)")
            }
        }
        try slice.checkNotFenced(before: "task '\(key)'")
        if !options.ignoresSliceBudget && ContinuousClock.now >= slice.deadline {
            // Auto-yield: one long run must not hold its partition. The run resumes at once.
            if slice.claimYield() {
                try await slice.publish(.yielded(.init(yieldId: UUID().uuidString.lowercased())))
            }
            throw slice.interrupt("slice time budget used; yielding before task '\(key)'")
        }
        let attempt = slice.failedAttempts(of: taskId) + 1
        var scopedKey: String?
        if let deduplicationKey = options.deduplicationKey {
            let scope = slice.scope
            do {
                scopedKey = try options.deduplicationScope.scopedKey(
                    deduplicationKey, organization: scope.organization, project: scope.project, jobSlug: scope.jobSlug)
            } catch {
                throw JobDefinitionError(message: "task '\(key)': \(error)")
            }
            guard let claim = slice.claim else {
                throw JobDefinitionError(message: "task '\(key)' has a deduplication key, which needs the task-result service: set the worker's taskResultsURL")
            }
            let answer = try await claim(DeduplicationClaimRequest(scopedKey: scopedKey!, runId: slice.runId, taskId: taskId, skipFailure: options.skipFailure))
            switch answer.outcome {
            case .completed:
                let output = answer.output ?? .null
                try await slice.publish(.taskCompleted(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, output: output)))
                slice.complete(taskId, output: output)
                return .value(try decodeStored(output, key: key))
            case .failed:
                let error = answer.error ?? "unknown error"
                try await slice.publish(.taskFailed(.init(taskId: taskId, key: key, parentTaskId: parentTaskId,
                                                          error: "not executed: a task failed earlier under its deduplication key: \(error)", attempt: attempt)))
                return .earlierFailure(error)
            default:
                break  // .execute: this task holds the key now
            }
        }
        // The start record is sent ahead: handed to the producer before the task runs, and
        // acknowledged together with the task's outcome (one broker round trip per task). Only
        // the acknowledged completion decides that the task never runs again.
        let startAcknowledged = try await slice.sendAhead(.taskStarted(.init(taskId: taskId, key: key, parentTaskId: parentTaskId,
                                                                             name: options.name, attempt: attempt, properties: options.properties)))
        let output: T
        do {
            output = try await withSpan("task \(key)") { span in
                span.attributes["baton.task.id"] = taskId
                span.attributes["baton.task.attempt"] = attempt
                return try await body(IO(slice: slice, parentTaskId: taskId, depth: depth + 1))
            }
        } catch let interrupt as BatonInterrupt {
            try await startAcknowledged()
            throw interrupt
        } catch {
            try await startAcknowledged()
            if let interrupt = slice.raisedInterrupt, Task.isCancelled {
                // A parallel branch ended the slice and this one was cancelled with it: not a
                // failure of the task, which runs again in a later slice.
                throw interrupt
            }
            if Task.isCancelled {
                // The worker is stopping (its shutdown deadline passed): not a failure of the
                // task. Nothing is recorded; the run command is delivered again after the restart.
                throw SliceCancelled(task: key)
            }
            let delay = Self.retryDelay(after: error, attempt: attempt, policy: options.retry)
            let retryAt = delay.map { Date().addingTimeInterval(Double($0) / 1000) }
            try await slice.publish(.taskFailed(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, error: "\(error)",
                                                      attempt: attempt, retryAt: retryAt, deduplicationKey: scopedKey)))
            if let delay {
                throw slice.interrupt("retry of task '\(key)' (attempt \(attempt + 1)) in \(delay) ms")
            }
            throw error
        }
        let json: JSONValue
        let size: Int
        do {
            json = try JSONValue(encoding: output)
            size = try BatonJSON.encoder.encode(json).count
        } catch {
            try? await startAcknowledged()
            throw error
        }
        if size > slice.limits.taskOutputBytes {
            try await startAcknowledged()
            // Not retried: the same code would produce the same output.
            let message = "task '\(key)' produced \(size) bytes of output; the limit is \(slice.limits.taskOutputBytes) (limits.task.output.bytes): "
                + "return less (store large data elsewhere and return a reference)"
            try await slice.publish(.taskFailed(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, error: message,
                                                      attempt: attempt, retryAt: nil, deduplicationKey: scopedKey)))
            throw TaskFailure.doNotRetry(message)
        }
        // The job continues only once the broker holds the result: a completed task never runs again.
        do {
            try await slice.publish(.taskCompleted(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, output: json, deduplicationKey: scopedKey)))
        } catch {
            try? await startAcknowledged()
            throw error
        }
        try await startAcknowledged()
        slice.complete(taskId, output: json)
        return .value(output)
    }

    private func decodeStored<T: Decodable>(_ stored: JSONValue, key: String) throws -> T {
        do {
            return try stored.decode(as: T.self)
        } catch {
            throw JobDefinitionError(message: "the stored output of task '\(key)' does not decode as \(T.self): \(BatonJSON.describe(error).message); did the task's output type change without a new job version?")
        }
    }

    /// Milliseconds until the next attempt after `error` on `attempt`, or `nil` for none.
    static func retryDelay(after error: any Error, attempt: Int, policy: RetryPolicy?) -> Int? {
        guard let policy else { return nil }
        var generator = SystemRandomNumberGenerator()
        guard let planned = policy.delayMilliseconds(afterAttempt: attempt, using: &generator) else { return nil }
        if let failure = error as? TaskFailure {
            guard failure.retryable else { return nil }
            if let after = failure.retryAfter {
                return Int((after / .milliseconds(1)).rounded())
            }
        }
        return planned
    }

    /// Pauses the run for `seconds`, durably: the slice ends and the run resumes after the
    /// delay, even if every process restarts in between.
    /// - Throws: `BatonInterrupt` to end the slice (let it propagate).
    public func wait(_ key: String, seconds: Double) async throws {
        try await wait(key, until: Date().addingTimeInterval(seconds))
    }

    /// Pauses the run until `date` (see ``wait(_:seconds:)``). The first call fixes the time;
    /// replays of the same key keep it.
    public func wait(_ key: String, until date: Date) async throws {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if slice.output(of: taskId) != nil { return }
        try slice.checkNotFenced(before: "wait '\(key)'")
        try await slice.publish(.waitRequested(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, until: date)))
        throw slice.interrupt("wait '\(key)'")
    }

    /// Has the task-result service perform an HTTP request, durably, and returns its response.
    ///
    /// The slice ends while the request is in flight (the job service is not blocked); the
    /// service retries by `retry` — rules keyed by status (`"429"`, `"500-599"`, `"5xx"`) or
    /// `"network"` — stores status, headers and body as the task's output and resumes the run.
    /// The final response is returned whatever its status: check `isSuccess`.
    /// - Throws: `BatonInterrupt` while the request is pending (let it propagate);
    ///   `JobDefinitionError` for an invalid URL, method or retry rule.
    public func backgroundFetch(
        _ key: String, url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil,
        retry: [String: RetryPolicy] = [:]
    ) async throws -> BackgroundFetchResponse {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if let stored = slice.output(of: taskId) {
            return try decodeStored(stored, key: key)
        }
        let request = BackgroundFetchRequest(url: url, method: method.uppercased(), headers: headers, body: body, retry: retry)
        do {
            try request.validate()
        } catch {
            throw JobDefinitionError(message: "background fetch '\(key)': \(error)")
        }
        try slice.checkNotFenced(before: "background fetch '\(key)'")
        try await slice.publish(.fetchRequested(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, request: request)))
        throw slice.interrupt("background fetch '\(key)'")
    }

    /// Sends an event (as `sendEvent` over HTTP would), once: it is a task keyed by `key`, and
    /// its event id is derived from the run and the key, so a replay never sends it twice.
    /// - Parameter deliverAfter: hold the event this long before it starts runs (durably, in the
    ///   dispatcher); `nil` delivers it now.
    /// - Returns: the event id.
    public func sendEvent(
        _ key: String, name: String, payload: some Encodable & Sendable, context: JSONValue? = nil, source: String = "trigger",
        deliverAfter: Duration? = nil
    ) async throws -> String {
        let json = try JSONValue(encoding: payload)
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        let eventId = Identifiers.eventID(runID: slice.runId, taskID: taskId)
        let slice = self.slice
        return try await runTask(key, options: TaskOptions(name: "send event \(name)")) { _ in
            let deliverAt = deliverAfter.map { Date().addingTimeInterval($0 / .seconds(1)) }
            let envelope = EventEnvelope(id: eventId, name: name, source: source, payload: json, context: context, deliverAt: deliverAt,
                                         tenant: slice.tenant)
            do {
                try envelope.validate()
            } catch {
                throw TaskFailure.doNotRetry("event '\(name)' is invalid: \(error)")
            }
            try await slice.emit(envelope)
            return eventId
        }
    }

    /// Runs `body`; errors go to `handler`, except the Baton interrupt, which is rethrown.
    public func `try`<T: Sendable>(
        _ body: () async throws -> T, catch handler: (any Error) async throws -> T
    ) async throws -> T {
        do {
            return try await body()
        } catch let interrupt as BatonInterrupt {
            throw interrupt
        } catch {
            return try await handler(error)
        }
    }
}

/// Log lines of a run. The message is the line's key (as in Trigger.dev): a replayed slice does
/// not repeat lines already recorded.
public struct IOLogger: Sendable {
    let slice: SliceState
    let parentTaskId: String?

    public func debug(_ message: String, _ properties: JSONValue? = nil) async { await write("DEBUG", message, properties) }
    public func log(_ message: String, _ properties: JSONValue? = nil) async { await write("LOG", message, properties) }
    public func info(_ message: String, _ properties: JSONValue? = nil) async { await write("INFO", message, properties) }
    public func warn(_ message: String, _ properties: JSONValue? = nil) async { await write("WARN", message, properties) }
    public func error(_ message: String, _ properties: JSONValue? = nil) async { await write("ERROR", message, properties) }

    private func write(_ level: String, _ message: String, _ properties: JSONValue?) async {
        // Below the job's log level (`JobOptions.logLevel`): not recorded.
        if let lineLevel = JobLogLevel(lineLevel: level), lineLevel < slice.logLevel { return }
        let limit = slice.limits.logLineBytes
        var message = message
        if message.utf8.count > limit {
            // Cut on a character boundary; the cut message is the key, so replays match.
            let dropped = message.utf8.count - limit
            var cut = message.utf8.prefix(limit)
            while String(cut) == nil { cut = cut.dropLast() }
            message = String(cut)! + "… [\(dropped) bytes cut: limits.log.line.bytes]"
        }
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: "log\u{0}\(level)\u{0}\(message)")
        guard slice.output(of: taskId) == nil else { return }
        // Best effort: a log line that cannot be recorded does not fail the run.
        do {
            try await slice.publish(.logged(.init(taskId: taskId, level: level, message: message, properties: properties)))
            slice.complete(taskId, output: .null)
        } catch {}
    }
}
