import BatonProtocol
import Foundation

/// A child run did not complete: it failed, timed out or was canceled, or its job could not
/// run (not registered, or disabled). Thrown by ``Job/invokeAndWait(_:_:payload:context:)``;
/// catch it to handle the child's failure in the parent.
public struct ChildRunFailed: Error, CustomStringConvertible, Sendable, Hashable {
    /// The child run's id (look it up in the runs API).
    public var runId: String
    /// The child job's slug.
    public var jobId: String
    /// How it ended: `FAILED`, `TIMED_OUT`, `CANCELED`, …
    public var status: RunStatus
    /// The child's error.
    public var message: String

    public var description: String { "child run \(runId) of job '\(jobId)' ended \(status.rawValue): \(message)" }

    init(_ outcome: ChildRunOutcome) {
        runId = outcome.runId
        jobId = outcome.jobId
        status = outcome.status
        message = outcome.error ?? "no error was recorded"
    }
}

/// How one child run of ``Job/batchInvokeAndWait(_:_:payloads:)`` ended.
public struct ChildRunResult<Output: Sendable>: Sendable {
    /// The child run's id.
    public var runId: String
    /// How it ended (`COMPLETED` when it returned its output).
    public var status: RunStatus
    /// Its output, when it completed.
    public var output: Output?
    /// Its error, when it did not.
    public var error: ChildRunFailed?

    /// The output, or the child's failure as a typed error.
    public func get() throws(ChildRunFailed) -> Output {
        if let output { return output }
        throw error ?? ChildRunFailed(ChildRunOutcome(runId: runId, jobId: "", status: status))
    }
}

extension IO {
    /// Starts (once) a run of job `jobSlug` whose outcome task `key` of this run waits for.
    /// - Returns: the child's outcome once it ended; `nil` while it runs (the invocation is
    ///   recorded and sent, and the caller ends the slice: the child's end resumes the run).
    func requestChild(_ key: String, jobSlug: String, payload: JSONValue, context: JSONValue?) async throws -> ChildRunOutcome? {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if let stored = slice.output(of: taskId) {
            do {
                return try stored.decode(as: ChildRunOutcome.self)
            } catch {
                throw JobDefinitionError(message: "the stored outcome of child task '\(key)' does not decode: \(BatonJSON.describe(error).message); was the key used by another kind of task in an earlier version?")
            }
        }
        do {
            try slice.limits.checkKey(key, path: "key", what: "child task key '\(key.prefix(40))…'")
        } catch {
            throw JobDefinitionError(message: error.message)
        }
        try slice.checkNotFenced(before: "invoking job '\(jobSlug)' ('\(key)')")
        // Ids derived from the run and the task: a replay sends the same event, which the
        // dispatcher recognises, and names the same child run. Never a second child.
        let eventId = Identifiers.eventID(runID: slice.runId, taskID: taskId)
        let childRunId = Identifiers.runID(eventID: eventId, jobSlug: jobSlug)
        let envelope = EventEnvelope(id: eventId, name: JobTrigger.invokedEventName, source: "invoke", payload: payload, context: context,
                                     invoke: jobSlug, tenant: slice.tenant, parent: ParentRun(runId: slice.runId, taskId: taskId))
        do {
            try envelope.validate()
        } catch {
            throw JobDefinitionError(message: "invoking job '\(jobSlug)' ('\(key)'): \(error)")
        }
        // The waiting task is recorded before the child can exist: its end always finds it.
        // Recorded again by every replay while the child runs (idempotent): the run is WAITING
        // whenever its slice ends waiting, whatever resumed it meanwhile.
        try await slice.publish(.childInvoked(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, childRunId: childRunId, jobId: jobSlug)))
        if !requestSent(taskId) {
            try await sendRequest(envelope, of: taskId, note: "child run \(childRunId) of job '\(jobSlug)' invoked ('\(key)')")
        }
        return nil
    }

    /// The id of the record that notes that task `taskId`'s request (a child's invocation, a
    /// wait's registration) was sent.
    private func sentMarkerID(_ taskId: String) -> String {
        Identifiers.taskID(runID: slice.runId, parentTaskID: taskId, key: "baton.sent")
    }

    /// Whether task `taskId`'s request was sent in an earlier slice: replays while it is pending
    /// do not send it again (a batch of N children would otherwise resend N²/2 invocations).
    func requestSent(_ taskId: String) -> Bool {
        slice.output(of: sentMarkerID(taskId)) != nil
    }

    /// Sends `envelope` for task `taskId`, then notes it sent (a log line of the run, which
    /// changes no status). A failed send ends the slice without an outcome (the run command is
    /// delivered again, and the replay sends the same envelope); it does not fail the run.
    func sendRequest(_ envelope: EventEnvelope, of taskId: String, note: String) async throws {
        do {
            try await slice.emit(envelope)
        } catch let error as JobDefinitionError {
            throw error
        } catch {
            throw CheckpointNotDurable(underlying: error)
        }
        let marker = sentMarkerID(taskId)
        try await slice.publish(.logged(.init(taskId: marker, level: "DEBUG", message: note, properties: nil)))
        slice.complete(marker, output: .null)
    }
}

