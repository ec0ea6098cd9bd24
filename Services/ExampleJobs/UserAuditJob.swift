import Baton
import BatonProtocol
import Foundation

/// The fields of `user.created` the audit needs.
struct AuditedUser: Codable, Sendable {
    var id: String
    var email: String
}

/// A second job on `user.created`, for fan-out: it runs only for e-mail addresses at
/// example.com (a payload filter) and appends `audit <user> <run>` to `outbox`.
func userAuditJob(outbox: URL) -> Job<AuditedUser, String> {
    Job(id: "user-audit", name: "Audit new users", version: "1.0.0",
        trigger: .event(name: "user.created", filter: ["email": [["$endsWith": "@example.com"]]], payload: AuditedUser.self)) { user, io, ctx in
        try await io.runTask("record audit entry") { _ in
            try appendLine("audit \(user.id) \(ctx.runId)", to: outbox)
            return "audited \(user.id)"
        }
    }
}
