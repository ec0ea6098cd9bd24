/// How often a failing task is tried, and how long to wait between attempts.
///
/// Defaults are Trigger.dev v2's: 5 attempts, back-off factor 1.8, from 1 s up to 60 s, randomized.
/// The wait after attempt `n` is `min(maxTimeoutInMs, minTimeoutInMs × factor^(n-1))`, times a
/// random factor in 1...2 when `randomize` is set. Back-offs are durable: the slice ends and the
/// run resumes when the wait is over.
public struct RetryPolicy: Codable, Sendable, Hashable {
    /// Total attempts, the first included (1: never retry).
    public var limit: Int
    public var factor: Double
    public var minTimeoutInMs: Int
    public var maxTimeoutInMs: Int
    public var randomize: Bool

    public init(limit: Int = 5, factor: Double = 1.8, minTimeoutInMs: Int = 1000, maxTimeoutInMs: Int = 60_000, randomize: Bool = true) {
        self.limit = limit
        self.factor = factor
        self.minTimeoutInMs = minTimeoutInMs
        self.maxTimeoutInMs = maxTimeoutInMs
        self.randomize = randomize
    }

    /// Checks the numbers.
    /// - Throws: `ValidationError` naming the offending option.
    public func validate() throws(ValidationError) {
        guard limit >= 1 else { throw ValidationError(path: "retry.limit", message: "must be at least 1 (attempts, the first included), got \(limit)") }
        guard factor >= 1, factor.isFinite else { throw ValidationError(path: "retry.factor", message: "must be a finite number ≥ 1, got \(factor)") }
        guard minTimeoutInMs >= 0 else { throw ValidationError(path: "retry.minTimeoutInMs", message: "must not be negative, got \(minTimeoutInMs)") }
        guard maxTimeoutInMs >= minTimeoutInMs else {
            throw ValidationError(path: "retry.maxTimeoutInMs", message: "must be ≥ minTimeoutInMs (\(minTimeoutInMs)), got \(maxTimeoutInMs)")
        }
    }

    /// The wait in milliseconds after failed attempt `attempt` (1-based), or `nil` when that was the last.
    public func delayMilliseconds(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Int? {
        guard attempt < limit else { return nil }
        var delay = Double(minTimeoutInMs) * pow(factor, Double(attempt - 1))
        delay = min(delay, Double(maxTimeoutInMs))
        if randomize { delay *= Double.random(in: 1...2, using: &generator) }
        return Int(delay.rounded())
    }

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 && result < 1e12 {
            result *= base
            remaining -= 1
        }
        return result
    }
}