extension Job where Payload: Encodable, Output: Decodable {
    /// Starts a run of this job as a child of the current run and returns its output when it
    /// completes. The calling run pauses meanwhile (its slice ends; the child's end resumes it).
    ///
    /// A keyed operation: a replay never starts a second child, and once the child ended every
    /// replay returns (or throws) the same outcome. The child runs on whichever job service
    /// serves this job, in the calling run's project and environment.
    ///
    /// ```swift
    /// let receipt = try await chargeCard.invokeAndWait(io, "charge", payload: Charge(orderId: order.id, cents: order.total))
    /// ```
    /// - Throws: ``ChildRunFailed`` when the child failed, timed out or was canceled, or its job
    ///   is not registered or is disabled; `BatonInterrupt` while it runs (let it propagate).
    public func invokeAndWait(_ io: IO, _ key: String, payload: Payload, context: JSONValue? = nil) async throws -> Output {
        let slug = try childSlug()
        guard let outcome = try await io.requestChild(key, jobSlug: slug, payload: try childPayload(payload, key: key), context: context) else {
            throw io.slice.interrupt("waiting for child job '\(slug)' ('\(key)')")
        }
        return try Self.result(of: outcome, key: key).get()
    }

    /// Starts one child run of this job per payload, all at once, and returns how each ended
    /// (in payload order) when all have. A task keyed by `key` whose subtasks (`"0"`, `"1"`, …)
    /// wait for the children. A child's failure does not throw: check each result
    /// (``ChildRunResult/get()``).
    /// - Throws: `BatonInterrupt` while children run (let it propagate).
    public func batchInvokeAndWait(_ io: IO, _ key: String, payloads: [Payload], context: JSONValue? = nil) async throws -> [ChildRunResult<Output>] {
        let slug = try childSlug()
        let documents = try payloads.enumerated().map { try childPayload($0.element, key: "\(key)/\($0.offset)") }
        // The batch task stores only how many children it has (each child's outcome is its own
        // subtask's output): a batch's outcomes together may exceed a task output's limit.
        let batchTaskId = Identifiers.taskID(runID: io.slice.runId, parentTaskID: io.parentTaskId, key: key)
        _ = try await io.runTask(key, options: TaskOptions(name: "invoke \(payloads.count) × \(slug)")) { batch in
            // Every child is invoked in this slice, whatever happens to the others.
            let results = await withTaskGroup(of: (Int, Result<ChildRunOutcome?, any Error>).self) { group in
                for (index, document) in documents.enumerated() {
                    group.addTask {
                        do {
                            return (index, .success(try await batch.requestChild(String(index), jobSlug: slug, payload: document, context: context)))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                var results: [Int: Result<ChildRunOutcome?, any Error>] = [:]
                for await (index, result) in group { results[index] = result }
                return results
            }
            // A real error first (a pending child would hide it until a later slice), then the wait.
            for index in documents.indices { _ = try results[index]!.get() }
            guard documents.indices.allSatisfy({ (try? results[$0]!.get()) != nil }) else {
                throw batch.slice.interrupt("waiting for \(documents.count) child runs of job '\(slug)' ('\(key)')")
            }
            return documents.count
        }
        let children = IO(slice: io.slice, parentTaskId: batchTaskId, depth: io.depth + 1)
        var results: [ChildRunResult<Output>] = []
        for index in documents.indices {
            guard let outcome = try await children.requestChild(String(index), jobSlug: slug, payload: documents[index], context: context) else {
                throw io.slice.interrupt("waiting for child \(index) of job '\(slug)' ('\(key)')")
            }
            results.append(try Self.result(of: outcome, key: "\(key)/\(index)"))
        }
        return results
    }

    private func childSlug() throws -> String {
        do {
            return try Slug.make(id)
        } catch {
            throw JobDefinitionError(message: "job id '\(id)' cannot be invoked: \(error)")
        }
    }

    private func childPayload(_ payload: Payload, key: String) throws -> JSONValue {
        do {
            return try JSONValue(encoding: payload)
        } catch {
            throw JobDefinitionError(message: "the payload of child '\(key)' of job '\(id)' does not encode as JSON: \(error)")
        }
    }

    private static func result(of outcome: ChildRunOutcome, key: String) throws -> ChildRunResult<Output> {
        guard outcome.status == .completed else {
            return ChildRunResult(runId: outcome.runId, status: outcome.status, output: nil, error: ChildRunFailed(outcome))
        }
        do {
            return ChildRunResult(runId: outcome.runId, status: outcome.status, output: try (outcome.output ?? .null).decode(as: Output.self), error: nil)
        } catch {
            throw JobDefinitionError(message: "the output of child run \(outcome.runId) ('\(key)') does not decode as \(Output.self): \(BatonJSON.describe(error).message)")
        }
    }
}
