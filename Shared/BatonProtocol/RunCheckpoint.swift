/// What a job service needs before it runs a slice: the run's status and every completed task,
/// as of a point after everything already acknowledged on the run's partition.
///
/// Served by the task-result service at `GET /internal/v1/runs/{id}/checkpoint`.
public struct RunCheckpoint: Codable, Sendable, Hashable {
    public var runId: String
    /// `nil` when the run is unknown.
    public var status: RunStatus?
    public var completedTasks: [CompletedTask]
    /// Attempts already made by tasks that have not completed, by task id.
    public var failedAttempts: [String: Int]
    /// Which execution slice of the run this is (1 for the first); counts every checkpoint.
    public var slice: Int

    public init(runId: String, status: RunStatus?, completedTasks: [CompletedTask], failedAttempts: [String: Int] = [:], slice: Int = 1) {
        self.runId = runId
        self.status = status
        self.completedTasks = completedTasks
        self.failedAttempts = failedAttempts
        self.slice = slice
    }
}
