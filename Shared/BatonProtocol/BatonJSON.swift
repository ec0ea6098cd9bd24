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

    /// Parses an RFC 3339 date-time (section 5.6): `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
    /// `T` and `Z` in either case, any number of fraction digits, a leap second `:60`, any offset
    /// up to ±23:59; `nil` for anything else, a day the month does not have included.
    public static func parseDate(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[range] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116, bytes[13] == 58, bytes[16] == 58,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), hour < 24, minute < 60, second <= 60 else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { return nil }
        var index = 19
        var fraction = 0.0
        if bytes[index] == 46 {
            var scale = 0.1
            index += 1
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        guard index < bytes.count else { return nil }
        var offset = 0
        if bytes[index] == 90 || bytes[index] == 122 {
            guard index + 1 == bytes.count else { return nil }
        } else {
            guard bytes[index] == 43 || bytes[index] == 45, index + 6 == bytes.count, bytes[index + 3] == 58,
                  let hours = number(index + 1..<index + 3), let minutes = number(index + 4..<index + 6), hours < 24, minutes < 60 else { return nil }
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == 45 ? -1 : 1)
        }
        // Days since 1970-01-01 of the civil date (proleptic Gregorian).
        let shifted = month <= 2 ? year - 1 : year
        let era = (shifted >= 0 ? shifted : shifted - 399) / 400
        let yearOfEra = shifted - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let epochDays = era * 146_097 + dayOfEra - 719_468
        let seconds = epochDays * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
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
