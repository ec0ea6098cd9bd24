import Foundation

/// A page of `GET /api/v1/runs` (and `GET /api/v1/jobs/{id}/runs`): the runs, newest first, and
/// the cursor of the next page (`nil` on the last page).
public struct RunListResponse: Codable, Sendable, Hashable {
    public var runs: [RunDetails]
    public var nextCursor: String?

    public init(runs: [RunDetails], nextCursor: String?) {
        self.runs = runs
        self.nextCursor = nextCursor
    }
}

/// The answer to `POST /api/v1/runs/{id}/cancel`: `canceled` is false when the run had already
/// finished (its final status is given).
public struct CancelRunResponse: Codable, Sendable, Hashable {
    public var id: String
    public var status: RunStatus
    public var canceled: Bool

    public init(id: String, status: RunStatus, canceled: Bool) {
        self.id = id
        self.status = status
        self.canceled = canceled
    }
}

/// The answer to `POST /api/v1/events/{id}/cancel-runs`: each run the event started, whether
/// this request canceled it and its status afterwards (empty when the event started no run).
public struct CancelEventRunsResponse: Codable, Sendable, Hashable {
    public var eventId: String
    public var runs: [CancelRunResponse]

    public init(eventId: String, runs: [CancelRunResponse]) {
        self.eventId = eventId
        self.runs = runs
    }
}

/// The answer to `POST /api/v1/runs/{id}/replay`: the new run (of the same job version).
public struct ReplayResponse: Codable, Sendable, Hashable {
    public var runId: String
    public var eventId: String
    public var replayOf: String
    public var jobVersion: String

    public init(runId: String, eventId: String, replayOf: String, jobVersion: String) {
        self.runId = runId
        self.eventId = eventId
        self.replayOf = replayOf
        self.jobVersion = jobVersion
    }
}

/// The answer to `GET /api/v1/jobs/{id}/stats`: the caller's runs of a job, counted by status,
/// the versions they were created with, and the newest run.
public struct JobStats: Codable, Sendable, Hashable {
    /// The runs of one job version.
    public struct Version: Codable, Sendable, Hashable {
        public var version: String
        public var runs: Int
        public var lastRunCreatedAt: Date

        public init(version: String, runs: Int, lastRunCreatedAt: Date) {
            self.version = version
            self.runs = runs
            self.lastRunCreatedAt = lastRunCreatedAt
        }
    }

    public var jobId: String
    public var runs: Int
    public var runsByStatus: [String: Int]
    /// Newest first.
    public var versions: [Version]
    public var lastRun: RunDetails?

    public init(jobId: String, runs: Int, runsByStatus: [String: Int], versions: [Version], lastRun: RunDetails?) {
        self.jobId = jobId
        self.runs = runs
        self.runsByStatus = runsByStatus
        self.versions = versions
        self.lastRun = lastRun
    }
}
