import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging
import NIOHTTP1
import Testing

@Suite("Bad-input corpus against the running services", .tags(.integration))
struct CorpusIntegrationTests {
    struct ErrorBody: Decodable {
        struct Detail: Decodable { var code: String; var message: String; var path: String? }
        var error: Detail
    }

    @Test("every bad HTTP request gets its status and a JSON error naming code and path; every bad record is dead-lettered with its reason; valid traffic in between all arrives; nothing crashes")
    func corpus() async throws {
        let corpus = try BadInputCorpus.load()
        let stack = try await BatonStack.start(label: "corpus")
        try await stack.startExampleJobs(waitSeconds: 0.2)
        var perEntry: [String: Int] = [:]

        // HTTP: each case, with a valid event after it that must be accepted.
        var validEvents: [String] = []
        for entry in corpus.http {
            let port = entry.entry.contains("/api/v1/runs") ? stack.taskResultsPort : stack.ingesterPort
            let answer = try await stack.request(port: port, entry.requestPath, method: HTTPMethod(rawValue: entry.method),
                                                 bytes: entry.bodyBytes)
            perEntry[entry.entry, default: 0] += 1
            #expect(answer.status == entry.status, "\(entry.entry) / \(entry.case): \(answer.status) \(answer.body.prefix(300))")
            let error = try? BatonJSON.decoder.decode(ErrorBody.self, from: Data(answer.body.utf8)).error
            #expect(error?.code == entry.code, "\(entry.entry) / \(entry.case): \(answer.body.prefix(300))")
            #expect(error?.message.isEmpty == false)
            if let path = entry.path {
                #expect(error?.path == path, "\(entry.entry) / \(entry.case): path \(error?.path ?? "none"), expected \(path): \(error?.message ?? "")")
            }
            let id = "evt_corpus_http_\(validEvents.count)_\(UUID().uuidString.prefix(6))"
            #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"steps.start","payload":{"steps":1}}"#).status == 202)
            validEvents.append(id)
        }

        // Kafka: each bad record on its topic, followed by a valid envelope published straight to Kafka.
        let logger = Logger(label: "corpus")
        let configuration = KafkaConfiguration(bootstrapServers: stack.broker.bootstrapServers, profile: .embeddedBroker)
        let kafka = try KafkaProducer(configuration: configuration, options: .init(lingerMilliseconds: 0), logger: logger)
        let topics = Topics()
        for (index, entry) in corpus.kafka.enumerated() {
            let topic = entry.topic.hasPrefix("runs.") ? topics.runs(jobSlug: String(entry.topic.dropFirst(5))) : "\(topics.prefix).\(entry.topic)"
            try await kafka.send(topic: topic, key: "corpus-\(index)", value: entry.bytes)
            perEntry["topic \(topic)", default: 0] += 1
            let envelope = EventEnvelope(id: "evt_corpus_kafka_\(index)_\(UUID().uuidString.prefix(6))", name: "steps.start", payload: ["steps": 1])
            try await kafka.send(topic: topics.events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
            validEvents.append(envelope.id)
        }

        for eventId in validEvents {
            let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"), deadline: .seconds(90))
            #expect(run.status == .completed, "\(eventId): \(run.error ?? "")")
        }
        let expected = Set(corpus.kafka.indices.map { "corpus-\($0)" })
        let reasons = try await collectDeadLetters(bootstrapServers: stack.broker.bootstrapServers, keys: expected).mapValues { $0.reason ?? "" }
        #expect(Set(reasons.keys) == expected, "dead-lettered \(reasons.count) of \(expected.count) within 60 s")
        for (index, entry) in corpus.kafka.enumerated() {
            let reason = reasons["corpus-\(index)"]
            #expect(reason?.contains(entry.reason) == true, "\(entry.topic) / \(entry.case): reason '\(reason ?? "none")' lacks '\(entry.reason)'")
        }
        for process in [stack.ingester, stack.dispatcher, stack.taskResults] + stack.jobServices {
            #expect(process.isRunning, "\(process.name) is still up")
        }
        await kafka.shutdown()
        try await stack.stop()
        print("corpus (live): " + perEntry.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
              + "; valid events in between: \(validEvents.count), all completed")
    }
}
