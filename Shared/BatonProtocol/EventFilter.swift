import Foundation

/// A filter over an event's payload or context, with Trigger.dev v2 semantics.
///
/// A filter is a JSON object. Each key names a field of the value it is matched against:
/// - an array of plain values (strings, numbers, booleans) matches when the field equals one of
///   them (`{"plan": ["pro", "team"]}`); an empty array matches anything;
/// - an array of content filters matches when the field passes every one of them
///   (`{"age": [{"$gte": 18}, {"$lt": 65}]}`);
/// - a nested object is matched against the field (and, when the field is an array, against
///   each element: one match is enough).
///
/// Content filters: `$startsWith`, `$endsWith`, `$ignoreCaseEquals` (strings); `$gt`, `$gte`,
/// `$lt`, `$lte` (numbers), `$between` (`[min, max]`, inclusive); `$exists` and `$isNull`
/// (booleans); `$anythingBut` (a value or an array of values the field must not equal);
/// `$includes` (the field is an array holding the value); `$not` (the field is not this value).
public struct EventFilter: Codable, Sendable, Hashable {
    /// The filter document.
    public var definition: JSONValue

    /// A filter from its JSON document.
    /// - Throws: `ValidationError` naming the first offending part (path under `path`).
    public init(_ definition: JSONValue, path: String = "$.filter") throws(ValidationError) {
        try Self.validate(definition, path: path)
        self.definition = definition
    }

