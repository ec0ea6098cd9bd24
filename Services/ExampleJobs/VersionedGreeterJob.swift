import Baton
import BatonProtocol
import Foundation

/// The payload of `versioned-greeter` (event `greet.requested`).
struct Greeting: Codable, Sendable {
    var name: String
    /// Seconds between hello and goodbye (a run that spans a deployment).
    var pauseSeconds: Double?
}

/// A job whose version is set by configuration (`example.greeter.version`), to show version
/// pinning: each line it writes names the version of the worker that ran it, and every run
/// runs only on workers of the version it was created with.
func versionedGreeterJob(outbox: URL, version: String) -> Job<Greeting, String> {
    Job(id: "versioned-greeter", name: "Versioned greeter", version: version,
        trigger: .event(name: "greet.requested", payload: Greeting.self)) { greeting, io, ctx in
        _ = try await io.runTask("hello") { _ in
            try appendLine("greet hello \(greeting.name) v\(version) run=\(ctx.runId) created=v\(ctx.jobVersion)", to: outbox)
            return true
        }
        try await io.wait("pause", seconds: greeting.pauseSeconds ?? 1)
        _ = try await io.runTask("goodbye") { _ in
            try appendLine("greet goodbye \(greeting.name) v\(version) run=\(ctx.runId) created=v\(ctx.jobVersion)", to: outbox)
            return true
        }
        return "greeted \(greeting.name) by v\(version)"
    }
}
