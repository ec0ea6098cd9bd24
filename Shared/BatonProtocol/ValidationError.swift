import Foundation

/// A message or definition that breaks a rule of the Baton protocol.
///
/// `path` names the offending field as a JSON path (`$.name`), `message` says what is wrong in
/// words a user can act on. The description is safe to show to API clients.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Machine-readable category, e.g. `invalid_field`, `malformed_json`.
    public var code: String
    /// JSON path of the offending field; `$` for the whole document.
    public var path: String
    /// What is wrong, and how to fix it.
    public var message: String

    public init(code: String = "invalid_field", path: String, message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { path == "$" || path.isEmpty ? message : "\(path): \(message)" }

    /// Wraps a decoding failure (`DecodingError` or a JSON syntax error).
    public static func decoding(_ error: any Error) -> ValidationError {
        let (path, message) = BatonJSON.describe(error)
        // Only a document that is not JSON at all is malformed; valid JSON of the wrong shape
        // (`[]` where an object belongs) is an invalid field at `$`.
        let isSyntax: Bool
        switch error as? DecodingError {
        case .dataCorrupted(let context)?: isSyntax = context.codingPath.isEmpty
        case nil: isSyntax = true
        default: isSyntax = false
        }
        return ValidationError(code: isSyntax ? "malformed_json" : "invalid_field", path: path.isEmpty ? "$" : path, message: message)
    }
}
