import Crypto
import Foundation

/// The request a run waited for (`io.waitForRequest` returns it): the JSON body POSTed to its
/// callback URL.
public struct WaitedRequest: Codable, Sendable, Hashable {
    /// The body, as JSON (an empty body is `null`).
    public var body: JSONValue
    /// When Baton received it.
    public var receivedAt: Date

    public init(body: JSONValue, receivedAt: Date) {
        self.body = body
        self.receivedAt = receivedAt
    }

    /// The body decoded as `T`.
    public func body<T: Decodable>(as type: T.Type) throws -> T { try body.decode(as: T.self) }
}

/// The secret in a run's callback URL (`io.waitForRequest`): 32 random bytes, hex. The table of
/// waits is keyed by its SHA-256 (``hash``); the token itself is the output of the wait's
/// `baton.token` task, which the run's tenant sees like any task output.
public enum CallbackToken {
    /// A new token.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// The token's SHA-256, hex: what identifies the wait in the store.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `text` has a token's shape (64 lowercase hex digits).
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The path under which the task-result service receives a token's request.
    public static func path(_ token: String) -> String { "/api/v1/callbacks/\(token)" }
}
