import BatonProtocol
import BatonTesting
import Foundation
import Testing

/// The decoder every Kafka topic's consumer uses, by corpus topic name.
func topicDecoder(_ topic: String) -> (@Sendable ([UInt8]) throws(ValidationError) -> Void)? {
    switch topic {
    case "events": return { bytes throws(ValidationError) in _ = try EventEnvelope.decode(from: bytes) }
    case "jobs": return { bytes throws(ValidationError) in _ = try JobRegistration.decode(from: bytes) }
    case "task-results": return { bytes throws(ValidationError) in _ = try RunEvent.decode(from: bytes, maxDepth: Limits.default.nestingDepth + Limits.envelopeDepth) }
    case let runs where runs.hasPrefix("runs."):
        return { bytes throws(ValidationError) in _ = try RunCommand.decode(from: bytes, maxDepth: Limits.default.nestingDepth + Limits.envelopeDepth) }
    default: return nil
    }
}

@Suite("Bad-input corpus: decoders")
struct CorpusDecoderTests {
    @Test("every malformed Kafka record in the corpus is refused by its topic's decoder with a path and a message; semantic cases decode")
    func kafkaCorpus() throws {
        let corpus = try BadInputCorpus.load()
        var counts: [String: Int] = [:]
        for entry in corpus.kafka {
            let decode = try #require(topicDecoder(entry.topic), "no decoder for topic \(entry.topic)")
            counts[entry.topic, default: 0] += 1
            do throws(ValidationError) {
                try decode(entry.bytes)
                #expect(entry.semantic == true, "\(entry.topic) / \(entry.case): decoded, but the corpus expects the decoder to refuse it")
            } catch {
                #expect(entry.semantic != true, "\(entry.topic) / \(entry.case): \(error) — a semantic case must decode")
                #expect(error.path.hasPrefix("$"), "\(entry.case): path \(error.path)")
                #expect(!error.message.isEmpty)
                // The dead-letter reason is "<Type> refused: <error>"; the part the decoder owns:
                let ownReason = ["EventEnvelope", "JobRegistration", "RunCommand", "RunEvent"].contains(entry.reason) || "\(error)".contains(entry.reason)
                #expect(ownReason, "\(entry.topic) / \(entry.case): '\(error)' does not mention '\(entry.reason)'")
            }
        }
        #expect(counts.keys.sorted() == ["events", "jobs", "runs.many-steps", "task-results"])
        print("corpus (decoders): " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }

    @Test("corpus templates expand as documented")
    func templates() {
        #expect(BadInputCorpus.expand("{{nest:3}}|{{repeat:ab:2}}|{{repeat:{\"a\"},:2}}") == #"[[[]]]|abab|{"a"},{"a"},"#)
        #expect(BadInputCorpus.bytes(hex: "00ff7b") == [0x00, 0xFF, 0x7B])
    }
}

/// Mutation fuzzing of the decoders of every Kafka message and of the JSON depth scanner.
///
/// Bounded: `BATON_FUZZ_ITERATIONS` inputs (default 20,000: a few seconds) or, when set,
/// `BATON_FUZZ_SECONDS` of wall time; `BATON_FUZZ_SEED` picks the sequence. `deploy/local/fuzz`
/// runs it for longer. The property: every input either decodes into a document that encodes
/// and decodes again to the same value, or is refused with a `ValidationError` — never a crash,
/// a hang or another error.
@Suite("Fuzzing the decoders")
struct DecoderFuzzTests {
    static func seeds() throws -> [(String, [UInt8])] {
        let event = EventEnvelope(id: "evt_1", name: "user.created", payload: ["id": "u1", "tags": ["a", 1, true, .null], "n": 1.5],
                                  context: ["plan": "pro"], deliverAt: Date(timeIntervalSince1970: 1_900_000_000), invoke: "sync-crm")
        let registration = try JobRegistration(id: "Sync CRM", name: "Sync", version: "1.2.3-beta.1",
                                               trigger: .event(name: "user.created"))
        let command = RunCommand(kind: .execute, runId: "run_1", jobSlug: "sync-crm", jobVersion: "1.2.3", event: event,
                                 completedTasks: [.init(taskId: "t1", key: "k", output: ["ok": true])])
        let runEvents: [RunEvent] = [
            RunEvent(runId: "run_1", body: .runCreated(.init(jobSlug: "sync-crm", jobVersion: "1.2.3", event: event))),
            RunEvent(runId: "run_1", body: .taskFailed(.init(taskId: "t1", key: "k", parentTaskId: nil, error: "boom", attempt: 2,
                                                             retryAt: Date(timeIntervalSince1970: 1_900_000_000)))),
            RunEvent(runId: "run_1", body: .fetchRequested(.init(taskId: "t2", key: "f", parentTaskId: "t1",
                                                                 request: BackgroundFetchRequest(url: "https://example.com/x", headers: ["a": "b"])))),
        ]
        var seeds: [(String, [UInt8])] = [
            ("events", Array(try BatonJSON.encoder.encode(event))),
            ("jobs", Array(try BatonJSON.encoder.encode(registration))),
            ("runs.x", Array(try BatonJSON.encoder.encode(command))),
        ]
        seeds += try runEvents.map { ("task-results", Array(try BatonJSON.encoder.encode($0))) }
        seeds += try BadInputCorpus.load().kafka.map { ($0.topic, $0.bytes) }
        return seeds
    }

