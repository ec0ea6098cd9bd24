import BatonProtocol
import Foundation

/// What an event gets from a job's flow control (see ``FlowControlRules``).
public enum FlowDecision: Sendable, Hashable {
    /// Its run starts now.
    case start
    /// Over a rate limit: no run.
    case drop
    /// Throttled or debounced: its run starts at this time (a debounced one only if no later
    /// event of its key came meanwhile, see ``FlowControlRules/isLatestDebounced(deliverAt:starts:control:)``).
    case delay(until: Date)
}

/// The rules of flow control (``FlowControl``), as a pure function of the start times a store
/// keeps per job and key: in any window of `periodSeconds` at most `limit` runs start.
public enum FlowControlRules {
    /// The decision for an event arriving at `now`, given the key's recorded `starts` (runs
    /// started, or reserved by throttling, in any order), and the starts to keep afterwards
    /// (those still inside a window from `now` on).
    public static func decide(_ control: FlowControl, starts: [Date], now: Date) -> (decision: FlowDecision, starts: [Date]) {
        let period = TimeInterval(control.periodSeconds)
        if control.kind == .debounce {
            // Every event is held for a period; the key keeps only the latest copy's delivery
            // time, in whole milliseconds and at least 2 ms after the one before (also when the
            // period changed), so that each time names exactly one copy, with a millisecond to
            // spare for rounding.
            let due = Date(millisecondsSince1970: now.addingTimeInterval(period).millisecondsSince1970)
            let latest = max(due, (starts.max() ?? .distantPast).addingTimeInterval(0.002))
            return (.delay(until: latest), [latest])
        }
        // Starts that still count in a window ending now or later (throttling reserves future ones).
        var recent = starts.filter { $0 > now.addingTimeInterval(-period) }.sorted()
        guard recent.count >= control.limit else {
            recent.append(now)
            return (.start, recent.sorted())
        }
        switch control.kind {
        case .rateLimit:
            return (.drop, recent)
        case .throttle, .debounce:
            // The earliest time with fewer than `limit` starts in the window before it: one
            // period after the limit-th latest start (reserved ones included).
            let slot = max(now, recent[recent.count - control.limit].addingTimeInterval(period))
            recent.append(slot)
            return (.delay(until: slot), recent.sorted())
        }
    }
}

extension FlowControlRules {
    /// Whether the debounced copy due at `deliverAt` is the key's last event (its run starts),
    /// given the key's recorded `starts` (the latest copy's delivery time); `false`: a later
    /// event took its place.
    public static func isLatestDebounced(deliverAt: Date, starts: [Date], control: FlowControl) -> Bool {
        guard let latest = starts.max() else { return true }
        return deliverAt.millisecondsSince1970 >= latest.millisecondsSince1970 - 1
    }
}

extension FlowDecision {
    /// The name a store keeps: `start`, `drop` or `delay`.
    public var storedName: String {
        switch self {
        case .start: "start"
        case .drop: "drop"
        case .delay: "delay"
        }
    }

    /// When a delayed run starts.
    public var deliverAt: Date? {
        if case .delay(let until) = self { return until }
        return nil
    }

    /// A decision as a store kept it (``storedName``, and the delay's time in milliseconds).
    public init(stored name: String, deliverAt: Int64?) {
        switch (name, deliverAt) {
        case ("delay", let at?): self = .delay(until: Date(millisecondsSince1970: at))
        case ("drop", _): self = .drop
        default: self = .start
        }
    }

    /// Start times as a store keeps them: a JSON array of milliseconds since 1970.
    public static func encode(_ starts: [Date]) -> String {
        "[" + starts.map { String($0.millisecondsSince1970) }.joined(separator: ",") + "]"
    }

    /// Start times from ``encode(_:)`` (`nil` or unreadable: none).
    public static func starts(from text: String?) -> [Date] {
        guard let text else { return [] }
        return text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",")
            .compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.map(Date.init(millisecondsSince1970:))
    }
}
