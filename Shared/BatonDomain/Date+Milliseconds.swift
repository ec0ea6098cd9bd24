import Foundation

extension Date {
    /// Milliseconds since 1970, the time format of every store column and every rule's decision.
    public var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    /// The instant `value` milliseconds after 1970.
    public init(millisecondsSince1970 value: Int64) { self.init(timeIntervalSince1970: Double(value) / 1000) }
}
