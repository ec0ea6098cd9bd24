import BatonKafka
import BatonProtocol
import Tracing
import Foundation

extension KafkaProducer {
    /// Sends `command` to its job's run topic (key = run id) and waits for the ack.
    public func send(_ command: RunCommand, topics: Topics) async throws {
        try await send(topic: topics.runs(jobSlug: command.jobSlug), key: command.runId, value: Array(try BatonJSON.encoder.encode(command)))
    }

    /// Sends `command` as part of the trace with W3C `traceParent` (a resume continues the trace
    /// its run was created in); without one, as ``send(_:topics:)-(RunCommand,_)``.
    public func send(_ command: RunCommand, topics: Topics, continuingTrace traceParent: String?) async throws {
        guard let traceParent else { return try await send(command, topics: topics) }
        try await ServiceContext.withValue(.continuing(traceParent: traceParent)) {
            try await send(command, topics: topics)
        }
    }

    /// Hands `command` to the producer (waiting while its queue is full) as part of the trace
    /// with W3C `traceParent` when given; await the returned delivery's acknowledgement.
    public func enqueue(_ command: RunCommand, topics: Topics, continuingTrace traceParent: String?) async throws -> Delivery {
        let value = Array(try BatonJSON.encoder.encode(command))
        let topic = topics.runs(jobSlug: command.jobSlug)
        let key = Array(command.runId.utf8)
        guard let traceParent else { return try await enqueueWhenRoom(topic: topic, key: key, value: value) }
        return try await ServiceContext.withValue(.continuing(traceParent: traceParent)) {
            try await enqueueWhenRoom(topic: topic, key: key, value: value)
        }
    }

    /// Sends `event` to the task-results topic (key = run id) and waits for the ack.
    public func send(_ event: RunEvent, topics: Topics) async throws {
        try await send(topic: topics.taskResults, key: event.runId, value: Array(try BatonJSON.encoder.encode(event)))
    }

    /// Hands `event` to the producer for the task-results topic (key = run id), waiting while its
    /// queue is full; await the returned delivery's acknowledgement.
    public func enqueue(_ event: RunEvent, topics: Topics) async throws -> Delivery {
        try await enqueueWhenRoom(topic: topics.taskResults, key: Array(event.runId.utf8), value: Array(try BatonJSON.encoder.encode(event)))
    }

    /// The largest run event a service sends on another run's behalf (a child's outcome, a
    /// waited-for event): below librdkafka's default `message.max.bytes` (1,000,000).
    public static let largestNotice = 900_000

    /// Sends `envelope` to the events topic (key = event id) and waits for the ack.
    public func send(_ envelope: EventEnvelope, topics: Topics) async throws {
        try await send(topic: topics.events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
    }
}
