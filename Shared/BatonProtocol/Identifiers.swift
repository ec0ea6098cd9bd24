import Crypto
import Foundation

/// Deterministic identifiers: the same inputs always give the same id, on every process.
public enum Identifiers {
    /// The run id of the run that event `eventId` starts for job `jobSlug`.
    ///
    /// Deterministic so that run creation is idempotent: a dispatcher that sees the same
    /// event twice (crash, rebalance, redelivery) derives the same id and creates nothing new.
    public static func runID(eventID: String, jobSlug: String) -> String {
        "run_" + digest(["run", eventID, jobSlug], length: 24)
    }

    /// The id of the task `key` inside `parentTaskID` (or at the top of the run) of run `runID`.
    public static func taskID(runID: String, parentTaskID: String?, key: String) -> String {
        "task_" + digest(["task", runID, parentTaskID ?? "", key], length: 24)
    }

    /// The id of the event that task `taskID` of run `runID` sends (`io.sendEvent`), so a
    /// replayed send carries the same id and starts no second run.
    public static func eventID(runID: String, taskID: String) -> String {
        "evt_" + digest(["event", runID, taskID], length: 32)
    }

    /// The id of the held copy of event `eventID` that starts job `jobSlug`'s throttled run
    /// later: deterministic, so deciding again holds the same copy.
    public static func throttledEventID(eventID: String, jobSlug: String) -> String {
        "evt_" + digest(["throttle", eventID, jobSlug], length: 32)
    }

    /// The id of the held copy of event `eventID` that starts job `jobSlug`'s debounced run
    /// unless a later event takes its place: deterministic, and recognisable
    /// (``isDebouncedCopy(_:)``) so that the dispatcher checks it when it is delivered.
    public static func debouncedEventID(eventID: String, jobSlug: String) -> String {
        debouncedPrefix + digest(["debounce", eventID, jobSlug], length: 32)
    }

    /// Whether `eventID` is a debounced copy's (``debouncedEventID(eventID:jobSlug:)``).
    public static func isDebouncedCopy(_ eventID: String) -> Bool { eventID.hasPrefix(debouncedPrefix) }

    private static let debouncedPrefix = "evt_debounce_"

    /// A new random event id, for events sent without one.
    /// Which of `count` partitions of the events topic decides who fires job `jobSlug`'s
    /// schedule: the dispatcher instance that consumes that partition (FNV-1a of the slug, so
    /// every instance computes the same).
    public static func schedulePartition(jobSlug: String, count: Int) -> Int32 {
        precondition(count > 0, "a topic has at least one partition")
        var hash: UInt32 = 2_166_136_261
        for byte in jobSlug.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return Int32(hash % UInt32(count))
    }

    public static func newEventID() -> String {
        "evt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }

    /// Hex SHA-256 of the length-prefixed parts, cut to `length` hex digits (96 bits for 24).
    /// Deterministic: for ids and names derived from other values.
    public static func digest(_ parts: [String], length: Int) -> String {
        var hasher = SHA256()
        for part in parts {
            let bytes = Array(part.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(length)
        for byte in hasher.finalize() where hex.count < length {
            hex.append(digits[Int(byte >> 4)])
            if hex.count < length { hex.append(digits[Int(byte & 0x0f)]) }
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
