import BatonProtocol
import Foundation

extension IO {
    /// A random number drawn once: it is a task keyed by `key`, so every replay of the run gets
    /// the same number. Without `round`, uniform in `min..<max`; with `round`, a whole number
    /// from `min` to `max`, both included, each equally likely.
    /// - Throws: `JobDefinitionError` when `min` is not below `max` (with `round`: no whole
    ///   number between them), or the range is not finite.
    public func random(_ key: String, min: Double = 0, max: Double = 1, round: Bool = false) async throws -> Double {
        guard min < max, (max - min).isFinite else {
            throw JobDefinitionError(message: "io.random '\(key)': min (\(min)) must be below max (\(max)), both finite")
        }
        let low = min.rounded(.up)
        let high = max.rounded(.down)
        if round {
            guard low <= high, low >= -9.0e15, high <= 9.0e15 else {
                throw JobDefinitionError(message: "io.random '\(key)': no whole number from \(min) to \(max) (within ±9e15)")
            }
        }
        let properties: JSONValue = .object(["min": .double(min), "max": .double(max), "round": .bool(round)])
        return try await runTask(key, options: TaskOptions(name: "random", properties: properties)) { _ in
            round ? Double(Int64.random(in: Int64(low)...Int64(high))) : Double.random(in: min..<max)
        }
    }

    /// Ends this slice on purpose; the run goes on at once in a new one (on whichever job-service
    /// instance then holds its partition). Keyed: a replay passes it. Use it between batches of
    /// work in a long loop, so other runs of the partition get their turn.
    /// - Throws: `BatonInterrupt` to end the slice (let it propagate).
    public func yield(_ key: String) async throws {
        let taskId = Identifiers.taskID(runID: slice.runId, parentTaskID: parentTaskId, key: key)
        if slice.output(of: taskId) != nil { return }
        try slice.checkNotFenced(before: "yield '\(key)'")
        // Recorded first, so the new slice passes it; then the run is handed back to be resumed.
        try await slice.publish(.taskCompleted(.init(taskId: taskId, key: key, parentTaskId: parentTaskId, output: .null)))
        slice.complete(taskId, output: .null)
        if slice.claimYield() {
            try await slice.publish(.yielded(.init(yieldId: UUID().uuidString.lowercased())))
        }
        throw slice.interrupt("yield '\(key)'")
    }

    /// Reports how the run is going: the run record shows the status set last as its
    /// `latestStatus` (the runs API, `baton runs show`, the dashboard). A task keyed by `key`:
    /// a replay does not set it again, and a later status (another key) replaces it.
    ///
    /// ```swift
    /// try await io.createStatus("progress-1", label: "Imported 100 of 300 users", state: .loading,
    ///                           data: ["done": 100, "total": 300])
    /// ```
    @discardableResult
    public func createStatus(_ key: String, label: String, state: RunStatusUpdate.State? = nil, data: JSONValue? = nil) async throws -> RunStatusUpdate {
        guard !label.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw JobDefinitionError(message: "io.createStatus '\(key)': the label is empty")
        }
        let status = RunStatusUpdate(key: key, label: label, state: state, data: data)
        return try await runTask(key, options: TaskOptions(name: label, properties: RunStatusUpdate.taskProperties)) { _ in status }
    }
}
