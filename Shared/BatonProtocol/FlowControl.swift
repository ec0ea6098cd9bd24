import Foundation

/// How a job's trigger limits the runs events start (registered with the job): at most `limit`
/// runs per `periodSeconds` for each value of `key` in the payload. Invocations and schedules
/// are not limited.
public struct FlowControl: Codable, Sendable, Hashable {
    /// What happens to an event over the limit.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// It starts no run; the decision is recorded (`baton_runs_rate_limited_total`).
        case rateLimit
        /// Its run is held and starts at the first time the limit allows (never dropped).
        case throttle
        /// Its run is held for the period; a later event of the same key in that time takes
        /// its place (and is held for a period in turn), so only the last event of a burst
        /// starts a run. `limit` is 1.
        case debounce
    }

    /// The largest `limit` (the store keeps the start times of the last `limit` runs per key).
    public static let maximumLimit = 1000
    /// The longest period: 7 days.
    public static let maximumPeriodSeconds = 7 * 86_400

    public var kind: Kind
    /// Runs per period and key: 1 to ``maximumLimit``.
    public var limit: Int
    /// The window, in seconds: 1 to ``maximumPeriodSeconds``. In any window of this length at
    /// most `limit` runs of one key start.
    public var periodSeconds: Int
    /// A payload field path (`userId`, `account.id`): one limit per value. `nil`: one limit for
    /// all events.
    public var key: String?

    public init(kind: Kind, limit: Int, periodSeconds: Int, key: String? = nil) {
        self.kind = kind
        self.limit = limit
        self.periodSeconds = periodSeconds
        self.key = key
    }

    /// At most `limit` runs per `period` for each value of `key`; the other events start none.
    public static func rateLimit(_ limit: Int, per period: Duration, key: String? = nil) -> FlowControl {
        FlowControl(kind: .rateLimit, limit: limit, periodSeconds: Int(period / .seconds(1)), key: key)
    }

    /// At most `limit` runs per `period` for each value of `key`; the other runs wait their turn.
    public static func throttle(_ limit: Int, per period: Duration, key: String? = nil) -> FlowControl {
        FlowControl(kind: .throttle, limit: limit, periodSeconds: Int(period / .seconds(1)), key: key)
    }

    /// Only the last event of each value of `key` starts a run, once `period` passed without
    /// another (trailing debounce): a burst of events becomes one run with the last payload.
    public static func debounce(_ period: Duration, key: String? = nil) -> FlowControl {
        FlowControl(kind: .debounce, limit: 1, periodSeconds: Int(period / .seconds(1)), key: key)
    }

    /// Checks the fields.
    /// - Throws: `ValidationError` naming the offending field.
    public func validate(path: String = "$.flowControl") throws(ValidationError) {
        guard (1...Self.maximumLimit).contains(limit) else {
            throw ValidationError(path: "\(path).limit", message: "the limit must be 1 to \(Self.maximumLimit), got \(limit)")
        }
        guard (1...Self.maximumPeriodSeconds).contains(periodSeconds) else {
            throw ValidationError(path: "\(path).periodSeconds", message: "the period must be 1 s to 7 days, got \(periodSeconds) s")
        }
        try PayloadKey.validate(key, path: "\(path).key")
    }

    /// The value of `key` in `payload` that the limit is counted for: the field's JSON (a string
    /// as itself), `""` for a missing field, and `""` for every event when there is no key.
    public func keyValue(in payload: JSONValue) -> String { PayloadKey.value(of: key, in: payload) }

}
