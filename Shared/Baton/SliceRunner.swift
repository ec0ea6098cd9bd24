import BatonProtocol

/// Runs one execution slice of a job and decides its outcome; shared by `JobWorker` and
/// `JobHarness`.
enum SliceRunner {
    /// Runs the job's code for one slice.
    /// - Returns: the run's final event (completed, failed), or `nil` when the slice yielded
    ///   (a wait, a retry back-off, a background fetch, the time budget).
    /// - Throws: `CheckpointNotDurable` when a run event could not be recorded.
    static func run(_ job: any AnyJob, payload: JSONValue, slice: SliceState, context: JobContext) async throws -> RunEvent.Body? {
        let io = IO(slice: slice, parentTaskId: nil, depth: 0)
        do {
            let output = try await job.execute(payload: payload, io: io, context: context)
            if let interrupt = slice.raisedInterrupt {
                return .runFailed(.init(error: "the job's code caught Baton's interrupt (\(interrupt.reason)) and carried on; rethrow errors for which isBatonInterrupt(error) is true, or use io.try"))
            }
            return .runCompleted(.init(output: output))
        } catch is BatonInterrupt {
            return nil  // the slice yields; the task-result service resumes the run
        } catch let invalid as InvalidPayload {
            return .runFailed(.init(status: .invalidPayload, error: invalid.description))
        } catch let notDurable as CheckpointNotDurable {
            throw notDurable
        } catch is CancellationError where slice.raisedInterrupt != nil {
            return nil  // parallel branches cancelled because one of them ended the slice
        } catch let cancelled as SliceCancelled {
            throw cancelled
        } catch where Task.isCancelled && slice.raisedInterrupt == nil {
            throw SliceCancelled(task: nil)  // the worker is stopping: no outcome is recorded
        } catch {
            if let interrupt = slice.raisedInterrupt {
                return .runFailed(.init(error: "the job's code caught Baton's interrupt (\(interrupt.reason)) and threw \(error) instead; rethrow errors for which isBatonInterrupt(error) is true"))
            }
            return .runFailed(.init(error: "\(error)"))
        }
    }
}

/// The worker stopped (cancelled at its shutdown deadline) in the middle of a slice. Nothing of
/// the unfinished work is recorded and the run command is not committed: it is delivered again,
/// and the next slice replays what was acknowledged.
struct SliceCancelled: Error, CustomStringConvertible {
    var task: String?
    var description: String {
        "the job worker stopped during the slice" + (task.map { " (in task '\($0)')" } ?? "") + "; the run resumes after the restart"
    }
}
