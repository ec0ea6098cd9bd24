import Baton
import BatonProtocol
import Foundation

/// A schedule in a time zone (`cronTrigger(_:timeZone:)`): 09:00 on 1 January in Berlin, which
/// is 08:00 UTC (winter time); the dispatcher works out the UTC instant, daylight saving
/// included. Once a year, so it never fires during the test suite's runs of this service. Each
/// run appends `new year <scheduled time> <run>` to `outbox`.
func newYearJob(outbox: URL) -> Job<ScheduledPayload, String> {
    Job(id: "new-year-greeting", name: "New year greeting", version: "1.0.0",
        trigger: .cronTrigger("0 9 1 1 *", timeZone: "Europe/Berlin")) { tick, io, ctx in
        try await io.runTask("greet") { _ in
            let line = "new year \(tick.ts.formatted(.iso8601)) \(ctx.runId)"
            try appendLine(line, to: outbox)
            return line
        }
    }
}
