import Foundation

/// The JSON dialect of every Baton message: RFC 3339 dates with fractional seconds, sorted keys.
public enum BatonJSON {
    /// An encoder configured for Baton documents (shared: encoding does not mutate it).
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        return encoder
    }()

    /// A decoder configured for Baton documents; accepts RFC 3339 dates with or without fractions.
    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "'\(text)' is not an RFC 3339 date-time")
            }
            return date
        }
        return decoder
    }()

    /// Decodes a Baton document of type `T`.
    /// - Throws: `ValidationError` (`malformed_json`, `invalid_field`, or `too_deep` when arrays
    ///   and objects nest deeper than `maxDepth`) naming the field path.
    public static func decodeDocument<T: Decodable>(_ type: T.Type, from data: some DataProtocol,
                                                    maxDepth: Int = Limits.default.nestingDepth) throws(ValidationError) -> T {
        let depth = nestingDepth(of: data, stoppingAbove: maxDepth)
        guard depth <= maxDepth else {
            throw ValidationError(code: "too_deep", path: "$", message: "the JSON document nests deeper than \(maxDepth) levels (limits.json.depth)")
        }
        do {
            return try decoder.decode(T.self, from: Data(data))
        } catch {
            throw ValidationError.decoding(error)
        }
    }

    /// Formats a date as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T06:00:00.123Z`.
    ///
    /// Rounds to the nearest millisecond, so a parsed date formats back to the same text
    /// (Foundation's formatter truncates, and a parsed `.851` is stored as `.85099…`).
    public static func formatDate(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded()
        let (seconds, fraction) = Int64(milliseconds).quotientAndRemainder(dividingBy: 1000)
        let whole = fraction < 0 ? seconds - 1 : seconds
        let text = Date(timeIntervalSince1970: Double(whole)).formatted(Date.ISO8601FormatStyle())
        return "\(text.dropLast())." + String(format: "%03d", (fraction + 1000) % 1000) + "Z"
    }

    /// Parses an RFC 3339 date-time with or without fractional seconds.
    public static func parseDate(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// A coding key for any field name or array index.
    public struct AnyKey: CodingKey, Sendable {
        public var stringValue: String
        public var intValue: Int?
        public init(stringValue: String) { self.stringValue = stringValue }
        public init(intValue: Int) {
            self.stringValue = "\(intValue)"
            self.intValue = intValue
        }
    }

    /// The coding keys of a path such as `$.a.b[2]` (relative to a document's root).
    public static func codingPath(_ path: String) -> [any CodingKey] {
        var keys: [any CodingKey] = []
        for part in path.split(separator: ".") where part != "$" {
            var name = part
            var indices: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "["), let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) {
                indices.insert(index, at: 0)
                name = name[..<open]
            }
            if !name.isEmpty, name != "$" { keys.append(AnyKey(stringValue: String(name))) }
            keys += indices.map { AnyKey(intValue: $0) }
        }
        return keys
    }

    /// Throws when the object being decoded has a field not in `known`.
    static func rejectUnknownFields(in decoder: any Decoder, known: [String]) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown field '\(key.stringValue)'; the fields are \(known.joined(separator: ", "))"))
        }
    }

    /// Describes a `DecodingError` as "field path: problem", for error messages shown to users.
    public static func describe(_ error: any Error) -> (path: String, message: String) {
        guard let decodingError = error as? DecodingError else { return ("", "\(error)") }
        func render(_ path: [any CodingKey]) -> String {
            var result = "$"
            for key in path {
                if let index = key.intValue { result += "[\(index)]" } else { result += ".\(key.stringValue)" }
            }
            return result
        }
        switch decodingError {
        case .keyNotFound(let key, let context):
            return (render(context.codingPath + [key]), "required field '\(key.stringValue)' is missing")
        case .typeMismatch(let type, let context):
            return (render(context.codingPath), "expected \(describeType(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            return (render(context.codingPath), "expected \(describeType(type)), found null")
        case .dataCorrupted(let context):
            var message = context.debugDescription
            if let underlying = context.underlyingError { message += " (\(underlying.localizedDescription))" }
            return (render(context.codingPath), message)
        @unknown default:
            return ("$", "\(decodingError)")
        }
    }

    private static func describeType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        default: "\(type)"
        }
    }
}

/// A document whose fields are exactly its coding keys: decode it as ``Strict`` to refuse
/// unknown fields.
public protocol StrictlyDecodable: Decodable {
    associatedtype CodingKeys: CodingKey & CaseIterable
}

/// Decodes `Document` and refuses fields it does not have: for request bodies, where an unknown
/// field is almost always a typo (`deliverafter`) that would otherwise be ignored silently.
public struct Strict<Document: StrictlyDecodable>: Decodable {
    public var value: Document

    public init(from decoder: any Decoder) throws {
        try BatonJSON.rejectUnknownFields(in: decoder, known: Document.CodingKeys.allCases.map(\.stringValue))
        value = try Document(from: decoder)
    }
}
