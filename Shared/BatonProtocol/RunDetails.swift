import Foundation

/// A run as the runs API shows it (`GET /api/v1/runs/{id}`).
public struct RunDetails: Codable, Sendable, Hashable {
    public var id: String
    public var jobId: String
    public var jobVersion: String
    public var status: RunStatus
    public var output: JSONValue?
    public var error: String?
    public var event: EventSummary
    public var tasks: [TaskDetails]
    public var logs: [LogLine]
    public var createdAt: Date
    public var updatedAt: Date
    public var completedAt: Date?
    /// The project the run belongs to (its event's and job's).
    public var project: String
    /// The environment the run belongs to.
    public var environment: String
    /// The run this one replays, if it is a replay.
    public var replayOf: String?
    /// The payload and context of the event that started the run: given by
    /// `GET /api/v1/runs/{id}`, absent from lists.
    public var payload: JSONValue?
    public var context: JSONValue?
    /// The status the run's code set last with `io.createStatus` (see ``RunStatusUpdate``).
    public var latestStatus: RunStatusUpdate?
    /// The run that invoked this one as a child job (`invokeAndWait`), and its waiting task.
    public var parentRun: ParentRun?
    /// The child runs this run invoked, in task order.
    public var childRuns: [String]?

    /// The tenant whose API keys see the run.
    public var tenant: Tenant { Tenant.of(project: project, environment: environment) }

    public struct EventSummary: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        public var timestamp: Date
        public init(id: String, name: String, timestamp: Date) {
            self.id = id
            self.name = name
            self.timestamp = timestamp
        }
    }

    public struct TaskDetails: Codable, Sendable, Hashable {
        public var id: String
        public var key: String
        public var parentId: String?
        public var name: String?
        public var properties: JSONValue?
        public var status: TaskStatus
        public var output: JSONValue?
        public var error: String?
        public var attempts: Int
        public var startedAt: Date?
        public var completedAt: Date?
        /// For waits: when the run resumes.
        public var waitUntil: Date?
        public init(id: String, key: String, parentId: String?, name: String?, properties: JSONValue? = nil, status: TaskStatus, output: JSONValue?,
                    error: String?, attempts: Int, startedAt: Date?, completedAt: Date?, waitUntil: Date?) {
            self.id = id
            self.key = key
            self.parentId = parentId
            self.name = name
            self.properties = properties
            self.status = status
            self.output = output
            self.error = error
            self.attempts = attempts
            self.startedAt = startedAt
            self.completedAt = completedAt
            self.waitUntil = waitUntil
        }
    }

    public struct LogLine: Codable, Sendable, Hashable {
        public var level: String
        public var message: String
        public var properties: JSONValue?
        public var loggedAt: Date
        public init(level: String, message: String, properties: JSONValue?, loggedAt: Date) {
            self.level = level
            self.message = message
            self.properties = properties
            self.loggedAt = loggedAt
        }
    }

    public init(id: String, jobId: String, jobVersion: String, status: RunStatus, output: JSONValue?, error: String?,
                event: EventSummary, tasks: [TaskDetails], logs: [LogLine], createdAt: Date, updatedAt: Date, completedAt: Date?,
                tenant: Tenant = .default, replayOf: String? = nil, parentRun: ParentRun? = nil) {
        self.replayOf = replayOf
        self.parentRun = parentRun
        self.project = tenant.project
        self.environment = tenant.environment
        self.id = id
        self.jobId = jobId
        self.jobVersion = jobVersion
        self.status = status
        self.output = output
        self.error = error
        self.event = event
        self.tasks = tasks
        self.logs = logs
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.completedAt = completedAt
        self.latestStatus = RunStatusUpdate.latest(in: tasks)
        let children = ChildRunOutcome.childRunIds(tasks.map(\.properties))
        self.childRuns = children.isEmpty ? nil : children
    }
}

/// A status a run's code reports about its progress (`io.createStatus`): shown in the run
/// record as its ``RunDetails/latestStatus``, for dashboards and API clients.
public struct RunStatusUpdate: Codable, Sendable, Hashable {
    /// How the work the status describes is going.
    public enum State: String, Codable, Sendable, CaseIterable {
        case loading, success, failure
    }

    /// The key of the task that set it.
    public var key: String
    /// What it says ("Processing 10 of 30 users").
    public var label: String
    public var state: State?
    /// Anything the job wants to show with it.
    public var data: JSONValue?

    public init(key: String, label: String, state: State? = nil, data: JSONValue? = nil) {
        self.key = key
        self.label = label
        self.state = state
        self.data = data
    }

    /// The `properties` a status task carries, which mark it as one.
    public static let taskProperties: JSONValue = .object(["baton.kind": .string("status")])

    /// The status of the status task completed last among `tasks` (those `io.createStatus`
    /// recorded), or `nil`.
    public static func latest(in tasks: [RunDetails.TaskDetails]) -> RunStatusUpdate? {
        let statuses = tasks.enumerated().filter { $0.element.status == .completed && $0.element.properties == taskProperties }
        let last = statuses.max { left, right in
            // By completion time; tasks completed in the same millisecond, by their order.
            (left.element.completedAt ?? .distantPast, left.offset) < (right.element.completedAt ?? .distantPast, right.offset)
        }
        return last.flatMap { try? $0.element.output?.decode(as: RunStatusUpdate.self) }
    }
}
