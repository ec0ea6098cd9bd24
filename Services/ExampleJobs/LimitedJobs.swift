import Baton
import BatonProtocol
import Foundation

/// The payload of the flow-control examples.
struct Ping: Codable, Sendable {
    var user: String
    var n: Int
}

/// At most 3 runs a minute per user (`rateLimit`): the other events start no run.
func rateLimitedPingJob(outbox: URL) -> Job<Ping, String> {
    Job(id: "rate-limited-ping", name: "Rate-limited ping", version: "1.0.0", trigger: .event(name: "ping.limited", payload: Ping.self),
        options: JobOptions(flowControl: .rateLimit(3, per: .seconds(60), key: "user"))) { ping, io, ctx in
        _ = try await io.runTask("ping") { _ in
            try appendLine("limited ping \(ping.user) \(ping.n) run=\(ctx.runId)", to: outbox)
            return true
        }
        return "pinged \(ping.user) \(ping.n)"
    }
}

/// At most 2 runs every 4 seconds per user (`throttle`): the others wait their turn.
func throttledPingJob(outbox: URL) -> Job<Ping, String> {
    Job(id: "throttled-ping", name: "Throttled ping", version: "1.0.0", trigger: .event(name: "ping.throttled", payload: Ping.self),
        options: JobOptions(flowControl: .throttle(2, per: .seconds(4), key: "user"))) { ping, io, ctx in
        _ = try await io.runTask("ping") { _ in
            try appendLine("throttled ping \(ping.user) \(ping.n) run=\(ctx.runId)", to: outbox)
            return true
        }
        return "pinged \(ping.user) \(ping.n)"
    }
}
