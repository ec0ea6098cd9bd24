import BatonProtocol
import Foundation
import Synchronization

/// Runs a job's slices without Kafka or services: for resume tests and benchmarks.
///
/// ```swift
/// let harness = JobHarness(job: welcome, payload: ["id": "u1", "email": "a@b.c", "name": "A"])
/// let result = try await harness.runToCompletion()
/// #expect(result.outcome == .runCompleted(.init(output: …)))
/// ```
/// `runToCompletion` feeds every recorded result back into the next slice, as the
/// task-result service would, with waits and back-offs over at once: a job whose tasks count
/// their executions shows whether a replay re-executes a completed task.
public struct JobHarness: Sendable {
    public let job: any AnyJob
    public var payload: JSONValue
    public var runId: String
    public var organization: String
    public var project: String
    /// How child runs end (``Job/invokeAndWait(_:_:payload:context:)``): called once per child
    /// the run invokes, with the invoking event (its `invoke` names the job; its payload is the
    /// child's). `nil`: invoking a child job is an error.
    public var childRuns: (@Sendable (EventEnvelope) async throws -> ChildRunOutcome)?
    /// Which event each wait gets (`io.waitForEvent`): called once per wait, with its request;
    /// `nil`: the wait times out. `nil` closure: waiting for an event is an error.
    public var eventWaits: (@Sendable (EventWaitRequest) async throws -> EventEnvelope?)?
    /// The body each wait for a request gets (`io.waitForRequest`), by the wait's key; `nil`: the
    /// wait times out. `nil` closure: a wait for a request times out.
    public var requests: (@Sendable (String) async throws -> JSONValue?)?

    public init(job: any AnyJob, payload: JSONValue, runId: String = "run_harness", organization: String = "default", project: String = "default",
                childRuns: (@Sendable (EventEnvelope) async throws -> ChildRunOutcome)? = nil,
                eventWaits: (@Sendable (EventWaitRequest) async throws -> EventEnvelope?)? = nil,
                requests: (@Sendable (String) async throws -> JSONValue?)? = nil) {
        self.requests = requests
        self.job = job
        self.payload = payload
        self.runId = runId
        self.organization = organization
        self.project = project
        self.childRuns = childRuns
        self.eventWaits = eventWaits
    }

    /// Runs one slice that replays `completed`; every run event goes to `publish`, or, when
    /// given, a task's start record to `enqueue` (handed over at once, acknowledged later, as
    /// `JobWorker` does with its producer).
    /// - Returns: the run's final event, or `nil` when the slice yielded.
    public func runSlice(
        completed: [CompletedTask] = [], failedAttempts: [String: Int] = [:], attempt: Int = 1, budget: Duration = .seconds(30),
        publish: @escaping @Sendable (RunEvent.Body) async throws -> Void,
        enqueue: (@Sendable (RunEvent.Body) throws -> @Sendable () async throws -> Void)? = nil,
        emit: (@Sendable (EventEnvelope) async throws -> Void)? = nil
    ) async throws -> RunEvent.Body? {
        let registration = try job.registration()
        let slice = SliceState(runId: runId, completed: completed, failedAttempts: failedAttempts, budget: budget, publish: publish, enqueue: enqueue,
                               emit: emit ?? { _ in
                                   throw JobDefinitionError(message: "the harness cannot send events here: use runToCompletion with childRuns for child jobs")
                               },
                               scope: (organization: organization, project: project, jobSlug: registration.slug),
                               logLevel: registration.logLevel ?? .debug, callbackBaseURL: "https://baton.invalid")
        let context = JobContext(runId: runId, jobId: registration.id, jobSlug: registration.slug, jobVersion: registration.version,
                                 event: .init(id: "evt_harness", name: registration.trigger.eventName, timestamp: Date(), context: nil),
                                 attempt: attempt, organization: organization, project: project)
        return try await SliceRunner.run(job, payload: payload, slice: slice, context: context)
    }

    /// What ``runToCompletion(maxSlices:)`` saw.
    public struct Result: Sendable {
        /// The run's final event.
        public var outcome: RunEvent.Body
        /// Every run event, in order.
        public var events: [RunEvent.Body]
        /// Slices run.
        public var slices: Int
    }

    /// Runs slices until the run finishes, feeding recorded results back each time.
    /// - Throws: `JobDefinitionError` when it has not finished after `maxSlices`, or asks for a
    ///   background fetch (which needs the task-result service).
    public func runToCompletion(maxSlices: Int = 100) async throws -> Result {
        let recorded = Mutex<[RunEvent.Body]>([])
        let invoked = Mutex<[EventEnvelope]>([])
        var childOutcomes: [String: JSONValue] = [:]
        let childRuns = self.childRuns
        let eventWaits = self.eventWaits
        let requests = self.requests
        for sliceNumber in 1...maxSlices {
            let events = recorded.withLock { $0 }
            var completed: [CompletedTask] = []
            var failures: [String: Int] = [:]
            for event in events {
                switch event {
                case .taskCompleted(let task): completed.append(CompletedTask(taskId: task.taskId, key: task.key, output: task.output))
                case .waitRequested(let wait): completed.append(CompletedTask(taskId: wait.taskId, key: wait.key, output: .null))
                case .logged(let line): completed.append(CompletedTask(taskId: line.taskId, key: line.message, output: .null))
                case .taskFailed(let failure): failures[failure.taskId] = max(failures[failure.taskId] ?? 0, failure.attempt)
                case .fetchRequested(let fetch):
                    throw JobDefinitionError(message: "the harness cannot perform background fetch '\(fetch.key)'")
                default: break
                }
            }
            completed += childOutcomes.map { CompletedTask(taskId: $0.key, key: $0.key, output: $0.value) }
            // The waits for requests of the last slice end (with a body, or timed out) before this one.
            for case .requestWaitRequested(let wait) in events where childOutcomes[wait.taskId] == nil {
                let body = try await requests?(wait.key)
                childOutcomes[wait.taskId] = try body.map { try JSONValue(encoding: WaitedRequest(body: $0, receivedAt: Date())) } ?? .null
                completed.append(CompletedTask(taskId: wait.taskId, key: wait.key, output: childOutcomes[wait.taskId]!))
            }
            let outcome = try await runSlice(completed: completed, failedAttempts: failures, attempt: sliceNumber, publish: { body in
                recorded.withLock { $0.append(body) }
            }, emit: { envelope in
                guard (envelope.parent != nil && childRuns != nil) || (envelope.eventWait != nil && eventWaits != nil) else {
                    throw JobDefinitionError(message: "the harness cannot send event '\(envelope.name)': give it childRuns for child jobs, eventWaits for waits")
                }
                invoked.withLock { $0.append(envelope) }
            })
            // The children invoked in this slice end, and its waits for events end, before the next one.
            for envelope in invoked.withLock({ list in defer { list.removeAll() }; return list }) {
                if let parent = envelope.parent, let childRuns, childOutcomes[parent.taskId] == nil {
                    childOutcomes[parent.taskId] = try JSONValue(encoding: try await childRuns(envelope))
                } else if let wait = envelope.eventWait, let eventWaits, childOutcomes[wait.taskId] == nil {
                    childOutcomes[wait.taskId] = try await eventWaits(wait).map { try JSONValue(encoding: WaitedEvent($0)) } ?? .null
                }
            }
            if let outcome {
                return Result(outcome: outcome, events: recorded.withLock { $0 } + [outcome], slices: sliceNumber)
            }
        }
        throw JobDefinitionError(message: "the run did not finish within \(maxSlices) slices")
    }
}
