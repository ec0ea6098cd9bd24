import BatonProtocol
import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The API keys a service accepts, loaded from the keys file (`auth.keys.file`,
/// `AUTH_KEYS_FILE`): hashes only, each with the tenant it belongs to.
///
/// Without a keys file, authentication is off and every request acts for ``Tenant/default``:
/// the embedded, single-user profile. Production sets the file (see `docs/operations.md`).
///
/// The ring reloads the file without a restart (``reloader(logger:)``): when it changes, and on
/// SIGHUP. A revoked key is refused within a second or two; a file that cannot be read or
/// parsed leaves the keys as they were, with an error log line.
public final class APIKeyRing: Sendable {
    private struct Entry: Sendable {
        let id: String
        let tenant: Tenant
    }
    private let entries: Mutex<[String: Entry]>
    /// Whether requests must carry a key.
    public let isEnabled: Bool
    /// The keys file the ring was loaded from (`nil`: built from records, or disabled).
    public let path: String?

    private init(entries: [String: Entry], isEnabled: Bool, path: String?) {
        self.entries = Mutex(entries)
        self.isEnabled = isEnabled
        self.path = path
    }

    private static func entries(_ records: [APIKey.Record]) throws(ValidationError) -> [String: Entry] {
        var entries: [String: Entry] = [:]
        for record in records {
            entries[record.sha256.lowercased()] = Entry(id: record.id, tenant: try record.tenant())
        }
        return entries
    }

    /// A ring holding `records`; enabled.
    public convenience init(records: [APIKey.Record]) throws(ValidationError) {
        self.init(entries: try Self.entries(records), isEnabled: true, path: nil)
    }

    /// Authentication off: every request is ``Tenant/default``.
    public static let disabled = APIKeyRing(entries: [:], isEnabled: false, path: nil)

    /// Loads the ring configured by `auth.keys.file`, or ``disabled`` when it is not set.
    /// - Throws: `ValidationError` naming the file and what is wrong with it.
    public static func load(config: ConfigReader) throws(ValidationError) -> APIKeyRing {
        let path = config.string(forKey: "auth.keys.file", default: "")
        guard !path.isEmpty else { return .disabled }
        return APIKeyRing(entries: try entries(readFile(path)), isEnabled: true, path: path)
    }

    private static func readFile(_ path: String) throws(ValidationError) -> [APIKey.Record] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError(path: "auth.keys.file", message: "cannot read the keys file '\(path)': \(error.localizedDescription)")
        }
        do {
            return try APIKey.File.decode(from: data).keys
        } catch {
            throw ValidationError(path: "auth.keys.file", message: "keys file '\(path)': \(error)")
        }
    }

    /// Reads the keys file again. On success the new keys apply to the next request; on
    /// failure the keys stay as they were.
    /// - Returns: the number of keys now accepted.
    /// - Throws: `ValidationError` naming the file and what is wrong with it.
    @discardableResult
    public func reload() throws(ValidationError) -> Int {
        guard let path else { return entries.withLock { $0.count } }
        let fresh = try Self.entries(Self.readFile(path))
        entries.withLock { $0 = fresh }
        return fresh.count
    }

    /// A service that reloads the keys file when it changes (checked every `interval`) and on
    /// SIGHUP; `nil` when the ring has no file.
    public func reloader(every interval: Duration = .seconds(1), logger: Logger) -> (any Service)? {
        guard path != nil else { return nil }
        return APIKeyReloader(ring: self, interval: interval, logger: logger)
    }

    /// Says at start-up whether requests need keys.
    public func logState(_ logger: Logger) {
        if isEnabled {
            logger.info("API authentication is on", metadata: ["keys": "\(entries.withLock { $0.count })", "keys.file": "\(path ?? "-")"])
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
        let hash = APIKey.hash(String(parts[1]).trimmingCharacters(in: .whitespaces))
        guard let entry = entries.withLock({ $0[hash] }) else {
            throw APIError(status: .unauthorized, code: "unauthenticated", message: "the API key is not valid (revoked, mistyped, or for another installation)")
        }
        return entry.tenant
    }
}

/// Reloads an ``APIKeyRing``'s file when it changes (modification time, size or inode, checked
/// every `interval`) and on SIGHUP, until graceful shutdown.
struct APIKeyReloader: Service, CustomStringConvertible {
    let ring: APIKeyRing
    let interval: Duration
    let logger: Logger

    var description: String { "API key reloader" }

    /// What identifies one version of the file.
    private func stamp() -> String? {
        guard let path = ring.path, let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return "\(attributes[.modificationDate] ?? "")|\(attributes[.size] ?? "")|\(attributes[.systemFileNumber] ?? "")"
    }

    private func reload(_ why: String) {
        do {
            let count = try ring.reload()
            logger.notice("API keys reloaded", metadata: ["keys": "\(count)", "reason": "\(why)"])
        } catch {
            logger.error("API keys not reloaded: the keys in use stay as they were", metadata: ["error": "\(error)", "reason": "\(why)"])
        }
    }

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    reload("SIGHUP")
                }
            }
            group.addTask {
                var last = stamp()
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                    let now = stamp()
                    if now != last, now != nil {
                        last = now
                        reload("the keys file changed")
                    }
                }
            }
        }
    }
}
