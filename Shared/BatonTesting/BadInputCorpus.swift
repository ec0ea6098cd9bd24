import Foundation

/// The bad-input corpus in `Tests/Corpus/bad-inputs.json`: for every entry point, inputs that
/// must be refused, and how.
public struct BadInputCorpus: Decodable, Sendable {
    /// A bad HTTP request and the answer it must get.
    public struct HTTPCase: Decodable, Sendable {
        /// `METHOD /path`, `{id}` standing for ``id``.
        public var entry: String
        public var `case`: String
        public var id: String?
        public var query: String?
        public var body: String?
        public var hex: String?
        public var status: UInt
        public var code: String
        public var path: String?

        public var method: String { String(entry.split(separator: " ")[0]) }
        /// The request path with `{id}` and the query filled in.
        public var requestPath: String {
            let template = String(entry.split(separator: " ")[1])
            let id = BadInputCorpus.expand(self.id ?? "").addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ""
            return template.replacingOccurrences(of: "{id}", with: id) + (query ?? "")
        }
        /// The body bytes, templates expanded; `nil` for no body.
        public var bodyBytes: [UInt8]? {
            if let hex { return BadInputCorpus.bytes(hex: hex) }
            return body.map { Array(BadInputCorpus.expand($0).utf8) }
        }
    }

    /// A bad Kafka record and the reason its dead-letter copy must give.
    public struct KafkaCase: Decodable, Sendable {
        /// The topic without the prefix: `events`, `jobs`, `task-results`, `runs.<slug>`.
        public var topic: String
        public var `case`: String
        public var value: String?
        public var hex: String?
        /// Text the dead-letter reason header must contain.
        public var reason: String
        /// Refused by a service's rules, not by the decoder (the record itself is well formed).
        public var semantic: Bool?

        public var bytes: [UInt8] {
            if let hex { return BadInputCorpus.bytes(hex: hex) }
            return Array(BadInputCorpus.expand(value ?? "").utf8)
        }
    }

    public var http: [HTTPCase]
    public var kafka: [KafkaCase]

    /// Reads the corpus from the repository.
    public static func load() throws -> BadInputCorpus {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/Corpus/bad-inputs.json")
        return try JSONDecoder().decode(BadInputCorpus.self, from: Data(contentsOf: url))
    }

    /// Expands `{{repeat:X:N}}` and `{{nest:N}}`.
    public static func expand(_ text: String) -> String {
        var result = text
        while let start = result.range(of: "{{"), let end = result.range(of: "}}", range: start.upperBound..<result.endIndex) {
            let spec = String(result[start.upperBound..<end.lowerBound])
            let replacement: String
            if spec.hasPrefix("repeat:"), let colon = spec.lastIndex(of: ":"), let count = Int(spec[spec.index(after: colon)...]) {
                replacement = String(repeating: String(spec[spec.index(spec.startIndex, offsetBy: 7)..<colon]), count: count)
            } else if spec.hasPrefix("nest:"), let count = Int(spec.dropFirst(5)) {
                replacement = String(repeating: "[", count: count) + String(repeating: "]", count: count)
            } else {
                replacement = spec
            }
            result.replaceSubrange(start.lowerBound..<end.upperBound, with: replacement)
        }
        return result
    }

    public static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}
