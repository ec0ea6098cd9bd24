import BatonProtocol
import Foundation

/// One change to a store's runs, tasks, logs, timers, fetches or deduplication keys, as decided
/// by ``RunRules``. A store executes the writes it is given, in order, in one transaction;
/// every write is idempotent, so executing the same list twice changes nothing the second time.
public enum RunWrite: Sendable, Hashable {
    /// Creates the run, queued, unless it exists.
    case createRun(RunEvent.RunCreated, traceParent: String?, at: Date)
    /// Adds the task unless it exists: the first event about a task fixes its key, parent and start.
    case addTask(taskId: String, key: String, parentTaskId: String?, name: String?, status: TaskStatus, at: Date)
    /// An attempt of a task that has not completed started: it runs, with at least `attempt`
    /// attempts, and takes `name` and `properties` when given.
    case startAttempt(taskId: String, attempt: Int, name: String?, properties: JSONValue?)
    /// The task completed with `output`, unless it already had (its first output stays).
    case completeTask(taskId: String, output: JSONValue, attempts: Attempts, at: Date)
    /// An attempt of a task that has not completed failed with `error`.
    case failAttempt(taskId: String, error: String, attempt: Int)
    /// The wait task is due at `until` (the first request fixes it; a replay keeps it).
    case setWaitUntil(taskId: String, until: Date)
    /// A timer of the run, unless one with this id exists (waits, retry back-offs, yields).
    case scheduleTimer(taskId: String, dueAt: Date)
    /// A background fetch of the run, due at `at`, unless one with this id exists.
    case scheduleFetch(taskId: String, request: BackgroundFetchRequest, at: Date)
    /// A log line, unless one with this id exists.
    case addLog(taskId: String, level: String, message: String, properties: JSONValue?, at: Date)
    /// The run's status becomes `status` (the rules only ask while the run has not ended).
    case setStatus(RunStatus, at: Date)
    /// The run ends with `status`, its output or error.
    case finish(RunStatus, output: JSONValue?, error: String?, at: Date)
    /// The deduplication key's task completed (see ``DeduplicationRules/completed(_:output:now:)``).
    case deduplicationCompleted(scopedKey: String, output: JSONValue, at: Date)
    /// The deduplication key's task failed for good (see ``DeduplicationRules/failed(_:runId:taskId:error:now:)``).
    case deduplicationFailed(scopedKey: String, taskId: String, error: String, at: Date)
    /// The run's pending timers are dropped, except its parent notice
    /// (``RunRules/parentNoticeTimerID``), which must still tell the parent how the run ended.
    case dropTimers
    /// The task's properties become `properties` (shown with it), unless it has some.
    case setTaskProperties(taskId: String, properties: JSONValue)
    /// The run's timer `taskId`, if it exists and has not fired, becomes due at `at`.
    case makeTimerDue(taskId: String, at: Date)
    /// The run's timer `taskId` will not fire (unless it did).
    case dropTimer(taskId: String)
    /// A wait for a request to a callback URL (`io.waitForRequest`), by its token's hash, unless
    /// one with this hash exists.
    case registerRequestWait(taskId: String, tokenHash: String, timeoutAt: Date)
    /// The run joins the end of its concurrency queue to wait for a slot, unless it is in the
    /// queue already (waiting or holding one); see ``ConcurrencyRules``.
    case queueForSlot(ConcurrencySlot)
    /// A slot the run holds is free again (it waits). Its place in the queue, if it is waiting
    /// for a slot, stays. Nothing for a run that is not in a queue.
    case releaseSlot
    /// The run leaves its concurrency queue, holding a slot or waiting for one (it ended).
    case leaveQueue

    /// How a completion counts attempts.
    public enum Attempts: Sendable, Hashable {
        /// At least this many (a completion after failures keeps their count).
        case atLeast(Int)
        /// Exactly this many (a background fetch reports its own).
        case exactly(Int)
    }
}

/// What the store knows of a run when a rule is asked about it.
public struct RunState: Sendable, Hashable {
    public var status: RunStatus
    /// When the run last made progress (its `updated_at`).
    public var lastProgress: Date

    public init(status: RunStatus, lastProgress: Date) {
        self.status = status
        self.lastProgress = lastProgress
    }
}

