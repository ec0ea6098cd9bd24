import Baton
import BatonProtocol
import Foundation

/// The payload of `welcome.once`.
struct WelcomeOnceRequest: Codable, Sendable {
    var userId: String
    /// Make this attempt fail (to test what happens after a failure under the key).
    var fail: Bool?
    /// Return an earlier failure under the key instead of executing again.
    var skipFailure: Bool?
}

/// Sends a welcome e-mail once per user in the whole project (the seeds' deduplication-key
/// example). Each execution appends `once <user> <run>` to `outbox`.
func welcomeOnceJob(outbox: URL) -> Job<WelcomeOnceRequest, String> {
    Job(id: "welcome-once", name: "Welcome e-mail, once per user", version: "1.0.0",
        trigger: .event(name: "welcome.once", payload: WelcomeOnceRequest.self)) { request, io, ctx in
        let options = TaskOptions(deduplicationKey: "welcome-email-\(request.userId)", deduplicationScope: .project)
        let send: @Sendable (IO) async throws -> String = { _ in
            try await Task.sleep(for: .milliseconds(300))  // a slow mail API: racing runs overlap
            try appendLine("once \(request.userId) \(ctx.runId)", to: outbox)
            if request.fail == true { throw TaskFailure.doNotRetry("mail API refused the message") }
            return "sent by \(ctx.runId)"
        }
        if request.skipFailure == true {
            return try await io.runTaskSkippingFailure("welcome-email", options: options, send) ?? "skipped: sending failed before"
        }
        return try await io.runTask("welcome-email", options: options, send)
    }
}
