import Foundation

/// How many runs of a job execute at once (registered with the job): at most `limit` hold a
/// slot, per value of `key` in the payload, counted over every job that names the same shared
/// limit `id`. The other runs wait, `QUEUED`, and start in the order they queued as slots free
/// up. A run holds its slot while it executes and gives it back when it waits (`io.wait`, a
/// retry back-off, a background fetch, a child run, an event or a request) or ends.
public struct ConcurrencyLimit: Codable, Sendable, Hashable, ExpressibleByIntegerLiteral {
    /// The largest limit.
    public static let maximumLimit = 10_000

    /// Runs executing at once, per key value: 1 to ``maximumLimit``.
    public var limit: Int
    /// A limit shared by every job that names this id (a slug: letters, digits, `-`, `_`).
    /// `nil`: the job's own limit.
    public var id: String?
    /// A payload field path (`userId`, `account.id`): one limit per value. `nil`: one limit.
    public var key: String?

    public init(limit: Int, id: String? = nil, key: String? = nil) {
        self.limit = limit
        self.id = id
        self.key = key
    }

    /// `concurrencyLimit: 3`: at most 3 runs of the job execute at once.
    public init(integerLiteral limit: Int) {
        self.init(limit: limit)
    }

    /// At most `limit` runs of the job execute at once for each value of `key`.
    public static func limit(_ limit: Int, key: String? = nil) -> ConcurrencyLimit {
        ConcurrencyLimit(limit: limit, key: key)
    }

    /// At most `limit` runs execute at once across every job that names `id` (per value of
    /// `key`, when given).
    public static func shared(_ id: String, limit: Int, key: String? = nil) -> ConcurrencyLimit {
        ConcurrencyLimit(limit: limit, id: id, key: key)
    }

    /// Checks the fields.
    /// - Throws: `ValidationError` naming the offending field.
    public func validate(path: String = "$.concurrencyLimit") throws(ValidationError) {
        guard (1...Self.maximumLimit).contains(limit) else {
            throw ValidationError(path: "\(path).limit", message: "the limit must be 1 to \(Self.maximumLimit), got \(limit)")
        }
        if let id {
            guard (1...100).contains(id.utf8.count),
                  id.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 }) else {
                throw ValidationError(path: "\(path).id", message: "'\(id)' is not a shared limit id (1 to 100 letters, digits, '-' or '_')")
            }
        }
        try PayloadKey.validate(key, path: "\(path).key")
    }

    /// The queue a run of `jobSlug` with `payload` joins in `tenant`: one per shared id (or job)
    /// and key value.
    public func slot(jobSlug: String, payload: JSONValue, tenant: Tenant) -> ConcurrencySlot {
        var queue = tenant.scoped(id.map { "shared:\($0)" } ?? "job:\(jobSlug)")
        if key != nil { queue += "|" + PayloadKey.value(of: key, in: payload) }
        return ConcurrencySlot(queue: queue, limit: limit)
    }
}

/// The queue of a run whose job has a ``ConcurrencyLimit``, as the dispatcher resolved it when
/// it created the run (carried by `runCreated`).
public struct ConcurrencySlot: Codable, Sendable, Hashable {
    /// The queue's name: tenant, shared id or job, and key value.
    public var queue: String
    /// At most this many of the queue's runs hold a slot at once.
    public var limit: Int

    public init(queue: String, limit: Int) {
        self.queue = queue
        self.limit = limit
    }
}

/// A path to a field of an event payload (`userId`, `account.id`), the key of flow control and
/// concurrency limits.
public enum PayloadKey {
    /// Checks that `key`, when given, is names joined by dots (at most 256 characters).
    /// - Throws: `ValidationError` at `path`.
    public static func validate(_ key: String?, path: String) throws(ValidationError) {
        guard let key else { return }
        guard !key.isEmpty, key.unicodeScalars.count <= 256, !key.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
            throw ValidationError(path: path, message: "'\(key)' is not a payload field path (names joined by dots, e.g. 'account.id')")
        }
    }

    /// The value of `key` in `payload`: the field's JSON (a string as itself), `""` for a
    /// missing field, and `""` for every payload when there is no key.
    public static func value(of key: String?, in payload: JSONValue) -> String {
        guard let key else { return "" }
        var value: JSONValue? = payload
        for name in key.split(separator: ".") {
            guard case .object(let fields)? = value else { return "" }
            value = fields[String(name)]
        }
        switch value {
        case nil, .null?: return ""
        case .string(let text)?: return text
        case let other?: return (try? String(decoding: BatonJSON.encoder.encode(other), as: UTF8.self)) ?? ""
        }
    }
}
