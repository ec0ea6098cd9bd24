import Foundation

/// Kafka topic names, all under a configurable prefix (default `baton`).
public struct Topics: Sendable, Hashable {
    /// The prefix every topic name starts with.
    public var prefix: String

    public init(prefix: String = "baton") {
        self.prefix = prefix
    }

    /// Events to match against job triggers; key = event id, value = `EventEnvelope`.
    public var events: String { "\(prefix).events" }
    /// Job registrations (compacted); key = job slug, value = `JobRegistration`.
    public var jobs: String { "\(prefix).jobs" }
    /// Run events for the task-result service; key = run id, value = `RunEvent`.
    public var taskResults: String { "\(prefix).task-results" }
    /// Records no consumer could process, with the reason in headers.
    public var deadLetter: String { "\(prefix).dead-letter" }
    /// Commands for the job service of `jobSlug`; key = run id, value = `RunCommand`.
    public func runs(jobSlug: String) -> String { "\(prefix).runs.\(jobSlug)" }
}

/// Header names Baton sets on Kafka records.
public enum BatonHeaders {
    /// On dead-letter records: why the record was rejected.
    public static let deadLetterReason = "baton-dead-letter-reason"
    /// On dead-letter records: topic, partition and offset of the original record.
    public static let deadLetterOrigin = "baton-dead-letter-origin"
    /// On dead-letter records: the consumer that rejected it.
    public static let deadLetterConsumer = "baton-dead-letter-consumer"
}
