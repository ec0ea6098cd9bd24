import Foundation

/// Where a task's deduplication key is unique. An open set.
public struct DeduplicationScope: RawRepresentable, Codable, Sendable, Hashable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Unique in the project (the default).
    public static let project = DeduplicationScope(rawValue: "project")
    /// Unique in the job.
    public static let job = DeduplicationScope(rawValue: "job")
    /// Unique in the organization.
    public static let organization = DeduplicationScope(rawValue: "organization")

    /// The key as stored: prefixed with its scope (`proj:`, `job:`, `org:`), so one store holds
    /// every scope's keys without collisions.
    /// - Throws: `ValidationError` for an empty or overlong key, or an unknown scope.
    public func scopedKey(_ key: String, organization: String, project: String, jobSlug: String) throws(ValidationError) -> String {
        guard !key.isEmpty else { throw ValidationError(path: "deduplicationKey", message: "must not be empty") }
        guard key.utf8.count <= 512 else {
            throw ValidationError(path: "deduplicationKey", message: "is \(key.utf8.count) bytes long; the limit is 512")
        }
        switch self {
        case .project: return "proj:\(organization)/\(project):\(key)"
        case .job: return "job:\(organization)/\(project)/\(jobSlug):\(key)"
        case .organization: return "org:\(organization):\(key)"
        default:
            throw ValidationError(path: "deduplicationScope", message: "'\(rawValue)' is not a scope; use project, job or organization")
        }
    }
}

/// A job service's request to run the task holding a deduplication key.
public struct DeduplicationClaimRequest: Codable, Sendable, Hashable {
    public var scopedKey: String
    public var runId: String
    public var taskId: String
    /// Return an earlier failure under this key instead of executing the task again.
    public var skipFailure: Bool
    public init(scopedKey: String, runId: String, taskId: String, skipFailure: Bool) {
        self.scopedKey = scopedKey
        self.runId = runId
        self.taskId = taskId
        self.skipFailure = skipFailure
    }
}

/// The answer to a claim.
public struct DeduplicationClaim: Codable, Sendable, Hashable {
    /// What the task should do. An open set.
    public struct Outcome: RawRepresentable, Codable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The caller holds the key now: execute the task.
        public static let execute = Outcome(rawValue: "execute")
        /// A task completed under the key: use `output`.
        public static let completed = Outcome(rawValue: "completed")
        /// A task failed under the key and the caller asked to skip failures: `error` says why.
        public static let failed = Outcome(rawValue: "failed")
        /// Another task is executing under the key: ask again shortly.
        public static let busy = Outcome(rawValue: "busy")
    }
    public var outcome: Outcome
    public var output: JSONValue?
    public var error: String?
    public init(outcome: Outcome, output: JSONValue? = nil, error: String? = nil) {
        self.outcome = outcome
        self.output = output
        self.error = error
    }
}
