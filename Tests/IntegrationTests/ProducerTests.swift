import Baton
import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging
import Testing

@Suite("Producers: BatonClient and a Python producer", .tags(.integration))
struct ProducerTests {
    struct Steps: Codable, Sendable { var steps: Int }

    func completed(_ stack: BatonStack, _ eventId: String) async throws -> RunDetails {
        try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"))
    }

    @Test("BatonClient sends over Kafka and over HTTP; the Python example publishes straight to Kafka; each starts a run")
    func producers() async throws {
        let stack = try await BatonStack.start(label: "producers")
        try await stack.startExampleJobs()
        let producer = try stack.kafkaProducer()
        let viaKafka = try await BatonClient.kafka(producer: producer).sendEvent(name: "steps.start", payload: Steps(steps: 1))
        let viaHTTP = try await BatonClient.http(baseURL: "http://127.0.0.1:\(stack.ingesterPort)").sendEvent(name: "steps.start", payload: Steps(steps: 2))
        #expect(try await completed(stack, viaKafka).output == 1)
        #expect(try await completed(stack, viaHTTP).output == 2)
        // Invalid events are refused before they leave the program.
        await #expect(throws: ValidationError.self) {
            try await BatonClient.http(baseURL: "http://127.0.0.1:\(stack.ingesterPort)").sendEvent(name: " ", payload: Steps(steps: 1))
        }

        let pythonPath = try #require(ProcessInfo.processInfo.environment["BATON_PYTHONPATH"], "run through deploy/local/test (it sets BATON_PYTHONPATH)")
        let eventId = "evt_python_\(UUID().uuidString.prefix(6))"
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("docs/examples/publish_event.py")
        let python = try ChildProcess(
            name: "python-producer", executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: ["python3", script.path, "--brokers", stack.broker.bootstrapServers, "--name", "steps.start",
                        "--payload", #"{"steps": 3}"#, "--id", eventId],
            environment: ["PYTHONPATH": pythonPath], logDirectory: stack.logs)
        let status = try await eventually("the Python producer to exit", deadline: .seconds(60)) { python.isRunning ? nil : python.terminationStatus }
        #expect(status == 0, "\(python.output())")
        #expect(try await completed(stack, eventId).output == 3)
        await producer.shutdown()
        try await stack.stop()
    }
}
