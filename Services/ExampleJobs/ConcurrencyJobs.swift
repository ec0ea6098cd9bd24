import Baton
import BatonProtocol
import Foundation

/// The payload of the concurrency examples: work for `workMs` milliseconds, then optionally
/// wait `pauseSeconds` (giving the slot back) and work again.
struct SlotWork: Codable, Sendable {
    var user: String?
    var n: Int
    var workMs: Int
    var pauseSeconds: Int?
}

/// At most 3 runs execute at once, across every instance of the job service
/// (`concurrencyLimit: 3`). The others wait `QUEUED`.
func limitedWorkJob() -> Job<SlotWork, Int> {
    slotJob(id: "limited-work", name: "Limited work", event: "work.limited", limit: 3)
}

/// One sync at a time per user, shared with `per-user-export`: a user's sync and export never
/// run at once, while other users' go on (`.shared("user-data", limit: 1, key: "user")`).
func perUserSyncJob() -> Job<SlotWork, Int> {
    slotJob(id: "per-user-sync", name: "Per-user sync", event: "user.sync", limit: .shared("user-data", limit: 1, key: "user"))
}

/// See ``perUserSyncJob()``: the same shared limit, from another job.
func perUserExportJob() -> Job<SlotWork, Int> {
    slotJob(id: "per-user-export", name: "Per-user export", event: "user.export", limit: .shared("user-data", limit: 1, key: "user"))
}

/// A job whose task `work` takes `workMs`; with `pauseSeconds`, it then waits (its slot is free
/// meanwhile) and does task `after`.
private func slotJob(id: String, name: String, event: String, limit: ConcurrencyLimit) -> Job<SlotWork, Int> {
    Job(id: id, name: name, version: "1.0.0", trigger: .event(name: event, payload: SlotWork.self),
        options: JobOptions(concurrencyLimit: limit)) { work, io, _ in
        _ = try await io.runTask("work") { _ in
            try await Task.sleep(for: .milliseconds(work.workMs))
            return work.n
        }
        if let pause = work.pauseSeconds {
            try await io.wait("pause", seconds: Double(pause))
            _ = try await io.runTask("after") { _ in
                try await Task.sleep(for: .milliseconds(work.workMs))
                return work.n
            }
        }
        return work.n
    }
}