/// The rules of runs and tasks, as pure functions of a run's state and what happened: each
/// returns the writes a store performs (``RunWrite``). No rule reads or writes anything itself.
///
/// A run is created `QUEUED`, becomes `EXECUTING` as its tasks run, `WAITING` on a wait, a
/// retry back-off or a fetch, `QUEUED` again when those end, and finally one of the terminal
/// statuses (``RunStatus/terminal``), which no later event changes. Task events of an ended run
/// are still recorded (a slice that was running when the run was canceled reports what it did).
public enum RunRules {
    /// The writes that applying `event` asks for, given the run's current status (`nil`: the
    /// store does not know the run). `nil` when the event is about an unknown run and is ignored.
    public static func apply(_ event: RunEvent, status: RunStatus?, traceParent: String? = nil) -> [RunWrite]? {
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: event.occurredAt.millisecondsSince1970)
        if case .runCreated(let created) = event.body {
            // A child run's notice to its parent waits, dormant, until the run ends.
            return [.createRun(created, traceParent: traceParent, at: now)]
                + (created.event.parent == nil ? [] : [.scheduleTimer(taskId: parentNoticeTimerID, dueAt: dormant)])
                // Only a run that is new (or not started yet): a repeated record of a run that
                // waits or ended must not put it in the queue again.
                + (status == nil || status == .queued ? created.concurrency.map { [.queueForSlot($0)] } ?? [] : [])
        }
        guard let status else { return nil }
        let ended = status.isTerminal
        // A run that waits gives its concurrency slot back (it queues again when the wait ends).
        func becoming(_ newStatus: RunStatus) -> [RunWrite] {
            ended ? [] : (newStatus == .waiting ? [.releaseSlot] : []) + [.setStatus(newStatus, at: now)]
        }
        switch event.body {
        case .runCreated:
            return []
        case .taskStarted(let started):
            return [.addTask(taskId: started.taskId, key: started.key, parentTaskId: started.parentTaskId, name: started.name, status: .running, at: now),
                    .startAttempt(taskId: started.taskId, attempt: started.attempt, name: started.name, properties: started.properties)]
                + becoming(.executing)
        case .taskCompleted(let completed):
            var writes: [RunWrite] = [
                .addTask(taskId: completed.taskId, key: completed.key, parentTaskId: completed.parentTaskId, name: nil, status: .running, at: now),
                .completeTask(taskId: completed.taskId, output: completed.output, attempts: .atLeast(1), at: now)]
            if let key = completed.deduplicationKey {
                writes.append(.deduplicationCompleted(scopedKey: key, output: completed.output, at: now))
            }
            return writes + becoming(.executing)
        case .taskFailed(let failed):
            var writes: [RunWrite] = [
                .addTask(taskId: failed.taskId, key: failed.key, parentTaskId: failed.parentTaskId, name: nil, status: .running, at: now),
                .failAttempt(taskId: failed.taskId, error: failed.error, attempt: failed.attempt)]
            guard let retryAt = failed.retryAt else {
                if let key = failed.deduplicationKey {
                    writes.append(.deduplicationFailed(scopedKey: key, taskId: failed.taskId, error: failed.error, at: now))
                }
                return writes
            }
            // One timer per attempt: a replayed failure of the same attempt schedules nothing new.
            return writes + [.scheduleTimer(taskId: retryTimerID(taskId: failed.taskId, attempt: failed.attempt), dueAt: retryAt)]
                + becoming(.waiting)
        case .waitRequested(let wait):
            return [.addTask(taskId: wait.taskId, key: wait.key, parentTaskId: wait.parentTaskId, name: "wait", status: .waiting, at: now),
                    .setWaitUntil(taskId: wait.taskId, until: wait.until),
                    .scheduleTimer(taskId: wait.taskId, dueAt: wait.until)]
                + becoming(.waiting)
        case .logged(let line):
            return [.addLog(taskId: line.taskId, level: line.level, message: line.message, properties: line.properties, at: now)]
        case .yielded(let yielded):
            return [.scheduleTimer(taskId: "yield#\(yielded.yieldId)", dueAt: now)] + becoming(.queued)
        case .fetchRequested(let fetch):
            return [.addTask(taskId: fetch.taskId, key: fetch.key, parentTaskId: fetch.parentTaskId, name: fetch.request.displayName,
                             status: .waiting, at: now),
                    .scheduleFetch(taskId: fetch.taskId, request: fetch.request, at: now)]
                + becoming(.waiting)
        case .runCompleted(let completed):
            return ended ? [] : finishing(.completed, output: completed.output, error: nil, at: now)
        case .runFailed(let failed):
            return ended ? [] : finishing(failed.status, output: nil, error: failed.error, at: now)
        case .childInvoked(let child):
            return [.addTask(taskId: child.taskId, key: child.key, parentTaskId: child.parentTaskId, name: "invoke \(child.jobId)",
                             status: .waiting, at: now),
                    .setTaskProperties(taskId: child.taskId, properties: ChildRunOutcome.taskProperties(runId: child.childRunId, jobId: child.jobId))]
                + becoming(.waiting)
        case .childRunFinished(let finished):
            return childRunFinished(finished, at: now)
        case .eventWaitRequested(let wait):
            // The timeout's timer, when it fires, sends `eventWaitTimedOut` to this partition:
            // the match and the timeout are decided here, in order, and the first one stays.
            return [.addTask(taskId: wait.taskId, key: wait.key, parentTaskId: wait.parentTaskId, name: "wait for \(wait.name)", status: .waiting, at: now),
                    .setWaitUntil(taskId: wait.taskId, until: wait.timeoutAt),
                    .scheduleTimer(taskId: eventWaitTimeoutTimerID(taskId: wait.taskId), dueAt: wait.timeoutAt)]
                + becoming(.waiting)
        case .eventWaitMatched(let matched):
            return eventWaitEnded(taskId: matched.taskId, output: (try? JSONValue(encoding: matched.event)) ?? .null, at: now)
        case .eventWaitTimedOut(let timedOut):
            return eventWaitEnded(taskId: timedOut.taskId, output: .null, at: now)
        case .requestWaitRequested(let wait):
            return [.addTask(taskId: wait.taskId, key: wait.key, parentTaskId: wait.parentTaskId, name: "wait for request", status: .waiting, at: now),
                    .setWaitUntil(taskId: wait.taskId, until: wait.timeoutAt),
                    .scheduleTimer(taskId: eventWaitTimeoutTimerID(taskId: wait.taskId), dueAt: wait.timeoutAt),
                    .registerRequestWait(taskId: wait.taskId, tokenHash: wait.tokenHash, timeoutAt: wait.timeoutAt)]
                + becoming(.waiting)
        case .requestReceived(let received):
            return eventWaitEnded(taskId: received.taskId, output: (try? JSONValue(encoding: received.request)) ?? .null, at: now)
        }
    }

    /// The id of the timer at whose due time a wait for an event gives up.
    public static func eventWaitTimeoutTimerID(taskId: String) -> String { "\(taskId)#timeout" }

    /// The task an event-wait timeout timer (``eventWaitTimeoutTimerID(taskId:)``) belongs to;
    /// `nil` for other timers.
    public static func eventWaitTask(ofTimeoutTimer timerId: String) -> String? {
        timerId.hasSuffix("#timeout") ? String(timerId.dropLast("#timeout".count)) : nil
    }

    /// A wait for an event ended, with the event (`output`) or its timeout (`null`): the task
    /// completes with it unless the other came first (the first outcome stays), the timeout is
    /// dropped, and the run is resumed by a timer due now (whose end queues a waiting run). A
    /// second delivery changes nothing.
    static func eventWaitEnded(taskId: String, output: JSONValue, at now: Date) -> [RunWrite] {
        [.addTask(taskId: taskId, key: taskId, parentTaskId: nil, name: nil, status: .running, at: now),
         .completeTask(taskId: taskId, output: output, attempts: .atLeast(1), at: now),
         .dropTimer(taskId: eventWaitTimeoutTimerID(taskId: taskId)),
         .scheduleTimer(taskId: eventTimerID(taskId: taskId), dueAt: now)]
    }

    /// The id of the timer that resumes a run whose task `taskId` got the event it waited for.
    public static func eventTimerID(taskId: String) -> String { "\(taskId)#event" }

    /// The id of a child run's timer that tells its parent how it ended: scheduled dormant
    /// (``dormant``) when the child is created, due when it ends (however it ends: completed,
    /// failed, canceled or timed out). Firing it sends the parent a `childRunFinished` event.
    public static let parentNoticeTimerID = "baton.parentNotice"

    /// The due time of a timer that waits for something other than time (``parentNoticeTimerID``).
    public static let dormant = Date(millisecondsSince1970: 253_402_300_799_000)  // 9999-12-31T23:59:59Z

    /// The writes that end a run with `status`: the run's record, its parent notice due now, and
    /// its concurrency slot (or place in the queue) given back.
    static func finishing(_ status: RunStatus, output: JSONValue?, error: String?, at now: Date) -> [RunWrite] {
        [.finish(status, output: output, error: error, at: now), .leaveQueue, .makeTimerDue(taskId: parentNoticeTimerID, at: now)]
    }

    /// A child run ended: the parent's waiting task completes with the child's outcome (its
    /// output, or its status and error: the SDK turns those into a typed error), and the parent
    /// is resumed by a timer due now (a crash before the resume command cannot lose it; the
    /// timer's end queues a waiting parent). A second notice changes nothing: the task keeps
    /// its first outcome and the timer exists.
    static func childRunFinished(_ finished: RunEvent.ChildRunFinished, at now: Date) -> [RunWrite] {
        let output = (try? JSONValue(encoding: finished.outcome)) ?? .null
        return [.addTask(taskId: finished.taskId, key: finished.taskId, parentTaskId: nil, name: nil, status: .running, at: now),
                .completeTask(taskId: finished.taskId, output: output, attempts: .atLeast(1), at: now),
                .scheduleTimer(taskId: childTimerID(taskId: finished.taskId), dueAt: now)]
    }

    /// The id of the timer that resumes a parent whose task `taskId` got its child's outcome.
    public static func childTimerID(taskId: String) -> String { "\(taskId)#child" }

    /// The id of the timer that retries `taskId` after failed attempt `attempt`.
    public static func retryTimerID(taskId: String, attempt: Int) -> String { "\(taskId)#retry\(attempt)" }

    /// The run's status after `writes`, from `status` (`nil`: unknown run).
    public static func status(after writes: [RunWrite], from status: RunStatus?) -> RunStatus? {
        var current = status
        for write in writes {
            switch write {
            case .createRun: if current == nil { current = .queued }
            case .setStatus(let new, _), .finish(let new, _, _, _): current = new
            default: break
            }
        }
        return current
    }

    /// The writes that end a wait (a timer fired, or a background fetch finished with `output`):
    /// the task completes, and a run that was waiting is queued to resume.
    /// A run with a concurrency limit (`concurrency`) joins its queue for a slot instead of
    /// being resumed at once (``ConcurrencyRules/queues(resumingWith:)``).
    public static func waitEnded(taskId: String, output: JSONValue, attempts: RunWrite.Attempts, status: RunStatus?,
                                 concurrency: ConcurrencySlot? = nil, at now: Date) -> [RunWrite] {
        var writes: [RunWrite] = [.completeTask(taskId: taskId, output: output, attempts: attempts, at: now)]
        if status == .waiting { writes.append(.setStatus(.queued, at: now)) }
        if let concurrency, let status, !status.isTerminal, ConcurrencyRules.queues(resumingWith: taskId) {
            writes.append(.queueForSlot(concurrency))
        }
        return writes
    }

    /// The outcome of canceling a run.
    public struct Cancellation: Sendable, Hashable {
        /// The run's status afterwards.
        public var status: RunStatus
        /// Whether this cancel ended it (`false`: it had already ended).
        public var canceled: Bool
        public var writes: [RunWrite]
    }

    /// Canceling a run in `status`: it ends `CANCELED` and its timers are dropped, unless it had
    /// already ended. `nil` for an unknown run.
    public static func cancel(status: RunStatus?, at now: Date) -> Cancellation? {
        guard let status else { return nil }
        guard !status.isTerminal else { return Cancellation(status: status, canceled: false, writes: []) }
        return Cancellation(status: .canceled, canceled: true, writes: [.dropTimers] + finishing(.canceled, output: nil, error: nil, at: now))
    }

    /// Whether a run is stuck at `now`: queued or executing (waiting runs have a timer or a fetch
    /// as their progress) with no progress since before `cutoff`.
    public static func isStuck(_ run: RunState, cutoff: Date) -> Bool {
        [RunStatus.queued, .executing].contains(run.status) && run.lastProgress < cutoff
    }

    /// Timing out a stuck run seen with `lastProgress`: it ends `TIMED_OUT` with `reason` and its
    /// timers are dropped, unless it made progress since (or ended) meanwhile.
    public static func timeOut(_ run: RunState?, seenWithProgress lastProgress: Date, reason: String, at now: Date) -> [RunWrite] {
        guard let run, [RunStatus.queued, .executing].contains(run.status),
              run.lastProgress.millisecondsSince1970 == lastProgress.millisecondsSince1970 else { return [] }
        return [.dropTimers] + finishing(.timedOut, output: nil, error: reason, at: now)
    }
}

