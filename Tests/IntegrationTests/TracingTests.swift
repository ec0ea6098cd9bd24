import BatonProtocol
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOHTTP1
import Synchronization
import Testing

@Suite("Distributed tracing over OTLP", .tags(.integration))
struct TracingTests {
    /// A span as an OTLP/HTTP JSON export carries it.
    struct ExportedSpan: Hashable {
        var service: String
        var traceId: String
        var name: String
    }

    /// Spans of an OTLP/HTTP JSON `ExportTraceServiceRequest`.
    static func spans(in body: Data) throws -> [ExportedSpan] {
        struct Request: Decodable {
            struct ResourceSpans: Decodable {
                struct Resource: Decodable { var attributes: [Attribute]? }
                struct Attribute: Decodable {
                    struct Value: Decodable { var stringValue: String? }
                    var key: String
                    var value: Value
                }
                struct ScopeSpans: Decodable {
                    struct Span: Decodable { var traceId: String; var name: String }
                    var spans: [Span]?
                }
                var resource: Resource?
                var scopeSpans: [ScopeSpans]?
            }
            var resourceSpans: [ResourceSpans]?
        }
        let request = try JSONDecoder().decode(Request.self, from: body)
        return (request.resourceSpans ?? []).flatMap { resource in
            let service = resource.resource?.attributes?.first { $0.key == "service.name" }?.value.stringValue ?? "?"
            return (resource.scopeSpans ?? []).flatMap { $0.spans ?? [] }.map { ExportedSpan(service: service, traceId: $0.traceId, name: $0.name) }
        }
    }

    @Test("a traceparent sent with an event is continued by every process: ingester, dispatcher, job service (both slices, around the wait) and task-results")
    func oneTraceAcrossProcesses() async throws {
        let received = Mutex<[ExportedSpan]>([])
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let spans = try Self.spans(in: Data(body.readableBytesView))
            received.withLock { $0.append(contentsOf: spans) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let collector = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await collector.test(.live) { client in
            let port = try #require(client.port)
            let otel = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
                        "OTEL_BSP_SCHEDULE_DELAY": "100"]
            let stack = try await BatonStack.start(label: "tracing", environment: otel)
            try await stack.startExampleJobs(waitSeconds: 1, environment: otel)
            let traceBytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
            let traceHex = traceBytes.map { String(format: "%02x", $0) }.joined()
            // OTLP/JSON exporters write trace ids as hex (the spec) or base64 (protobuf's JSON).
            let traceIds: Set = [traceHex, Data(traceBytes).base64EncodedString()]
            let eventId = "evt_trace_\(UUID().uuidString.prefix(6))"
            let sent = try await stack.request(port: stack.ingesterPort, "/api/v1/events", method: .POST,
                                               body: #"{"id":"\#(eventId)","name":"user.created","payload":{"id":"u7","email":"u7@example.com","name":"U7"}}"#,
                                               headers: ["traceparent": "00-\(traceHex)-00f067aa0ba902b7-01"])
            #expect(sent.status == 202, "\(sent.body)")
            let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "new-user-welcome"))
            #expect(run.status == .completed)
            // Span exports are batched (every 100 ms here): wait until each process's arrived.
            let services: Set = ["baton-ingester", "baton-dispatcher", "baton-example-jobs", "baton-task-results"]
            let inTrace: [ExportedSpan]
            do {
                inTrace = try await eventually("spans of the trace from every process", deadline: .seconds(30)) { () -> [ExportedSpan]? in
                    let spans = received.withLock { $0 }.filter { traceIds.contains($0.traceId) || $0.traceId.lowercased() == traceHex }
                    let slices = spans.filter { $0.name == "slice new-user-welcome" }.count
                    return Set(spans.map(\.service)).isSuperset(of: services) && slices >= 2 ? spans : nil
                }
            } catch {
                let all = received.withLock { $0 }
                Issue.record("trace \(traceHex): received \(all.count) spans: \(all.prefix(40).map { "\($0.service) \($0.traceId) \($0.name)" })\n\(stack.allOutput())")
                throw error
            }
            let names = Set(inTrace.map(\.name))
            #expect(names.contains("/api/v1/events"), "the ingester's request span: \(names.sorted())")
            #expect(names.contains("baton.events publish") && names.contains("baton.events process"), "\(names.sorted())")
            #expect(names.contains("task look up user") && names.contains("task send welcome e-mail"), "\(names.sorted())")
            // The first slice and the one after the wait; a rebalance under load (the embedded
            // profile's 2 s session timeout) may fence a slice and add its re-run, in the trace too.
            #expect(inTrace.filter { $0.name == "slice new-user-welcome" }.count >= 2, "the first slice and the one after the wait")
            try await stack.stop()
        }
    }
}
