import Baton
import BatonProtocol
import Foundation

/// The payload of `github.star`.
struct StarEvent: Codable, Sendable {
    var starredBy: String
    var repoName: String
    /// Seconds of each `Wait i` (the seeds wait 30; tests wait less).
    var waitSeconds: Double
}

/// The seeds' keys guide, as written: "⭐️ New Star" twice runs once; in the loop, `Wait i` and
/// `⭐️ New Star i` use the index in their keys. The posts are subtasks of a "post" parent, so
/// the same key under two parents is two tasks. Each message "posted" appends
/// `slack <run> <channel> <text>` to `outbox`.
func gitHubStarsJob(outbox: URL) -> Job<StarEvent, Int> {
    Job(id: "github-stars", name: "GitHub stars to Slack", version: "1.0.0",
        trigger: .event(name: "github.star", payload: StarEvent.self)) { star, io, ctx in
        @Sendable func postMessage(_ io: IO, _ key: String, channel: String, text: String) async throws -> String {
            try await io.runTask(key, options: TaskOptions(name: "slack.postMessage", properties: ["channel": .string(channel)])) { _ in
                try appendLine("slack \(ctx.runId) \(channel) \(text)", to: outbox)
                return "\(channel): \(text)"
            }
        }
        _ = try await postMessage(io, "⭐️ New Star", channel: "github-stars", text: "@\(star.starredBy) just starred \(star.repoName)!")
        // Same key again: the same task, executed once.
        _ = try await postMessage(io, "⭐️ New Star", channel: "github-stars", text: "@\(star.starredBy) just starred \(star.repoName)!")
        for index in 0..<10 {
            try await io.wait("Wait \(index)", seconds: star.waitSeconds)
            _ = try await postMessage(io, "⭐️ New Star \(index)", channel: "github-stars", text: "star \(index)")
        }
        // Subtasks: "⭐️ New Star" under two parents is two more tasks.
        for parent in ["digest", "archive"] {
            _ = try await io.runTask(parent) { sub in
                try await postMessage(sub, "⭐️ New Star", channel: parent, text: "@\(star.starredBy)")
            }
        }
        return 13
    }
}
