import BatonProtocol
import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The API keys a service accepts, loaded from the keys file (`auth.keys.file`,
/// `AUTH_KEYS_FILE`): hashes only, each with the tenant it belongs to.
///
/// Without a keys file, authentication is off and every request acts for ``Tenant/default``:
/// the embedded, single-user profile. Production sets the file (see `docs/operations.md`).
public struct APIKeyRing: Sendable {
    private let tenants: [String: (id: String, tenant: Tenant)]
    /// Whether requests must carry a key.
    public let isEnabled: Bool

    private init(tenants: [String: (id: String, tenant: Tenant)], isEnabled: Bool) {
        self.tenants = tenants
        self.isEnabled = isEnabled
    }

    /// A ring holding `records`; enabled.
    public init(records: [APIKey.Record]) throws(ValidationError) {
        var tenants: [String: (id: String, tenant: Tenant)] = [:]
        for record in records {
            tenants[record.sha256.lowercased()] = (record.id, try record.tenant())
        }
        self.init(tenants: tenants, isEnabled: true)
    }

    /// Authentication off: every request is ``Tenant/default``.
    public static let disabled = APIKeyRing(tenants: [:], isEnabled: false)

    /// Loads the ring configured by `auth.keys.file`, or ``disabled`` when it is not set.
    /// - Throws: `ValidationError` naming the file and what is wrong with it.
    public static func load(config: ConfigReader) throws(ValidationError) -> APIKeyRing {
        let path = config.string(forKey: "auth.keys.file", default: "")
        guard !path.isEmpty else { return .disabled }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError(path: "auth.keys.file", message: "cannot read the keys file '\(path)': \(error.localizedDescription)")
        }
        let file: APIKey.File
        do {
            file = try APIKey.File.decode(from: data)
        } catch {
            throw ValidationError(path: "auth.keys.file", message: "keys file '\(path)': \(error)")
        }
        return try APIKeyRing(records: file.keys)
    }

    /// Says at start-up whether requests need keys.
    public func logState(_ logger: Logger) {
        if isEnabled {
            logger.info("API authentication is on", metadata: ["keys": "\(tenants.count)"])
        } else {
            logger.warning("API authentication is off (no auth.keys.file): every request acts for the default project")
        }
    }

    /// The tenant whose key `request` carries in `Authorization: Bearer <key>`.
    /// - Throws: `APIError` 401 when the key is missing or unknown (the answer never echoes it).
    public func tenant(of request: Request) throws(APIError) -> Tenant {
        guard isEnabled else { return .default }
        guard let header = request.headers[.authorization] else {
            throw APIError(status: .unauthorized, code: "unauthenticated",
                           message: "this API needs 'Authorization: Bearer <API key>'; create keys with baton-keys")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(status: .unauthorized, code: "unauthenticated", message: "the Authorization header must be 'Bearer <API key>'")
        }
        guard let entry = tenants[APIKey.hash(String(parts[1]).trimmingCharacters(in: .whitespaces))] else {
            throw APIError(status: .unauthorized, code: "unauthenticated", message: "the API key is not valid (revoked, mistyped, or for another installation)")
        }
        return entry.tenant
    }
}
