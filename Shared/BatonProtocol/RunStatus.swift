import Foundation

/// The state of a run. An open set: new statuses may be added.
public struct RunStatus: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Created, its first slice not started yet.
    public static let queued = RunStatus(rawValue: "QUEUED")
    /// A slice is running.
    public static let executing = RunStatus(rawValue: "EXECUTING")
    /// Paused on a durable timer (`io.wait`) until it resumes.
    public static let waiting = RunStatus(rawValue: "WAITING")
    /// Finished; `output` holds the return value.
    public static let completed = RunStatus(rawValue: "COMPLETED")
    /// The run function threw.
    public static let failed = RunStatus(rawValue: "FAILED")
    /// The event payload does not decode into the job's payload type.
    public static let invalidPayload = RunStatus(rawValue: "INVALID_PAYLOAD")

    /// Canceled through the runs API; no further slice runs.
    public static let canceled = RunStatus(rawValue: "CANCELED")
    /// Made no progress before its deadline, also after its resume command was re-issued.
    public static let timedOut = RunStatus(rawValue: "TIMED_OUT")

    /// Every status that ends a run.
    public static let terminal: [RunStatus] = [.completed, .failed, .invalidPayload, .canceled, .timedOut]

    /// Whether no further slice will run.
    public var isTerminal: Bool { Self.terminal.contains(self) }

    /// Every status a run can have.
    public static let all: [RunStatus] = [.queued, .executing, .waiting] + terminal

    public var description: String { rawValue }
}

/// The state of a task. An open set.
public struct TaskStatus: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running = TaskStatus(rawValue: "RUNNING")
    public static let waiting = TaskStatus(rawValue: "WAITING")
    public static let completed = TaskStatus(rawValue: "COMPLETED")
    public static let errored = TaskStatus(rawValue: "ERRORED")

    public var description: String { rawValue }
}
