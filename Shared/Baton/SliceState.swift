import BatonProtocol
import Foundation
import Synchronization

/// What one execution slice shares among all the `IO` values of a run (parents and subtasks,
/// parallel branches): the stored results, and the interrupt once raised.
final class SliceState: Sendable {
    struct State {
        var completed: [String: JSONValue]
        var failedAttempts: [String: Int]
        var interrupt: BatonInterrupt?
        var yielded = false
        var fenced = false
    }

    let runId: String
    /// After this instant, the slice yields before its next new task.
    let deadline: ContinuousClock.Instant
    private let publisher: @Sendable (RunEvent.Body) async throws -> Void
    /// Hands a record to the producer at once (ahead of anything published after it) and
    /// returns the wait for its acknowledgement; `nil`: every record goes through `publisher`.
    private let enqueuer: (@Sendable (RunEvent.Body) throws -> @Sendable () async throws -> Void)?
    /// Produces an event to the events topic and waits for the broker's ack.
    let emit: @Sendable (EventEnvelope) async throws -> Void
    /// Claims a deduplication key at the task-result service (waiting while another run holds
    /// it); `nil` when the worker has no task-result service.
    let claim: (@Sendable (DeduplicationClaimRequest) async throws -> DeduplicationClaim)?
    /// Organization, project and job slug: the scopes of deduplication keys.
    let scope: (organization: String, project: String, jobSlug: String)
    /// The tenant of the run: events it sends belong to it.
    let tenant: Tenant
    /// Limits on keys, outputs and log lines.
    let limits: Limits
    /// The least severe `io.logger` level recorded (the job's option).
    let logLevel: JobLogLevel
    /// Where the task-result service receives callback requests (`io.waitForRequest`), e.g.
    /// `https://baton.example.com`; `nil`: not configured.
    let callbackBaseURL: String?
    private let state: Mutex<State>

    init(runId: String, completed: [CompletedTask], failedAttempts: [String: Int] = [:], budget: Duration = .seconds(30),
         publish: @escaping @Sendable (RunEvent.Body) async throws -> Void,
         enqueue: (@Sendable (RunEvent.Body) throws -> @Sendable () async throws -> Void)? = nil,
         emit: @escaping @Sendable (EventEnvelope) async throws -> Void = { _ in
             throw JobDefinitionError(message: "this IO cannot send events")
         },
         claim: (@Sendable (DeduplicationClaimRequest) async throws -> DeduplicationClaim)? = nil,
         scope: (organization: String, project: String, jobSlug: String) = ("default", "default", "job"),
         tenant: Tenant = .default, limits: Limits = .default, logLevel: JobLogLevel = .debug, callbackBaseURL: String? = nil) {
        self.runId = runId
        self.callbackBaseURL = callbackBaseURL
        self.tenant = tenant
        self.limits = limits
        self.logLevel = logLevel
        self.publisher = publish
        self.enqueuer = enqueue
        self.emit = emit
        self.claim = claim
        self.scope = scope
        self.deadline = ContinuousClock.now + budget
        self.state = Mutex(State(completed: Dictionary(completed.map { ($0.taskId, $0.output) }, uniquingKeysWith: { first, _ in first }),
                                 failedAttempts: failedAttempts, interrupt: nil))
    }

    /// Records `body` durably (returns once the broker acknowledged it).
    /// - Throws: `CheckpointNotDurable` when it could not be recorded: the slice must stop and
    ///   its command must not be committed.
    func publish(_ body: RunEvent.Body) async throws {
        do {
            try await publisher(body)
        } catch {
            throw CheckpointNotDurable(underlying: error)
        }
    }

    /// Sends `body` ahead: it is handed to the producer before this returns, so it precedes
    /// every record published after it, but its acknowledgement is awaited later, with the
    /// returned function (call it once). Without an enqueuer (or when the producer's queue is
    /// full) it is published and acknowledged before this returns.
    /// - Throws: `CheckpointNotDurable`, now or from the returned function.
    func sendAhead(_ body: RunEvent.Body) async throws -> @Sendable () async throws -> Void {
        if let enqueuer, let acknowledged = try? enqueuer(body) {
            return {
                do {
                    try await acknowledged()
                } catch {
                    throw CheckpointNotDurable(underlying: error)
                }
            }
        }
        try await publish(body)
        return {}
    }

    /// Attempts of `taskId` that failed in earlier slices.
    func failedAttempts(of taskId: String) -> Int {
        state.withLock { $0.failedAttempts[taskId] ?? 0 }
    }

    /// The stored output of task `taskId`, if it completed.
    func output(of taskId: String) -> JSONValue? {
        state.withLock { $0.completed[taskId] }
    }

    /// Records that `taskId` completed with `output` (after the broker acknowledged it).
    func complete(_ taskId: String, output: JSONValue) {
        state.withLock { $0.completed[taskId] = output }
    }

    /// Raises (and remembers) the interrupt that ends this slice.
    func interrupt(_ reason: String) -> BatonInterrupt {
        let interrupt = BatonInterrupt(reason: reason)
        state.withLock { if $0.interrupt == nil { $0.interrupt = interrupt } }
        return interrupt
    }

    /// Stops the slice from starting new work: its partition was revoked and another worker
    /// will continue the run. Work already started may still record its result.
    func fence() {
        state.withLock { $0.fenced = true }
    }

    /// Whether the slice was fenced.
    var isFenced: Bool { state.withLock { $0.fenced } }

    /// Throws the interrupt that ends a fenced slice, before it starts new work.
    func checkNotFenced(before what: String) throws {
        if isFenced { throw interrupt("partition revoked: stopping before \(what); another worker continues the run") }
    }

    /// Whether the caller is the first to yield this slice (parallel branches yield once).
    func claimYield() -> Bool {
        state.withLock { state in
            defer { state.yielded = true }
            return !state.yielded
        }
    }

    /// The interrupt raised in this slice, if any.
    var raisedInterrupt: BatonInterrupt? { state.withLock { $0.interrupt } }
}

/// A run event of the slice could not be recorded: the slice stops without an outcome, and its
/// command is not committed (it comes back, and the replay returns what was recorded).
public struct CheckpointNotDurable: Error, CustomStringConvertible {
    public var underlying: any Error
    public var description: String { "a checkpoint was not acknowledged: \(underlying)" }
}