/// A run that is queued or executing but has made no progress since `lastProgress`.
public struct StuckRun: Sendable, Hashable {
    public var runId: String
    public var jobSlug: String
    public var jobVersion: String
    public var status: RunStatus
    public var lastProgress: Date
    /// Resume commands re-issued for it so far.
    public var reissues: Int

    public init(runId: String, jobSlug: String, jobVersion: String, status: RunStatus, lastProgress: Date, reissues: Int) {
        self.runId = runId
        self.jobSlug = jobSlug
        self.jobVersion = jobVersion
        self.status = status
        self.lastProgress = lastProgress
        self.reissues = reissues
    }
}

/// A consumed record of the task-results topic, for ``RunStore/apply(_:)``.
public struct ConsumedRunEvent: Sendable {
    /// The run event it holds; `nil` for a record that was dead-lettered (only its offset counts).
    public var event: RunEvent?
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The W3C `traceparent` the record carried (kept for a `runCreated`: resumes continue it).
    public var traceParent: String?

    public init(event: RunEvent?, topic: String, partition: Int32, offset: Int64, traceParent: String? = nil) {
        self.event = event
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.traceParent = traceParent
    }
}

/// A finished background fetch whose run has not been resumed yet.
public struct FetchResume: Sendable, Hashable {
    public var runId: String
    public var taskId: String
    /// The resume command (`nil` when the run ended meanwhile: only mark it resumed).
    public var command: RunCommand?

