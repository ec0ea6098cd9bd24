import Crypto
import Foundation

/// API keys: how they look, how they are stored.
///
/// A key is `bk_<environment>_<64 hex digits>` (256 random bits); only its SHA-256 is stored.
/// A fast hash is enough because the keys are random, not chosen by people: there is nothing to
/// guess from a dictionary, and 2^256 keys cannot be searched.
public enum APIKey {
    /// A new random key for `environment` (drawn from the system's CSPRNG).
    public static func generate(environment: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "bk_\(environment)_" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The stored form of `key`: lower-case hex SHA-256 of its UTF-8 bytes.
    public static func hash(_ key: String) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// One stored key: who it belongs to, and its hash.
    public struct Record: Codable, Sendable, Hashable {
        /// A name for the key, to tell keys apart in logs and when revoking (never the key).
        public var id: String
        public var project: String
        public var environment: String
        /// ``APIKey/hash(_:)`` of the key.
        public var sha256: String

        public init(id: String, project: String, environment: String, sha256: String) {
            self.id = id
            self.project = project
            self.environment = environment
            self.sha256 = sha256
        }

        /// The tenant the key belongs to.
        /// - Throws: `ValidationError` when project or environment is not a slug.
        public func tenant() throws(ValidationError) -> Tenant {
            try Tenant(project: project, environment: environment)
        }
    }

    /// The keys file: `{"keys": [Record, …]}`.
    public struct File: Codable, Sendable, Hashable {
        public var keys: [Record]
        public init(keys: [Record]) { self.keys = keys }

        /// Decodes and checks a keys file.
        /// - Throws: `ValidationError` naming the entry that is wrong.
        public static func decode(from data: some DataProtocol) throws(ValidationError) -> File {
            let file = try BatonJSON.decodeDocument(File.self, from: data)
            var seen = Set<String>()
            for (index, record) in file.keys.enumerated() {
                let path = "$.keys[\(index)]"
                do {
                    _ = try record.tenant()
                } catch {
                    throw ValidationError(path: "\(path).\(error.path)", message: error.message)
                }
                guard record.sha256.count == 64, record.sha256.allSatisfy(\.isHexDigit) else {
                    throw ValidationError(path: "\(path).sha256", message: "must be 64 hex digits (the SHA-256 of the key), not the key itself")
                }
                guard seen.insert(record.sha256.lowercased()).inserted else {
                    throw ValidationError(path: "\(path).sha256", message: "the same key is listed twice")
                }
            }
            return file
        }
    }
}
