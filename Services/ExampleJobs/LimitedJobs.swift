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
    pingJob(id: "rate-limited-ping", name: "Rate-limited ping", event: "ping.limited", line: "limited",
            flowControl: .rateLimit(3, per: .seconds(60), key: "user"), outbox: outbox)
}

/// At most 2 runs every 4 seconds per user (`throttle`): the others wait their turn.
func throttledPingJob(outbox: URL) -> Job<Ping, String> {
    pingJob(id: "throttled-ping", name: "Throttled ping", event: "ping.throttled", line: "throttled",
            flowControl: .throttle(2, per: .seconds(4), key: "user"), outbox: outbox)
}

/// Only the last ping of a burst per user runs, 10 seconds after it (`debounce`).
func debouncedPingJob(outbox: URL) -> Job<Ping, String> {
    pingJob(id: "debounced-ping", name: "Debounced ping", event: "ping.debounced", line: "debounced",
            flowControl: .debounce(.seconds(10), key: "user"), outbox: outbox)
}

/// A job that notes each ping in the outbox (`<line> ping <user> <n> run=<id>`), under `flowControl`.
private func pingJob(id: String, name: String, event: String, line: String, flowControl: FlowControl, outbox: URL) -> Job<Ping, String> {
    Job(id: id, name: name, version: "1.0.0", trigger: .event(name: event, payload: Ping.self),
        options: JobOptions(flowControl: flowControl)) { ping, io, ctx in
        _ = try await io.runTask("ping") { _ in
            try appendLine("\(line) ping \(ping.user) \(ping.n) run=\(ctx.runId)", to: outbox)
            return true
        }
        return "pinged \(ping.user) \(ping.n)"
    }
}
