import BatonKafka
import BatonProtocol
import Foundation

extension KafkaProducer {
    /// Sends `command` to its job's run topic (key = run id) and waits for the ack.
    public func send(_ command: RunCommand, topics: Topics) async throws {
        try await send(topic: topics.runs(jobSlug: command.jobSlug), key: command.runId, value: Array(try BatonJSON.encoder.encode(command)))
    }

    /// Sends `event` to the task-results topic (key = run id) and waits for the ack.
    public func send(_ event: RunEvent, topics: Topics) async throws {
        try await send(topic: topics.taskResults, key: event.runId, value: Array(try BatonJSON.encoder.encode(event)))
    }

    /// Sends `envelope` to the events topic (key = event id) and waits for the ack.
    public func send(_ envelope: EventEnvelope, topics: Topics) async throws {
        try await send(topic: topics.events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
    }
}
