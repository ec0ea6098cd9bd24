import Foundation

/// An instruction to a job service: run (or continue) one slice of a run.
///
/// Published on `baton.runs.<job-slug>` with the run id as key, by the dispatcher (`execute`)
/// and by the task-result service (`resume`).
public struct RunCommand: Codable, Sendable, Hashable {
    public static let currentSchemaVersion = 1

    /// Whether this starts the run or continues it. An open set.
    public struct Kind: RawRepresentable, Codable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The first slice of a new run.
        public static let execute = Kind(rawValue: "execute")
        /// A later slice, after a wait or a retry back-off.
        public static let resume = Kind(rawValue: "resume")
    }

    public var schemaVersion: Int
    public var kind: Kind
    public var runId: String
    public var jobSlug: String
    /// The job version the run was created with.
    public var jobVersion: String
    /// The event that started the run.
    public var event: EventEnvelope
    /// Every task of the run that has completed, so that the slice replays them.
    public var completedTasks: [CompletedTask]
    /// When the command was issued.
    public var issuedAt: Date

    public init(kind: Kind, runId: String, jobSlug: String, jobVersion: String, event: EventEnvelope,
                completedTasks: [CompletedTask] = [], issuedAt: Date = Date()) {
        self.schemaVersion = Self.currentSchemaVersion
        self.kind = kind
        self.runId = runId
        self.jobSlug = jobSlug
        self.jobVersion = jobVersion
        self.event = event
        self.completedTasks = completedTasks
        self.issuedAt = issuedAt
    }

    /// Decodes a command from a Kafka record value.
    /// - Throws: `ValidationError` that says what and where.
    public static func decode(from data: some DataProtocol, maxDepth: Int = Limits.default.nestingDepth) throws(ValidationError) -> RunCommand {
        let command = try BatonJSON.decodeDocument(RunCommand.self, from: data, maxDepth: maxDepth)
        guard command.schemaVersion >= 1, command.schemaVersion <= currentSchemaVersion else {
            throw ValidationError(code: "unsupported_schema_version", path: "$.schemaVersion",
                                  message: "schema version \(command.schemaVersion) is not supported")
        }
        return command
    }
}

/// A task whose result is recorded: replaying the run returns `output` instead of running it.
public struct CompletedTask: Codable, Sendable, Hashable {
    /// The task's identity (see `Identifiers.taskID`).
    public var taskId: String
    /// The key the job code gave it.
    public var key: String
    /// The stored output (`null` for tasks without one: waits, log lines).
    public var output: JSONValue

    public init(taskId: String, key: String, output: JSONValue) {
        self.taskId = taskId
        self.key = key
        self.output = output
    }
}
