@testable import EventIngester
import BatonKafka
import BatonProtocol
import BatonService
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("Ingester routes", .serialized)
struct IngesterRouteTests {
    /// An ingester whose broker is a real Tansu (for 202s) or a dead port (for 503s).
    func app(brokers: String, maxBody: Int = 1 << 20) async throws -> some ApplicationProtocol {
        let config = try IngesterConfiguration(config: .batonDefault(arguments: ["test"], environment: [
            "KAFKA_BROKERS": brokers, "KAFKA_PROFILE": "embedded", "KAFKA_TOPIC_REPLICATION": "1",
            "KAFKA_DELIVERY_TIMEOUT_MS": "1500", "KAFKA_ADMIN_TIMEOUT_MS": "300", "INGESTER_MAX_BODY_BYTES": "\(maxBody)",
        ]))
        return try await buildIngester(configuration: config, logger: Logger(label: "test"))
    }

    func errorBody(_ buffer: ByteBuffer) throws -> (code: String, message: String, path: String?) {
        struct Document: Decodable { struct Detail: Decodable { var code: String; var message: String; var path: String? }; var error: Detail }
        let document = try JSONDecoder().decode(Document.self, from: Data(buffer.readableBytesView))
        return (document.error.code, document.error.message, document.error.path)
    }

    @Test("bad requests are refused with status, code, message and path", arguments: [
        (#"{"name": "#, 400, "malformed_json", "$"),
        (#"not json"#, 400, "malformed_json", "$"),
        (#"{"payload": {}}"#, 422, "invalid_field", "$.name"),
        (#"{"name": ""}"#, 422, "invalid_field", "$.name"),
        (#"{"name": 7}"#, 422, "invalid_field", "$.name"),
        (#"{"name": "x", "id": ""}"#, 422, "invalid_field", "$.id"),
        (#"{"name": "x", "timestamp": "soon"}"#, 422, "invalid_field", "$.timestamp"),
    ])
    func badRequests(_ body: String, _ status: Int, _ code: String, _ path: String) async throws {
        let port = try freeLoopbackPort()  // never reached: validation comes first
        try await app(brokers: "127.0.0.1:\(port)").test(.router) { client in
            try await client.execute(uri: "/api/v1/events", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(Int(response.status.code) == status)
                let error = try errorBody(response.body)
                #expect(error.code == code)
                #expect(error.path == path)
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test("a body over the limit gets 413")
    func tooLarge() async throws {
        let port = try freeLoopbackPort()
        let payload = String(repeating: "x", count: 2048)
        try await app(brokers: "127.0.0.1:\(port)", maxBody: 1024).test(.router) { client in
            try await client.execute(uri: "/api/v1/events", method: .post, body: ByteBuffer(string: #"{"name":"x","payload":"\#(payload)"}"#)) { response in
                #expect(response.status == .contentTooLarge)
                let error = try errorBody(response.body)
                #expect(error.code == "payload_too_large")
            }
        }
    }

    @Test("without a broker ack the answer is 503, never 2xx")
    func noAckNo2xx() async throws {
        let port = try freeLoopbackPort()  // nothing listens: no ack can come
        try await app(brokers: "127.0.0.1:\(port)").test(.router) { client in
            try await client.execute(uri: "/api/v1/events", method: .post, body: ByteBuffer(string: #"{"name":"user.created"}"#)) { response in
                #expect(response.status == .serviceUnavailable)
                let error = try errorBody(response.body)
                #expect(error.code == "broker_unavailable")
            }
        }
    }

    @Test("an accepted event is on the events topic when the 202 arrives", .tags(.integration))
    func acceptedMeansProduced() async throws {
        let logs = try TestEnvironment.temporaryDirectory("ingester")
        let broker = try await TansuBroker.start(logDirectory: logs)
        try await app(brokers: broker.bootstrapServers).test(.router) { client in
            try await client.execute(uri: "/api/v1/events", method: .post,
                                     body: ByteBuffer(string: #"{"id":"evt_r1","name":"user.created","payload":{"a":1}}"#)) { response in
                #expect(response.status == .accepted)
                #expect(String(buffer: response.body).contains("evt_r1"))
            }
        }
        let consumer = try KafkaConsumer(
            configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, profile: .embeddedBroker),
            groupID: "check", topics: [Topics().events], logger: Logger(label: "test"))
        var iterator = consumer.makeAsyncIterator()
        let record = try #require(try await iterator.next())
        let envelope = try EventEnvelope.decode(from: record.value)
        #expect(envelope.id == "evt_r1")
        #expect(record.keyString == "evt_r1")
        #expect(envelope.payload == ["a": 1])
        await consumer.close()
        try await broker.stop()
    }
}

extension Tag {
    @Tag static var integration: Self
}