    public init(runId: String, taskId: String, command: RunCommand?) {
        self.runId = runId
        self.taskId = taskId
        self.command = command
    }
}

/// Where runs, their tasks and log lines live, for one or several task-result instances. Every
/// change goes through ``RunRules``.
public protocol RunStore: Sendable {
    /// Applies `records` (one poll's worth) in one transaction, with their offsets. Returns the
    /// ids of runs whose events were ignored because the run is unknown.
    func apply(_ records: [ConsumedRunEvent]) async throws -> [String]
    /// The checkpoints of `runIds` (an id may repeat), each counting a slice of a run that has
    /// not ended.
    func checkpoints(runIds: [String]) async throws -> [RunCheckpoint]
    /// The command that resumes `runId` now, with `taskId` (a wait about to end) counted as
    /// completed; `nil` when the run is unknown or ended.
    func resumeCommand(runId: String, counting taskId: String?) async throws -> RunCommand?
    /// The W3C `traceparent` the run was created in, if one was recorded.
    func traceParent(runId: String) async throws -> String?
    /// Cancels the run unless it ended (``RunRules/cancel(status:at:)``); `nil` when unknown.
    func cancel(runId: String, at now: Date) async throws -> RunRules.Cancellation?
    /// Runs stuck at `cutoff` (``RunRules/isStuck(_:cutoff:)``), longest stuck first.
    func stuckRuns(before cutoff: Date, limit: Int) async throws -> [StuckRun]
    /// Records that a resume command was re-issued for a stuck run (its deadline starts again).
    func recordReissue(runId: String, at now: Date) async throws
    /// Ends a stuck run as `TIMED_OUT` (``RunRules/timeOut(_:seenWithProgress:reason:at:)``).
    func timeOut(runId: String, reason: String, lastProgress: Date, at now: Date) async throws
    /// When the oldest run that has not ended was created, and how many have not ended.
    func activeRuns() async throws -> (oldest: Date?, count: Int)
    /// A page of the runs `query` selects, newest first.
    func listRuns(_ query: RunQuery) async throws -> RunIDPage
    /// One tenant's runs of job `slug`, counted by version and status (with each group's newest creation).
    func runCounts(tenant: Tenant, jobSlug: String) async throws -> [RunCount]
    /// How run `id` was created (its job, version and event, whatever its status); `nil` when unknown.
    func creation(ofRun id: String) async throws -> RunEvent.RunCreated?
    /// The tenant of run `id` (from its event); `nil` for an unknown run.
    func tenant(ofRun id: String) async throws -> Tenant?
    /// The run with its tasks and log lines.
    func run(id: String) async throws -> RunDetails?
    /// Finished background fetches whose run was not sent its resume command yet.
    func fetchResumes(limit: Int) async throws -> [FetchResume]
    /// Records that the run of a finished fetch was sent its resume command.
    func markFetchResumed(runId: String, taskId: String) async throws
}