    public init(from decoder: any Decoder) throws {
        let definition = try JSONValue(from: decoder)
        do {
            try Self.validate(definition, path: "$")
        } catch {
            // Report the offending leaf's full path (`$.trigger.filter.plan`), not the filter's.
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + BatonJSON.codingPath(error.path),
                                                    debugDescription: error.message))
        }
        self.definition = definition
    }

    public func encode(to encoder: any Encoder) throws {
        try definition.encode(to: encoder)
    }

    /// Whether `value` (an event's payload or context) passes the filter.
    public func matches(_ value: JSONValue?) -> Bool {
        Self.matches(value, definition)
    }

    // MARK: - Matching

    static func matches(_ value: JSONValue?, _ filter: JSONValue) -> Bool {
        guard case .object(let patterns) = filter else { return false }
        guard let value, value != .null else { return patterns.isEmpty }
        for (key, pattern) in patterns {
            let field = value[key]
            switch pattern {
            case .array(let allowed):
                if allowed.isEmpty { continue }
                if allowed.allSatisfy(\.isPlainValue) {
                    guard let field, allowed.contains(where: { Self.equal($0, field) }) else { return false }
                } else {
                    guard allowed.allSatisfy({ contentFilterMatches(field, $0) }) else { return false }
                }
            case .object:
                if case .array(let elements) = field {
                    guard elements.contains(where: { matches($0, pattern) }) else { return false }
                } else {
                    guard matches(field, pattern) else { return false }
                }
            default:
                return false  // rejected by validation
            }
        }
        return true
    }

    static func contentFilterMatches(_ field: JSONValue?, _ filter: JSONValue) -> Bool {
        guard case .object(let members) = filter, members.count == 1, let (operation, operand) = members.first else { return false }
        switch operation {
        case "$startsWith":
            guard case .string(let text) = field, case .string(let prefix) = operand else { return false }
            return text.hasPrefix(prefix)
        case "$endsWith":
            guard case .string(let text) = field, case .string(let suffix) = operand else { return false }
            return text.hasSuffix(suffix)
        case "$ignoreCaseEquals":
            guard case .string(let text) = field, case .string(let other) = operand else { return false }
            return text.compare(other, options: [.caseInsensitive]) == .orderedSame
        case "$exists":
            guard case .bool(let shouldExist) = operand else { return false }
            return (field != nil) == shouldExist
        case "$isNull":
            guard case .bool(let shouldBeNull) = operand else { return false }
            return (field == .null) == shouldBeNull
        case "$anythingBut":
            guard let field else { return true }
            if case .array(let excluded) = operand { return !excluded.contains { equal($0, field) } }
            return !equal(operand, field)
        case "$includes":
            guard case .array(let elements) = field else { return false }
            return elements.contains { equal($0, operand) }
        case "$not":
            guard let field else { return true }
            return !equal(operand, field)
        case "$gt", "$gte", "$lt", "$lte":
            guard let number = field?.number, let bound = operand.number else { return false }
            switch operation {
            case "$gt": return number > bound
            case "$gte": return number >= bound
            case "$lt": return number < bound
            default: return number <= bound
            }
        case "$between":
            guard let number = field?.number, case .array(let bounds) = operand, bounds.count == 2,
                  let first = bounds[0].number, let second = bounds[1].number else { return false }
            return number >= min(first, second) && number <= max(first, second)
        default:
            return false
        }
    }

    /// JSON equality where 1 and 1.0 are equal.
    static func equal(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        if let left = lhs.number, let right = rhs.number { return left == right }
        return lhs == rhs
    }

    // MARK: - Validation

    static let stringOperators: Set<String> = ["$startsWith", "$endsWith", "$ignoreCaseEquals"]
    static let numberOperators: Set<String> = ["$gt", "$gte", "$lt", "$lte"]
    static let boolOperators: Set<String> = ["$exists", "$isNull"]

    static func validate(_ filter: JSONValue, path: String) throws(ValidationError) {
        guard case .object(let patterns) = filter else {
            throw ValidationError(path: path, message: "a filter is an object whose values are arrays of allowed values or nested filters")
        }
        for (key, pattern) in patterns.sorted(by: { $0.key < $1.key }) {
            let fieldPath = "\(path).\(key)"
            switch pattern {
            case .object:
                try validate(pattern, path: fieldPath)
            case .array(let elements):
                let plain = elements.allSatisfy(\.isPlainValue)
                if !plain {
                    for (index, element) in elements.enumerated() {
                        try validateContentFilter(element, path: "\(fieldPath)[\(index)]")
                    }
                }
            default:
                throw ValidationError(path: fieldPath, message: "expected an array of allowed values (e.g. [\(pattern.jsonText)]) or a nested filter object")
            }
        }
    }

    static func validateContentFilter(_ filter: JSONValue, path: String) throws(ValidationError) {
        guard case .object(let members) = filter, members.count == 1, let (operation, operand) = members.first else {
            throw ValidationError(path: path, message: "mix plain values and content filters in separate fields; a content filter is an object with one operator, e.g. {\"$startsWith\": \"a\"}")
        }
        let operatorPath = "\(path).\(operation)"
        switch operation {
        case _ where stringOperators.contains(operation):
            guard case .string = operand else { throw ValidationError(path: operatorPath, message: "\(operation) takes a string") }
        case _ where numberOperators.contains(operation):
            guard operand.number != nil else { throw ValidationError(path: operatorPath, message: "\(operation) takes a number") }
        case _ where boolOperators.contains(operation):
            guard case .bool = operand else { throw ValidationError(path: operatorPath, message: "\(operation) takes true or false") }
        case "$between":
            guard case .array(let bounds) = operand, bounds.count == 2, bounds[0].number != nil, bounds[1].number != nil else {
                throw ValidationError(path: operatorPath, message: "$between takes two numbers, [min, max] (in either order)")
            }
        case "$anythingBut", "$includes", "$not":
            if case .array(let values) = operand, operation == "$anythingBut" {
                guard values.allSatisfy(\.isPlainValue) else { throw ValidationError(path: operatorPath, message: "$anythingBut takes a value or an array of values") }
            } else {
                guard operand.isPlainValue else { throw ValidationError(path: operatorPath, message: "\(operation) takes a string, number or boolean") }
            }
        default:
            throw ValidationError(path: operatorPath, message: "unknown content filter '\(operation)'; use $startsWith, $endsWith, $ignoreCaseEquals, $exists, $isNull, $anythingBut, $gt, $gte, $lt, $lte, $between, $includes or $not")
        }
    }
}

extension JSONValue {
    /// Strings, numbers and booleans.
    var isPlainValue: Bool {
        switch self {
        case .string, .int, .double, .bool: true
        default: false
        }
    }

    /// The numeric value of a number.
    var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// Compact JSON text, for messages.
    var jsonText: String {
        (try? BatonJSON.encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "\(self)"
    }
}
