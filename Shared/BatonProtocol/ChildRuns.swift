import Foundation

/// The run and task waiting for a child run's outcome (`Job.invokeAndWait`): set on the
/// invoking event by the SDK, kept with the child run, and used to tell the parent when the
/// child ends.
public struct ParentRun: Codable, Sendable, Hashable {
    /// The parent run's id.
    public var runId: String
    /// The parent's task that resumes with the child's outcome.
    public var taskId: String

    public init(runId: String, taskId: String) {
        self.runId = runId
        self.taskId = taskId
    }
}

/// How a child run ended, as its parent's task stores it: the output of a completed child,
/// or the status and error of one that failed, timed out or was canceled.
public struct ChildRunOutcome: Codable, Sendable, Hashable {
    /// The child run's id.
    public var runId: String
    /// The child job's slug.
    public var jobId: String
    /// A terminal status.
    public var status: RunStatus
    /// The child's output, when it completed.
    public var output: JSONValue?
    /// Why it did not complete.
    public var error: String?

    public init(runId: String, jobId: String, status: RunStatus, output: JSONValue? = nil, error: String? = nil) {
        self.runId = runId
        self.jobId = jobId
        self.status = status
        self.output = output
        self.error = error
    }

    /// Task properties that mark a parent's task as waiting for child run `runId` of `jobId`
    /// (how a run record finds its children).
    public static func taskProperties(runId: String, jobId: String) -> JSONValue {
        .object(["baton.kind": .string("child"), "baton.childRunId": .string(runId), "baton.childJob": .string(jobId)])
    }

    /// The child run ids that the tasks with `properties` wait for, in task order.
    public static func childRunIds(_ properties: some Sequence<JSONValue?>) -> [String] {
        properties.compactMap { properties in
            guard case .object(let fields)? = properties, fields["baton.kind"] == .string("child"),
                  case .string(let runId)? = fields["baton.childRunId"] else { return nil }
            return runId
        }
    }
}