/// A store shared by several instances that tells when any of them applied more of a topic, so
/// a read barrier waiting for a partition another instance applies wakes at once instead of
/// polling.
public protocol AppliedProgressNotifying: Sendable {
    /// Calls `changed` each time an instance committed consumed offsets (several commits may
    /// come as one call); returns only by throwing (the connection was lost) or when cancelled.
    func followAppliedProgress(_ changed: @escaping @Sendable () async -> Void) async throws
}

/// A position in a list of runs, newest first: the runs after it are older. Opaque to clients
/// (``encoded``): the store's insertion order, so runs created while a client pages through a
/// list land before its position and never shift what comes after it.
public struct RunCursor: Sendable, Hashable {
    /// The store's insertion sequence number of the last run of the page.
    public var sequence: Int64

    public init(sequence: Int64) {
        self.sequence = sequence
    }

    /// The cursor as clients see it: `r` and the sequence number (`docs/openapi.yaml` gives its
    /// exact pattern, `^r(0|[1-9][0-9]{0,17})$`, so that a client or a fuzzer can tell one from
    /// any string; clients still pass it back unchanged).
    public var encoded: String { "r\(sequence)" }

    /// The cursor a client sent back; `nil` when it is not one this API hands out.
    public init?(encoded: String) {
        let digits = encoded.utf8.dropFirst()
        guard encoded.utf8.first == UInt8(ascii: "r"), (1...18).contains(digits.count),
              digits.allSatisfy({ (48...57).contains($0) }), digits.count == 1 || digits.first != UInt8(ascii: "0"),
              let sequence = Int64(String(decoding: digits, as: UTF8.self)) else { return nil }
        self.sequence = sequence
    }
}

