import Baton
import BatonProtocol
import Foundation

/// A job on an interval trigger; each run appends `tick <scheduled ms> <run>` to `outbox`.
/// Registered only when `example.tick.seconds` is set, for tests of schedules.
func tickerJob(outbox: URL, seconds: Int) -> Job<ScheduledPayload, Int64> {
    Job(id: "ticker", name: "Ticker", version: "1.0.0", trigger: .intervalTrigger(seconds: seconds)) { tick, io, ctx in
        let milliseconds = Int64((tick.ts.timeIntervalSince1970 * 1000).rounded())
        return try await io.runTask("tick") { _ in
            try appendLine("tick \(milliseconds) \(ctx.runId)", to: outbox)
            return milliseconds
        }
    }
}
