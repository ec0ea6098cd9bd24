import Baton
import BatonProtocol
import Foundation

/// The payload of `user.created`.
struct NewUser: Codable, Sendable {
    var id: String
    var email: String
    var name: String
}

/// A user profile, as the "look up user" task finds it.
struct Profile: Codable, Sendable {
    var id: String
    var email: String
    var displayName: String
    var plan: String
}

/// What the run returns.
struct WelcomeResult: Codable, Sendable {
    var userId: String
    var emailedTo: String
    var message: String
}

/// The seeds' new-user flow: look the user up, wait a little, send the welcome e-mail.
///
/// Side effects go to `outbox` (one line per effect), so tests can count them from outside the
/// process: `lookup <id>` and `welcome <email>`.
func newUserJob(outbox: URL, waitSeconds: Double) -> Job<NewUser, WelcomeResult> {
    Job(id: "new-user-welcome", name: "Welcome a new user", version: "1.0.0",
        trigger: .event(name: "user.created", payload: NewUser.self)) { user, io, ctx in
        await io.logger.info("Welcoming \(user.name)", ["slice": .int(Int64(ctx.attempt)), "project": .string(ctx.project)])
        let profile = try await io.runTask("look up user") { _ in
            try appendLine("lookup \(user.id) run=\(ctx.runId)", to: outbox)
            return Profile(id: user.id, email: user.email, displayName: user.name, plan: "free")
        }
        try await io.wait("give them a moment", seconds: waitSeconds)
        let message = "Welcome aboard, \(profile.displayName)!"
        _ = try await io.runTask("send welcome e-mail") { _ in
            try appendLine("welcome \(profile.email) run=\(ctx.runId)", to: outbox)
            return message
        }
        await io.logger.info("Welcome e-mail sent", ["slice": .int(Int64(ctx.attempt))])
        return WelcomeResult(userId: profile.id, emailedTo: profile.email, message: message)
    }
}

/// Appends one line to `file` (created when needed) with a single `O_APPEND` write, so lines
/// from parallel tasks and processes never overwrite each other, and syncs it to disk.
func appendLine(_ line: String, to file: URL) throws {
    try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
    let descriptor = open(file.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(descriptor) }
    let bytes = Array((line + "\n").utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    // No fsync: what the tests count survives a SIGKILL of the job process in the page cache,
    // and an fsync per task would make the load benchmarks measure the disk.
    guard written == bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
}
