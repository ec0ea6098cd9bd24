import Foundation

/// Something that happened in a run, recorded by the task-result service.
///
/// Published on `baton.task-results` with the run id as key, so one run's events stay in order.
public struct RunEvent: Codable, Sendable, Hashable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var runId: String
    public var occurredAt: Date
    public var body: Body

    public init(runId: String, occurredAt: Date = Date(), body: Body) {
        self.schemaVersion = Self.currentSchemaVersion
        self.runId = runId
        self.occurredAt = occurredAt
        self.body = body
    }

    /// The kinds of run event. Messages carry the kind in `type` and its fields in `data`.
    public enum Body: Sendable, Hashable {
        /// The dispatcher created the run.
        case runCreated(RunCreated)
        /// A task started executing.
        case taskStarted(TaskStarted)
        /// A task finished; its output is now the task's permanent result.
        case taskCompleted(TaskCompleted)
        /// A task attempt threw.
        case taskFailed(TaskFailed)
        /// The run asks to be resumed at `until`.
        case waitRequested(WaitRequested)
        /// A log line of the run.
        case logged(Logged)
        /// The slice used its time budget and yielded; resume the run now.
        case yielded(Yielded)
        /// The run asks the task-result service to perform an HTTP request and resume it.
        case fetchRequested(FetchRequested)
        /// The run function returned.
        case runCompleted(RunCompleted)
        /// The run function threw, or the payload was invalid.
        case runFailed(RunFailed)
        /// The run invoked a child job and waits for its outcome.
        case childInvoked(ChildInvoked)
        /// A child run of this run ended (sent by the task-result service, or by the dispatcher
        /// when the child job cannot run).
        case childRunFinished(ChildRunFinished)
        /// The run waits for an event (`io.waitForEvent`) until it arrives or the wait times out.
        case eventWaitRequested(EventWaitRequested)
        /// The event a run waited for arrived (sent by the dispatcher).
        case eventWaitMatched(EventWaitMatched)
        /// A wait for an event or a request reached its timeout (sent by the task-result service).
        case eventWaitTimedOut(EventWaitTimedOut)
        /// The run waits for a request to its callback URL (`io.waitForRequest`).
        case requestWaitRequested(RequestWaitRequested)
        /// The request a run waited for arrived (sent by the task-result service).
        case requestReceived(RequestReceived)

        /// The kind's name, as in the JSON `type` field (`runCreated`, `taskCompleted`, …).
        public var type: String {
            switch self {
            case .runCreated: "runCreated"
            case .taskStarted: "taskStarted"
            case .taskCompleted: "taskCompleted"
            case .taskFailed: "taskFailed"
            case .waitRequested: "waitRequested"
            case .logged: "logged"
            case .yielded: "yielded"
            case .fetchRequested: "fetchRequested"
            case .runCompleted: "runCompleted"
            case .runFailed: "runFailed"
            case .childInvoked: "childInvoked"
            case .childRunFinished: "childRunFinished"
            case .eventWaitRequested: "eventWaitRequested"
            case .eventWaitMatched: "eventWaitMatched"
            case .eventWaitTimedOut: "eventWaitTimedOut"
            case .requestWaitRequested: "requestWaitRequested"
            case .requestReceived: "requestReceived"
            }
        }
    }

    public struct RunCreated: Codable, Sendable, Hashable {
        public var jobSlug: String
        public var jobVersion: String
        public var event: EventEnvelope
        /// The run this one replays (`POST /api/v1/runs/{id}/replay`): same job version, same payload.
        public var replayOf: String?
        /// The concurrency queue the run waits in for a slot (its job has a
        /// ``ConcurrencyLimit``): the task-result service sends its first command when it gets
        /// one. `nil`: the run is not limited (the dispatcher sends its command at once).
        public var concurrency: ConcurrencySlot?
        public init(jobSlug: String, jobVersion: String, event: EventEnvelope, replayOf: String? = nil,
                    concurrency: ConcurrencySlot? = nil) {
            self.jobSlug = jobSlug
            self.jobVersion = jobVersion
            self.event = event
            self.replayOf = replayOf
            self.concurrency = concurrency
        }
    }

    public struct TaskStarted: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        public var name: String?
        public var attempt: Int
        /// Properties shown with the task.
        public var properties: JSONValue?
        public init(taskId: String, key: String, parentTaskId: String?, name: String?, attempt: Int, properties: JSONValue? = nil) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.name = name
            self.attempt = attempt
            self.properties = properties
        }
    }

    public struct TaskCompleted: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        public var output: JSONValue
        /// The scoped deduplication key the task held, whose claim this completes.
        public var deduplicationKey: String?
        public init(taskId: String, key: String, parentTaskId: String?, output: JSONValue, deduplicationKey: String? = nil) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.output = output
            self.deduplicationKey = deduplicationKey
        }
    }

    public struct TaskFailed: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        public var error: String
        public var attempt: Int
        /// When the next attempt is due; `nil` when this was the last attempt.
        public var retryAt: Date?
        /// The scoped deduplication key the task held; a final failure releases it as failed.
        public var deduplicationKey: String?
        public init(taskId: String, key: String, parentTaskId: String?, error: String, attempt: Int, retryAt: Date? = nil,
                    deduplicationKey: String? = nil) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.error = error
            self.attempt = attempt
            self.retryAt = retryAt
            self.deduplicationKey = deduplicationKey
        }
    }

    public struct WaitRequested: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        /// Resume the run at or after this time.
        public var until: Date
        public init(taskId: String, key: String, parentTaskId: String?, until: Date) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.until = until
        }
    }

    public struct Logged: Codable, Sendable, Hashable {
        /// Identity of the line (derived from its message), so replays do not repeat it.
        public var taskId: String
        public var level: String
        public var message: String
        public var properties: JSONValue?
        public init(taskId: String, level: String, message: String, properties: JSONValue?) {
            self.taskId = taskId
            self.level = level
            self.message = message
            self.properties = properties
        }
    }

    public struct Yielded: Codable, Sendable, Hashable {
        /// Unique per yield, so a replayed event resumes the run once.
        public var yieldId: String
        public init(yieldId: String) { self.yieldId = yieldId }
    }

    public struct FetchRequested: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        public var request: BackgroundFetchRequest
        public init(taskId: String, key: String, parentTaskId: String?, request: BackgroundFetchRequest) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.request = request
        }
    }

    public struct RunCompleted: Codable, Sendable, Hashable {
        public var output: JSONValue
        public init(output: JSONValue) { self.output = output }
    }

    public struct RunFailed: Codable, Sendable, Hashable {
        public var status: RunStatus
        public var error: String
        public init(status: RunStatus = .failed, error: String) {
            self.status = status
            self.error = error
        }
    }

    public struct ChildInvoked: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        /// The child run's id (derived from the invoking event and the job).
        public var childRunId: String
        /// The child job's slug.
        public var jobId: String
        public init(taskId: String, key: String, parentTaskId: String?, childRunId: String, jobId: String) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.childRunId = childRunId
            self.jobId = jobId
        }
    }

    public struct ChildRunFinished: Codable, Sendable, Hashable {
        /// The parent's task waiting for the child.
        public var taskId: String
        public var outcome: ChildRunOutcome
        public init(taskId: String, outcome: ChildRunOutcome) {
            self.taskId = taskId
            self.outcome = outcome
        }
    }

    public struct EventWaitRequested: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        /// The event name waited for.
        public var name: String
        /// When the wait gives up: the task then completes with `null` (the SDK throws a timeout).
        public var timeoutAt: Date
        public init(taskId: String, key: String, parentTaskId: String?, name: String, timeoutAt: Date) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.name = name
            self.timeoutAt = timeoutAt
        }
    }

    public struct EventWaitMatched: Codable, Sendable, Hashable {
        /// The waiting task.
        public var taskId: String
        /// The event that matched.
        public var event: WaitedEvent
        public init(taskId: String, event: WaitedEvent) {
            self.taskId = taskId
            self.event = event
        }
    }

    public struct EventWaitTimedOut: Codable, Sendable, Hashable {
        /// The waiting task.
        public var taskId: String
        public init(taskId: String) { self.taskId = taskId }
    }

    public struct RequestWaitRequested: Codable, Sendable, Hashable {
        public var taskId: String
        public var key: String
        public var parentTaskId: String?
        /// The SHA-256 of the callback URL's token (``CallbackToken/hash(_:)``).
        public var tokenHash: String
        /// When the wait gives up: the task then completes with `null`, and a request gets 410.
        public var timeoutAt: Date
        public init(taskId: String, key: String, parentTaskId: String?, tokenHash: String, timeoutAt: Date) {
            self.taskId = taskId
            self.key = key
            self.parentTaskId = parentTaskId
            self.tokenHash = tokenHash
            self.timeoutAt = timeoutAt
        }
    }

    public struct RequestReceived: Codable, Sendable, Hashable {
        /// The waiting task.
        public var taskId: String
        public var request: WaitedRequest
        public init(taskId: String, request: WaitedRequest) {
            self.taskId = taskId
            self.request = request
        }
    }

    enum CodingKeys: String, CodingKey { case schemaVersion, runId, occurredAt, type, data }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.schemaVersion = try container.decode(Int.self, forKey: .schemaVersion)
        self.runId = try container.decode(String.self, forKey: .runId)
        self.occurredAt = try container.decode(Date.self, forKey: .occurredAt)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "runCreated": body = .runCreated(try container.decode(RunCreated.self, forKey: .data))
        case "taskStarted": body = .taskStarted(try container.decode(TaskStarted.self, forKey: .data))
        case "taskCompleted": body = .taskCompleted(try container.decode(TaskCompleted.self, forKey: .data))
        case "taskFailed": body = .taskFailed(try container.decode(TaskFailed.self, forKey: .data))
        case "waitRequested": body = .waitRequested(try container.decode(WaitRequested.self, forKey: .data))
        case "logged": body = .logged(try container.decode(Logged.self, forKey: .data))
        case "yielded": body = .yielded(try container.decode(Yielded.self, forKey: .data))
        case "fetchRequested": body = .fetchRequested(try container.decode(FetchRequested.self, forKey: .data))
        case "runCompleted": body = .runCompleted(try container.decode(RunCompleted.self, forKey: .data))
        case "runFailed": body = .runFailed(try container.decode(RunFailed.self, forKey: .data))
        case "childInvoked": body = .childInvoked(try container.decode(ChildInvoked.self, forKey: .data))
        case "childRunFinished": body = .childRunFinished(try container.decode(ChildRunFinished.self, forKey: .data))
        case "eventWaitRequested": body = .eventWaitRequested(try container.decode(EventWaitRequested.self, forKey: .data))
        case "eventWaitMatched": body = .eventWaitMatched(try container.decode(EventWaitMatched.self, forKey: .data))
        case "eventWaitTimedOut": body = .eventWaitTimedOut(try container.decode(EventWaitTimedOut.self, forKey: .data))
        case "requestWaitRequested": body = .requestWaitRequested(try container.decode(RequestWaitRequested.self, forKey: .data))
        case "requestReceived": body = .requestReceived(try container.decode(RequestReceived.self, forKey: .data))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown run event type '\(type)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
        try container.encode(runId, forKey: .runId)
        try container.encode(occurredAt, forKey: .occurredAt)
        try container.encode(body.type, forKey: .type)
        switch body {
        case .runCreated(let data): try container.encode(data, forKey: .data)
        case .taskStarted(let data): try container.encode(data, forKey: .data)
        case .taskCompleted(let data): try container.encode(data, forKey: .data)
        case .taskFailed(let data): try container.encode(data, forKey: .data)
        case .waitRequested(let data): try container.encode(data, forKey: .data)
        case .logged(let data): try container.encode(data, forKey: .data)
        case .yielded(let data): try container.encode(data, forKey: .data)
        case .fetchRequested(let data): try container.encode(data, forKey: .data)
        case .runCompleted(let data): try container.encode(data, forKey: .data)
        case .runFailed(let data): try container.encode(data, forKey: .data)
        case .childInvoked(let data): try container.encode(data, forKey: .data)
        case .childRunFinished(let data): try container.encode(data, forKey: .data)
        case .eventWaitRequested(let data): try container.encode(data, forKey: .data)
        case .eventWaitMatched(let data): try container.encode(data, forKey: .data)
        case .eventWaitTimedOut(let data): try container.encode(data, forKey: .data)
        case .requestWaitRequested(let data): try container.encode(data, forKey: .data)
        case .requestReceived(let data): try container.encode(data, forKey: .data)
        }
    }

    /// Decodes a run event from a Kafka record value.
    /// - Throws: `ValidationError` that says what and where.
    public static func decode(from data: some DataProtocol, maxDepth: Int = Limits.default.nestingDepth) throws(ValidationError) -> RunEvent {
        try BatonJSON.decodeDocument(RunEvent.self, from: data, maxDepth: maxDepth)
    }
}