    static let tokens: [[UInt8]] = ["{", "}", "[", "]", "\"", ":", ",", "\\", "\\u0000", "\\ud800", "1e999", "-0", "null", "true",
                                    "9223372036854775808", "\"$.\"", "{\"a\":", "[[[[[[[[", String(repeating: "[", count: 200)]
        .map { Array($0.utf8) }

    static func mutate(_ input: [UInt8], using random: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0...bytes.count, using: &random)
            switch Int.random(in: 0..<7, using: &random) {
            case 0 where !bytes.isEmpty:  // flip a bit
                let index = min(position, bytes.count - 1)
                bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
            case 1:  // truncate
                bytes = Array(bytes.prefix(position))
            case 2 where position < bytes.count:  // delete a range
                bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &random)))
            case 3:  // insert a JSON token
                bytes.insert(contentsOf: tokens.randomElement(using: &random)!, at: position)
            case 4:  // insert random bytes
                bytes.insert(contentsOf: (0..<Int.random(in: 1...8, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: position)
            case 5 where !bytes.isEmpty:  // duplicate a range
                let end = min(bytes.count, position + Int.random(in: 1...32, using: &random))
                bytes.insert(contentsOf: bytes[min(position, bytes.count - 1)..<end], at: position)
            default:  // random bytes only
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
        }
        return bytes
    }

    @Test("mutated and random records never crash a decoder: each decodes and round-trips, or is refused with a ValidationError")
    func fuzz() throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = environment["BATON_FUZZ_SECONDS"].flatMap(Double.init)
        let iterations = environment["BATON_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 20_000
        var random = SeededGenerator(seed: environment["BATON_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261125)
        let seeds = try Self.seeds()
        let start = Date()
        var inputs = 0
        var refused = 0
        var decoded = 0
        while seconds.map({ Date().timeIntervalSince(start) < $0 }) ?? (inputs < iterations) {
            let (topic, seed) = seeds.randomElement(using: &random)!
            let input = Self.mutate(seed, using: &random)
            inputs += 1
            let limit = Limits.default.nestingDepth
            let depth = BatonJSON.nestingDepth(of: input, stoppingAbove: limit)
            #expect(depth >= 0 && depth <= limit + 1)
            do throws(ValidationError) {
                try Self.roundTrip(topic: topic, input)
                decoded += 1
            } catch {
                refused += 1
                #expect(!error.message.isEmpty && error.path.hasPrefix("$"), "\(error)")
            }
        }
        #expect(inputs > 0 && decoded + refused == inputs)
        #expect(decoded > 0, "some mutations keep a document valid (the fuzzer reaches past the parser)")
        print("fuzz: \(inputs) inputs in \(String(format: "%.1f", Date().timeIntervalSince(start))) s: \(decoded) decoded and round-tripped, \(refused) refused, 0 crashes")
    }

    /// Decodes `input` as `topic`'s message; a success must re-encode and decode to the same value.
    static func roundTrip(topic: String, _ input: [UInt8]) throws(ValidationError) {
        // Encoding is a fixed point: what a decoded document encodes to decodes and encodes to
        // the same bytes. (Values may differ below a millisecond: defaults such as "now".)
        func check<T: Codable>(_ value: T, _ decode: ([UInt8]) throws(ValidationError) -> T) throws(ValidationError) {
            guard let first = try? Array(BatonJSON.encoder.encode(value)) else {
                Issue.record("a decoded \(T.self) does not encode")
                return
            }
            let again: T
            do throws(ValidationError) {
                again = try decode(first)
            } catch {
                Issue.record("a decoded \(T.self) does not decode after encoding: \(error)")
                return
            }
            let second = (try? Array(BatonJSON.encoder.encode(again))) ?? []
            #expect(first == second, "\(T.self) changed on a round trip: \(String(decoding: first, as: UTF8.self)) → \(String(decoding: second, as: UTF8.self))")
        }
        let deep = Limits.default.nestingDepth + Limits.envelopeDepth
        switch topic {
        case "events": try check(try EventEnvelope.decode(from: input)) { bytes throws(ValidationError) in try EventEnvelope.decode(from: bytes) }
        case "jobs": try check(try JobRegistration.decode(from: input)) { bytes throws(ValidationError) in try JobRegistration.decode(from: bytes) }
        case "task-results":
            try check(try RunEvent.decode(from: input, maxDepth: deep)) { bytes throws(ValidationError) in try RunEvent.decode(from: bytes, maxDepth: deep) }
        default:
            try check(try RunCommand.decode(from: input, maxDepth: deep)) { bytes throws(ValidationError) in try RunCommand.decode(from: bytes, maxDepth: deep) }
        }
    }
}

@Suite("Dates in Baton JSON")
struct DateFormatTests {
    @Test("a formatted date parses and formats back to the same text (found by the fuzzer: .851 came back as .850)",
          arguments: ["2026-11-25T08:53:01.851Z", "2026-11-25T08:53:01.000Z", "1969-12-31T23:59:59.999Z", "2030-03-17T17:46:40.001Z"])
    func roundTrip(text: String) throws {
        let date = try #require(BatonJSON.parseDate(text))
        #expect(BatonJSON.formatDate(date) == text)
        #expect(BatonJSON.formatDate(try #require(BatonJSON.parseDate(BatonJSON.formatDate(date)))) == text)
    }
}
