import Baton
import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging

/// A Tansu broker and the two things the checkpoint benchmark compares on it: one raw durable
/// produce (acks=all, linger 0) and one `io.runTask` of a job slice, whose checkpoint is two
/// acknowledged run events (task started, sent ahead; task completed) sent exactly as
/// `JobWorker` sends them.
public final class CheckpointFixture: Sendable {
    public let broker: TansuBroker
    let producer: KafkaProducer
    let topic = Topics().taskResults
    let rawValue: [UInt8]

    init(broker: TansuBroker, producer: KafkaProducer) throws {
        self.broker = broker
        self.producer = producer
        let event = RunEvent(runId: "run_bench", body: .taskCompleted(.init(taskId: "task_0123456789abcdef01234567", key: "step 1", parentTaskId: nil, output: 1)))
        self.rawValue = Array(try BatonJSON.encoder.encode(event))
    }

    /// Starts Tansu on a free loopback port and a checkpoint producer.
    public static func start() async throws -> CheckpointFixture {
        let broker = try await TansuBroker.start(logDirectory: try TestEnvironment.temporaryDirectory("bench"))
        let configuration = KafkaConfiguration(bootstrapServers: broker.bootstrapServers, clientID: "bench", profile: .embeddedBroker,
                                               topicPartitions: 1, topicReplicationFactor: 1)
        let producer = try KafkaProducer(configuration: configuration, options: .init(lingerMilliseconds: 0), logger: Logger(label: "bench"))
        try await producer.createTopics([TopicSpec(name: Topics().taskResults)])
        return try CheckpointFixture(broker: broker, producer: producer)
    }

    /// One acknowledged send of a task-completion-sized record.
    public func rawSend() async throws {
        try await producer.send(topic: topic, key: "run_bench", value: rawValue)
    }

    struct Steps: Codable, Sendable { var count: Int }

    /// Runs one slice with `count` trivial tasks; `record` gets each `io.runTask`'s duration.
    public func runTasks(_ count: Int, record: @escaping @Sendable (Duration) -> Void) async throws {
        let job = Job(id: "bench", name: "Benchmark", version: "1.0.0", trigger: .event(name: "bench", payload: Steps.self)) { steps, io, _ in
            let clock = ContinuousClock()
            for index in 0..<steps.count {
                let start = clock.now
                _ = try await io.runTask("step \(index)") { _ in index }
                record(clock.now - start)
            }
            return steps.count
        }
        let runId = "run_bench_\(UUID().uuidString.prefix(8))"
        let producer = self.producer
        let topic = self.topic
        let outcome = try await JobHarness(job: job, payload: ["count": .int(Int64(count))], runId: runId)
            .runSlice(budget: .seconds(3600), publish: { body in
                try await producer.send(topic: topic, key: runId, value: Array(try BatonJSON.encoder.encode(RunEvent(runId: runId, body: body))))
            }, enqueue: { body in
                let delivery = try producer.enqueue(topic: topic, key: Array(runId.utf8), value: Array(try BatonJSON.encoder.encode(RunEvent(runId: runId, body: body))))
                return { try await delivery.acknowledged() }
            })
        guard case .runCompleted = outcome else { throw CheckpointBenchmarkFailed(outcome: "\(String(describing: outcome))") }
    }

    public func stop() async throws {
        await producer.shutdown()
        try await broker.stop()
    }
}

/// The benchmark's job did not complete.
public struct CheckpointBenchmarkFailed: Error, CustomStringConvertible {
    public var outcome: String
    public var description: String { "the benchmark slice did not complete: \(outcome)" }
}
