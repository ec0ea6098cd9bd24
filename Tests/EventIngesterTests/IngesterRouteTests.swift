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
    /// - Parameter reachable: the broker is up: allow the times a loaded machine needs to create
    ///   the topics and acknowledge (short ones make the tests of a broker that is away quick).
    func app(brokers: String, maxBody: Int = 1 << 20, reachable: Bool = false) async throws -> some ApplicationProtocol {
        let config = try IngesterConfiguration(config: .batonDefault(arguments: ["test"], environment: [
            "KAFKA_BROKERS": brokers, "KAFKA_PROFILE": "embedded", "KAFKA_TOPIC_REPLICATION": "1",
            "KAFKA_DELIVERY_TIMEOUT_MS": reachable ? "15000" : "1500", "KAFKA_ADMIN_TIMEOUT_MS": reachable ? "10000" : "300",
            "INGESTER_MAX_BODY_BYTES": "\(maxBody)",
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
        try await app(brokers: broker.bootstrapServers, reachable: true).test(.router) { client in
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

@Suite("Ingester delays and batches", .serialized)
struct IngesterBatchTests {
    /// - Parameter reachable: the broker is up: allow the times a loaded machine needs to create
    ///   the topics and acknowledge (short ones make the tests of a broker that is away quick).
    func app(brokers: String, maxBatch: Int = 100, reachable: Bool = false) async throws -> some ApplicationProtocol {
        let config = try IngesterConfiguration(config: .batonDefault(arguments: ["test"], environment: [
            "KAFKA_BROKERS": brokers, "KAFKA_PROFILE": "embedded", "KAFKA_TOPIC_REPLICATION": "1",
            "KAFKA_DELIVERY_TIMEOUT_MS": reachable ? "15000" : "1500", "KAFKA_ADMIN_TIMEOUT_MS": reachable ? "10000" : "300",
            "INGESTER_MAX_BATCH": "\(maxBatch)",
        ]))
        return try await buildIngester(configuration: config, logger: Logger(label: "test"))
    }

    struct Results: Decodable {
        struct Item: Decodable { var index: Int; var status: Int; var id: String?; var error: APIErrorBody.Detail? }
        var results: [Item]
    }

    @Test("delivery time: deliverAt and deliverAfter together, or a negative delay, are refused with the field", arguments: [
        (#"{"name":"x","deliverAt":"2030-01-01T00:00:00Z","deliverAfter":5}"#, "$.deliverAfter"),
        (#"{"name":"x","deliverAfter":-1}"#, "$.deliverAfter"),
        (#"{"name":"x","deliverAt":"next week"}"#, "$.deliverAt"),
    ])
    func badDelays(_ body: String, _ path: String) async throws {
        try await app(brokers: "127.0.0.1:\(try freeLoopbackPort())").test(.router) { client in
            try await client.execute(uri: "/api/v1/events", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .unprocessableContent)
                let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(response.body.readableBytesView))
                #expect(error.error.path == path)
            }
        }
    }

    @Test("a batch answers per event: invalid ones with their path, valid ones 202 once acknowledged", .tags(.integration))
    func batch() async throws {
        let broker = try await TansuBroker.start(logDirectory: try TestEnvironment.temporaryDirectory("batch"))
        try await app(brokers: broker.bootstrapServers, maxBatch: 3, reachable: true).test(.router) { client in
            let body = #"{"events":[{"id":"b1","name":"a"},{"name":""},{"id":"b3","name":"c","deliverAfter":60}]}"#
            try await client.execute(uri: "/api/v1/events/batch", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .ok)
                let results = try JSONDecoder().decode(Results.self, from: Data(response.body.readableBytesView)).results
                #expect(results.map(\.status) == [202, 422, 202])
                #expect(results[0].id == "b1" && results[2].id == "b3")
                #expect(results[1].error?.path == "$.events[1].name")
            }
            let tooMany = #"{"events":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]}"#
            try await client.execute(uri: "/api/v1/events/batch", method: .post, body: ByteBuffer(string: tooMany)) { response in
                #expect(response.status == .unprocessableContent, "over the batch limit: 422, like any invalid field")
            }
            try await client.execute(uri: "/api/v1/events/batch", method: .post, body: ByteBuffer(string: #"{"events":[]}"#)) { response in
                #expect(response.status == .unprocessableContent)
            }
        }
        try await broker.stop()
    }
}
