import Crypto
import Foundation

/// The part of a background-fetch request that may carry credentials (URL with its query and
/// user information, headers, body), sealed with AES-256-GCM so that it is encrypted on the
/// task-results topic and in the task-result store. Only the services holding the key (the job
/// service that seals, the task-result service that performs the request) can read it.
public struct SealedFetchSecrets: Codable, Sendable, Hashable {
    /// Which key sealed it: the first 8 hex digits of the key's SHA-256.
    public var keyID: String
    /// Nonce, ciphertext and tag (AES-GCM's combined form), base64.
    public var box: String
}

/// The keys that seal and open background-fetch requests (`fetch.secrets.keys`,
/// `FETCH_SECRETS_KEYS`): base64 of 32 random bytes each, comma-separated. The first seals; all
/// open, so a key can be rotated by putting the new one first and dropping the old one once no
/// fetch sealed with it is pending.
public struct FetchSecrets: Sendable {
    /// Key bytes (a `SymmetricKey` is made per use: it is not `Sendable`).
    private let keys: [(id: String, key: [UInt8])]

    /// - Throws: `ValidationError` (path `fetch.secrets.keys`) for a key that is not base64 of
    ///   32 bytes, or an empty list.
    public init(base64Keys: [String]) throws(ValidationError) {
        var keys: [(id: String, key: [UInt8])] = []
        for (index, text) in base64Keys.enumerated() {
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw ValidationError(path: "fetch.secrets.keys[\(index)]",
                                      message: "not base64 of 32 bytes; make one with: head -c 32 /dev/urandom | base64")
            }
            keys.append((Self.keyID(data), Array(data)))
        }
        guard !keys.isEmpty else { throw ValidationError(path: "fetch.secrets.keys", message: "no key given") }
        self.keys = keys
    }

    /// The id of the key that seals.
    public var sealingKeyID: String { keys[0].id }

    static func keyID(_ key: Data) -> String {
        SHA256.hash(data: key).prefix(4).map { String(format: "%02x", $0) }.joined()
    }

    private struct Secret: Codable {
        var url: String
        var headers: [String: String]
        var body: String?
    }

    /// What the seal also authenticates: the task it belongs to, and what stays in clear (the
    /// method, the retry rules, the redacted URL), so a box cannot be moved to another task or
    /// its GET turned into a DELETE.
    static func associatedData(_ request: BackgroundFetchRequest, context: String, keyID: String) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let retry = String(decoding: try encoder.encode(request.retry), as: UTF8.self)
        return Data("baton-fetch-v1\n\(context)\n\(request.method.uppercased())\n\(request.redactedURL)\n\(retry)\n\(keyID)".utf8)
    }

    /// `request` with its URL, headers and body sealed: in clear it keeps only the method, the
    /// retry rules and the URL without user information, query or fragment.
    /// - Parameter context: what the request belongs to (e.g. `runId/taskId`); ``open(_:context:)``
    ///   needs the same.
    public func seal(_ request: BackgroundFetchRequest, context: String) throws -> BackgroundFetchRequest {
        guard request.sealed == nil else { return request }
        let secret = try JSONEncoder().encode(Secret(url: request.url, headers: request.headers, body: request.body))
        let box = try AES.GCM.seal(secret, using: SymmetricKey(data: keys[0].key),
                                   authenticating: try Self.associatedData(request, context: context, keyID: keys[0].id))
        guard let combined = box.combined else { throw FetchSecretsError(message: "AES-GCM gave no combined box") }
        var sealed = request
        sealed.url = request.redactedURL
        sealed.headers = [:]
        sealed.body = nil
        sealed.sealed = SealedFetchSecrets(keyID: keys[0].id, box: combined.base64EncodedString())
        return sealed
    }

    /// `request` as it was sealed (unchanged when it is not sealed).
    /// - Throws: ``FetchSecretsError`` naming the key it needs (``FetchSecretsError/isMissingKey``),
    ///   or saying the box was altered, damaged or belongs to another task.
    public func open(_ request: BackgroundFetchRequest, context: String) throws(FetchSecretsError) -> BackgroundFetchRequest {
        guard let sealed = request.sealed else { return request }
        guard let key = keys.first(where: { $0.id == sealed.keyID })?.key else {
            throw FetchSecretsError(message: "the request was sealed with key \(sealed.keyID), which this service does not have (it has \(keys.map(\.id).joined(separator: ", "))); add it to FETCH_SECRETS_KEYS",
                                    isMissingKey: true)
        }
        let secret: Secret
        do {
            guard let data = Data(base64Encoded: sealed.box) else { throw FetchSecretsError(message: "not base64") }
            var clear = request
            clear.sealed = nil
            let opened = try AES.GCM.open(try AES.GCM.SealedBox(combined: data), using: SymmetricKey(data: key),
                                          authenticating: try Self.associatedData(clear, context: context, keyID: sealed.keyID))
            secret = try JSONDecoder().decode(Secret.self, from: opened)
        } catch {
            throw FetchSecretsError(message: "the sealed request cannot be opened with key \(sealed.keyID): it was altered, is damaged or belongs to another task (\(error))")
        }
        var opened = request
        opened.url = secret.url
        opened.headers = secret.headers
        opened.body = secret.body
        opened.sealed = nil
        return opened
    }
}

/// A sealed background-fetch request could not be sealed or opened.
public struct FetchSecretsError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Whether the service lacks the key (it may be added): the request itself is fine.
    public var isMissingKey: Bool
    public init(message: String, isMissingKey: Bool = false) {
        self.message = message
        self.isMissingKey = isMissingKey
    }
    public var description: String { message }
}

extension FetchSecrets {
    /// Reads `fetch.secrets.keys` text: `nil` when empty.
    public static func parse(_ text: String) throws(ValidationError) -> FetchSecrets? {
        let keys = text.split(separator: ",").map(String.init).filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
        return keys.isEmpty ? nil : try FetchSecrets(base64Keys: keys)
    }
}

extension BackgroundFetchRequest {
    /// The URL without user information, query or fragment (they may carry credentials).
    public var redactedURL: String {
        guard var components = URLComponents(string: url) else { return url }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? url
    }

    /// Whether the request looks like it carries credentials: an `Authorization`,
    /// `Proxy-Authorization` or `Cookie` header, a header whose name mentions a key, token or
    /// secret, or a URL with user information or a query.
    public var carriesCredentials: Bool {
        let names = headers.keys.map { $0.lowercased() }
        if names.contains(where: { ["authorization", "proxy-authorization", "cookie"].contains($0) || $0.contains("key") || $0.contains("token") || $0.contains("secret") }) {
            return true
        }
        guard let components = URLComponents(string: url) else { return false }
        return components.user != nil || components.password != nil || components.query != nil
    }
}
