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
    /// The broker's marker (one partition, kept forever): its first record tells a service
    /// whether the broker is the one its store was written against (see `BrokerIdentity`).
    public var broker: String { "\(prefix).broker" }
    /// Commands for the job service of `jobSlug`; key = run id, value = `RunCommand`.
    public func runs(jobSlug: String) -> String { "\(prefix).runs.\(jobSlug)" }
}