/// Which runs to list: one tenant's, filtered, newest first, a page at a time.
public struct RunQuery: Sendable, Hashable {
    /// The largest page a client may ask for.
    public static let maximumLimit = 100
    /// The page size when the client gives none.
    public static let defaultLimit = 50

    public var tenant: Tenant
    public var jobSlug: String?
    /// Any of these statuses (empty: any status).
    public var statuses: [RunStatus]
    /// Created at or after.
    public var createdFrom: Date?
    /// Created before.
    public var createdTo: Date?
    public var eventId: String?
    /// The page after this position (`nil`: the first page).
    public var after: RunCursor?
    public var limit: Int

    public init(tenant: Tenant, jobSlug: String? = nil, statuses: [RunStatus] = [], createdFrom: Date? = nil, createdTo: Date? = nil,
                eventId: String? = nil, after: RunCursor? = nil, limit: Int = RunQuery.defaultLimit) {
        self.tenant = tenant
        self.jobSlug = jobSlug
        self.statuses = statuses
        self.createdFrom = createdFrom
        self.createdTo = createdTo
        self.eventId = eventId
        self.after = after
        self.limit = limit
    }
}

/// A page of run ids, newest first, and where the next page starts (`nil`: the last page).
public struct RunIDPage: Sendable, Hashable {
    public var ids: [String]
    public var next: RunCursor?

    public init(ids: [String], next: RunCursor?) {
        self.ids = ids
        self.next = next
    }
}

/// How many of a job's runs have one version and one status, and when the newest was created.
public struct RunCount: Sendable, Hashable {
    public var jobVersion: String
    public var status: RunStatus
    public var count: Int
    public var lastCreatedAt: Date

    public init(jobVersion: String, status: RunStatus, count: Int, lastCreatedAt: Date) {
        self.jobVersion = jobVersion
        self.status = status
        self.count = count
        self.lastCreatedAt = lastCreatedAt
    }
}
