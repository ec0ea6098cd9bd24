import BatonDomain
import BatonProtocol
import Foundation
import GRDB

/// The task-result service's state: runs, their keyed tasks, log lines and durable timers.
///
/// Every `apply` is idempotent: applying the same run event twice (redelivery after a crash)
/// changes nothing the second time.
public final class TaskResultStore: RunStore, DeduplicationStore, TimerStore, FetchStore, ConsumedOffsetStore, DutyLeaseStore, RequestWaitStore,
    ConcurrencySlotStore, Sendable {
    private let pool: DatabasePool


    /// Opens (creating when needed) the SQLite file at `path`.
    public init(path: String) throws {
        self.migrator = Self.migrator()
        self.pool = try SQLiteDatabase.open(path: path, migrator: migrator)
    }

    private let migrator: DatabaseMigrator

    /// The store's schema, migration by migration (shipped migrations are never edited).
    private static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 runs tasks logs timers") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id TEXT PRIMARY KEY NOT NULL,
                    job_slug TEXT NOT NULL,
                    job_version TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    status TEXT NOT NULL,
                    output TEXT,
                    error TEXT,
                    slices INTEGER NOT NULL DEFAULT 0,
                    reissues INTEGER NOT NULL DEFAULT 0,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    completed_at INTEGER
                );
                CREATE INDEX runs_by_event ON runs(event_id);
                CREATE TABLE tasks (
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    key TEXT NOT NULL,
                    parent_task_id TEXT,
                    name TEXT,
                    properties TEXT,
                    status TEXT NOT NULL,
                    output TEXT,
                    error TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    failures INTEGER NOT NULL DEFAULT 0,
                    started_at INTEGER,
                    completed_at INTEGER,
                    wait_until INTEGER,
                    PRIMARY KEY (run_id, task_id)
                );
                CREATE TABLE logs (
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    level TEXT NOT NULL,
                    message TEXT NOT NULL,
                    properties TEXT,
                    logged_at INTEGER NOT NULL,
                    PRIMARY KEY (run_id, task_id)
                );
                CREATE TABLE timers (
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    due_at INTEGER NOT NULL,
                    fired INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (run_id, task_id)
                );
                CREATE INDEX timers_due ON timers(fired, due_at);
                CREATE TABLE fetches (
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    request TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER NOT NULL,
                    done INTEGER NOT NULL DEFAULT 0,
                    resumed INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (run_id, task_id)
                );
                CREATE INDEX fetches_due ON fetches(done, next_attempt_at);
                CREATE TABLE deduplication_keys (
                    scoped_key TEXT PRIMARY KEY NOT NULL,
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    output TEXT,
                    error TEXT,
                    claimed_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE TABLE consumer_offsets (
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition)
                );
                """)
        }
        migrator.registerMigration("v2 run trace parent") { db in
            // The W3C `traceparent` the run was created in: its resumes continue that trace.
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN trace_parent TEXT")
        }
        migrator.registerMigration("v3 broker binding") { db in
            // Which broker (and topic shapes) the store was written against.
            try BrokerBindingTable.create(db)
        }
        migrator.registerMigration("v4 timer leases") { db in
            // Which instance fires a due timer, until when (see `TimerRules`).
            try db.execute(sql: "ALTER TABLE timers ADD COLUMN lease_owner TEXT")
            try db.execute(sql: "ALTER TABLE timers ADD COLUMN lease_until INTEGER")
        }
        migrator.registerMigration("v5 fetch leases") { db in
            // Which instance performs a due fetch, until when (see `FetchRules`).
            try db.execute(sql: "ALTER TABLE fetches ADD COLUMN lease_owner TEXT")
            try db.execute(sql: "ALTER TABLE fetches ADD COLUMN lease_until INTEGER")
        }
        migrator.registerMigration("v6 duty leases") { db in
            // Which instance performs a duty only one performs at a time (see `DutyLeaseRules`).
            try DutyLeasesTable.create(db)
        }
        migrator.registerMigration("v7 run tenants") { db in
            // The run's tenant as columns (from its event), so a list of one tenant's runs pages
            // in the database; the list's order is the rowid (insertion order).
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT 'default'")
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN environment TEXT NOT NULL DEFAULT 'default'")
            try db.execute(sql: """
                UPDATE runs SET project = COALESCE(json_extract(event, '$.project'), 'default'),
                    environment = COALESCE(json_extract(event, '$.environment'), 'default')
                """)
            try db.execute(sql: "CREATE INDEX runs_by_tenant ON runs(project, environment)")
            // The run a replay replays.
            try db.execute(sql: "ALTER TABLE runs ADD COLUMN replay_of TEXT")
        }
        migrator.registerMigration("v8 request waits") { db in
            // Waits for a request to a callback URL (`io.waitForRequest`), by their token's hash.
            try db.execute(sql: """
                CREATE TABLE request_waits (
                    token_hash TEXT PRIMARY KEY NOT NULL,
                    run_id TEXT NOT NULL,
                    task_id TEXT NOT NULL,
                    timeout_at INTEGER NOT NULL,
                    received_at INTEGER,
                    request TEXT,
                    delivered_at INTEGER
                );
                CREATE INDEX request_waits_undelivered ON request_waits(received_at) WHERE received_at IS NOT NULL AND delivered_at IS NULL;
                """)
        }
        migrator.registerMigration("v9 concurrency slots") { db in
            // A limited run's queue (see `ConcurrencyRules`), and the runs in each queue: waiting
            // (`holding = 0`, in `seq` order) or holding a slot (since `granted_at`). `seq` is never
            // reused (AUTOINCREMENT): it names the grant's timer, which must be new each time.
            try db.execute(sql: """
                ALTER TABLE runs ADD COLUMN concurrency_queue TEXT;
                ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER;
                CREATE TABLE concurrency_slots (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id TEXT NOT NULL UNIQUE,
                    queue TEXT NOT NULL,
                    lim INTEGER NOT NULL,
                    holding INTEGER NOT NULL DEFAULT 0,
                    queued_at INTEGER NOT NULL,
                    granted_at INTEGER
                );
                CREATE INDEX concurrency_slots_by_queue ON concurrency_slots(queue, holding, seq);
                """)
        }
        return migrator
    }

    /// Takes or renews duty `name` for `owner` (see ``DutyLeaseRules``).
    public func acquireDuty(_ name: String, owner: String, now: Date = Date(), lease: Duration) async throws -> Bool {
        try await DutyLeasesTable.acquire(pool, name: name, owner: owner, now: now, lease: lease)
    }

    /// Moves each partition's next offset of `topic` forward (never back), in one transaction.
    public func advanceOffsets(topic: String, to next: [Int32: Int64]) async throws {
        try await pool.write { db in try ConsumerOffsetsTable.advance(db, topic: topic, to: next) }
    }

    /// The broker identity the store is bound to (JSON), `nil` when never bound.
    public func brokerBinding() async throws -> String? { try await BrokerBindingTable.read(pool) }

    /// Binds the store to broker identity `identity` (JSON).
    public func bindBroker(_ identity: String) async throws { try await BrokerBindingTable.write(pool, identity: identity) }

    /// Erases everything the store holds (after the broker it was written against was lost).
    public func eraseAll() async throws { try await BrokerBindingTable.eraseAll(pool, migrator: migrator) }

    /// Where a record came from (see ``BatonStore/SourceOffset``).
    public typealias SourceOffset = BatonStore.SourceOffset

    /// Applies one run event and, in the same transaction, records that `source` was consumed
    /// (when given). Returns `false` when the event's run is unknown.
    @discardableResult
    public func apply(_ event: RunEvent, source: SourceOffset? = nil) async throws -> Bool {
        let offsets = source.map { [$0.topic: [$0.partition: $0.offset + 1]] } ?? [:]
        return try await apply([(event, nil)], offsets: offsets).isEmpty
    }

    /// Applies `records` (one poll's worth) in one transaction, with their offsets. Returns the
    /// ids of runs whose events were ignored because the run is unknown.
    public func apply(_ records: [ConsumedRunEvent]) async throws -> [String] {
        var offsets: [String: [Int32: Int64]] = [:]
        for record in records {
            offsets[record.topic, default: [:]][record.partition] = max(offsets[record.topic]?[record.partition] ?? 0, record.offset + 1)
        }
        return try await apply(records.compactMap { record in record.event.map { ($0, record.traceParent) } }, offsets: offsets)
    }

    /// Applies `events` (with the trace each came in) and advances the consumed `offsets` (the
    /// next offset of each partition), in one transaction.
    private func apply(_ events: [(event: RunEvent, traceParent: String?)], offsets: [String: [Int32: Int64]]) async throws -> [String] {
        // GRDB's async write suspends the caller instead of blocking a cooperative thread.
        try await pool.write { db -> [String] in
            var unknown: [String] = []
            // Each run's status as the writes so far left it (read once per run per batch).
            var statuses: [String: RunStatus?] = [:]
            for (event, traceParent) in events {
                let status = try statuses[event.runId] ?? Self.status(db, runId: event.runId)
                guard let writes = RunRules.apply(event, status: status, traceParent: traceParent) else {
                    unknown.append(event.runId)
                    continue
                }
                try Self.execute(writes, runId: event.runId, db)
                // One writer at a time: what this transaction read is still true.
                statuses[event.runId] = .some(RunRules.status(after: writes, from: status))
            }
            for (topic, next) in offsets { try ConsumerOffsetsTable.advance(db, topic: topic, to: next) }
            return unknown
        }
    }

    private static func status(_ db: Database, runId: String) throws -> RunStatus? {
        try String.fetchOne(try db.cachedStatement(sql: "SELECT status FROM runs WHERE id = ?"), arguments: [runId]).map(RunStatus.init(rawValue:))
    }

    /// The concurrency queue of run `runId`; `nil` for a run without a limit.
    private static func concurrency(_ db: Database, runId: String) throws -> ConcurrencySlot? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT concurrency_queue, concurrency_limit FROM runs WHERE id = ?"), arguments: [runId]).flatMap {
            guard let queue: String = $0["concurrency_queue"], let limit: Int = $0["concurrency_limit"] else { return nil }
            return ConcurrencySlot(queue: queue, limit: limit)
        }
    }

    private static func runState(_ db: Database, runId: String) throws -> RunState? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT status, updated_at FROM runs WHERE id = ?"), arguments: [runId]).map {
            RunState(status: RunStatus(rawValue: $0["status"]), lastProgress: Date(millisecondsSince1970: $0["updated_at"]))
        }
    }

    /// Performs `writes` (decided by ``RunRules``) on run `runId`.
    private static func execute(_ writes: [RunWrite], runId: String, _ db: Database) throws {
        for write in writes {
            switch write {
            case .createRun(let created, let traceParent, let at):
                try db.cachedStatement(sql: """
                    INSERT OR IGNORE INTO runs (id, job_slug, job_version, event_id, event, status, created_at, updated_at, trace_parent,
                                                project, environment, replay_of, concurrency_queue, concurrency_limit)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [runId, created.jobSlug, created.jobVersion, created.event.id, try json(created.event),
                                             RunStatus.queued.rawValue, at.millisecondsSince1970, at.millisecondsSince1970, traceParent,
                                             created.event.tenant.project, created.event.tenant.environment, created.replayOf,
                                             created.concurrency?.queue, created.concurrency?.limit])
            case .addTask(let taskId, let key, let parent, let name, let status, let at):
                // Tables keep their rowid: insertion order is the tasks' order in the run.
                try db.cachedStatement(sql: """
                    INSERT OR IGNORE INTO tasks (run_id, task_id, key, parent_task_id, name, status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [runId, taskId, key, parent, name, status.rawValue, at.millisecondsSince1970])
            case .startAttempt(let taskId, let attempt, let name, let properties):
                try db.cachedStatement(sql: """
                    UPDATE tasks SET attempts = MAX(attempts, ?), name = COALESCE(?, name), properties = COALESCE(?, properties), status = 'RUNNING'
                    WHERE run_id = ? AND task_id = ? AND status != 'COMPLETED'
                    """).execute(arguments: [attempt, name, try properties.map(json), runId, taskId])
            case .completeTask(let taskId, let output, let attempts, let at):
                let (minimum, exact): (Int, Int?) = switch attempts {
                case .atLeast(let count): (count, nil)
                case .exactly(let count): (count, count)
                }
                try db.cachedStatement(sql: """
                    UPDATE tasks SET status = 'COMPLETED', output = ?, error = NULL, completed_at = ?, attempts = COALESCE(?, MAX(attempts, ?))
                    WHERE run_id = ? AND task_id = ? AND status != 'COMPLETED'
                    """).execute(arguments: [try json(output), at.millisecondsSince1970, exact, minimum, runId, taskId])
            case .failAttempt(let taskId, let error, let attempt):
                try db.cachedStatement(sql: """
                    UPDATE tasks SET status = 'ERRORED', error = ?, attempts = MAX(attempts, ?), failures = MAX(failures, ?)
                    WHERE run_id = ? AND task_id = ? AND status != 'COMPLETED'
                    """).execute(arguments: [error, attempt, attempt, runId, taskId])
            case .setWaitUntil(let taskId, let until):
                try db.cachedStatement(sql: "UPDATE tasks SET wait_until = COALESCE(wait_until, ?), attempts = 1 WHERE run_id = ? AND task_id = ?")
                    .execute(arguments: [until.millisecondsSince1970, runId, taskId])
            case .scheduleTimer(let taskId, let dueAt):
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (run_id, task_id, due_at) VALUES (?, ?, ?)")
                    .execute(arguments: [runId, taskId, dueAt.millisecondsSince1970])
            case .scheduleFetch(let taskId, let request, let at):
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO fetches (run_id, task_id, request, next_attempt_at) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [runId, taskId, try json(request), at.millisecondsSince1970])
            case .addLog(let taskId, let level, let message, let properties, let at):
                try db.cachedStatement(sql: """
                    INSERT OR IGNORE INTO logs (run_id, task_id, level, message, properties, logged_at) VALUES (?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [runId, taskId, level, message, try properties.map(json), at.millisecondsSince1970])
            case .setStatus(let status, let at):
                try db.cachedStatement(sql: "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?")
                    .execute(arguments: [status.rawValue, at.millisecondsSince1970, runId])
            case .finish(let status, let output, let error, let at):
                try db.cachedStatement(sql: "UPDATE runs SET status = ?, output = ?, error = ?, updated_at = ?, completed_at = ? WHERE id = ?")
                    .execute(arguments: [status.rawValue, try output.map(json), error, at.millisecondsSince1970, at.millisecondsSince1970, runId])
            case .deduplicationCompleted(let key, let output, let at):
                try deduplicationCompleted(db, key, output: output, now: at)
            case .deduplicationFailed(let key, let taskId, let error, let at):
                try deduplicationFailed(db, key, runId: runId, taskId: taskId, error: error, now: at)
            case .dropTimers:
                try db.cachedStatement(sql: "UPDATE timers SET fired = 1 WHERE run_id = ? AND fired = 0 AND task_id != ?")
                    .execute(arguments: [runId, RunRules.parentNoticeTimerID])
            case .setTaskProperties(let taskId, let properties):
                try db.cachedStatement(sql: "UPDATE tasks SET properties = COALESCE(properties, ?) WHERE run_id = ? AND task_id = ?")
                    .execute(arguments: [try json(properties), runId, taskId])
            case .registerRequestWait(let taskId, let tokenHash, let timeoutAt):
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO request_waits (token_hash, run_id, task_id, timeout_at) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [tokenHash, runId, taskId, timeoutAt.millisecondsSince1970])
            case .dropTimer(let taskId):
                try db.cachedStatement(sql: "UPDATE timers SET fired = 1 WHERE run_id = ? AND task_id = ? AND fired = 0").execute(arguments: [runId, taskId])
            case .makeTimerDue(let taskId, let at):
                try db.cachedStatement(sql: "UPDATE timers SET due_at = ? WHERE run_id = ? AND task_id = ? AND fired = 0")
                    .execute(arguments: [at.millisecondsSince1970, runId, taskId])
            case .queueForSlot(let slot):
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO concurrency_slots (run_id, queue, lim, queued_at) VALUES (?, ?, ?, ?)")
                    .execute(arguments: [runId, slot.queue, slot.limit, Date().millisecondsSince1970])
            case .releaseSlot:
                try db.cachedStatement(sql: "DELETE FROM concurrency_slots WHERE run_id = ? AND holding = 1").execute(arguments: [runId])
            case .leaveQueue:
                try db.cachedStatement(sql: "DELETE FROM concurrency_slots WHERE run_id = ?").execute(arguments: [runId])
            }
        }
    }

    /// The W3C `traceparent` run `runId` was created in, if one was recorded.
    public func traceParent(runId: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(try db.cachedStatement(sql: "SELECT trace_parent FROM runs WHERE id = ?"), arguments: [runId])
        }
    }

    /// The next offset to read of each partition of `topic`, as far as this store has consumed.
    public func consumedOffsets(topic: String) async throws -> [Int32: Int64] {
        try await pool.read { db in try ConsumerOffsetsTable.read(db, topic: topic) }
    }

    /// The checkpoints of `runIds`: each run's status and completed tasks (`status` is `nil` for
    /// an unknown run); each counts a slice of a run that has not finished (one per id, in order; an id may repeat: each counts a
    /// slice), in one transaction: concurrent checkpoint requests share it.
    public func checkpoints(runIds: [String]) async throws -> [RunCheckpoint] {
        try await pool.write { db in try runIds.map { try Self.checkpoint(db, runId: $0) } }
    }

    private static func checkpoint(_ db: Database, runId: String) throws -> RunCheckpoint {
        try db.cachedStatement(sql: "UPDATE runs SET slices = slices + 1 WHERE id = ? AND status NOT IN \(Self.terminalPlaceholders)").execute(arguments: StatementArguments([runId]) + Self.terminalArguments)
        let status = try String.fetchOne(try db.cachedStatement(sql: "SELECT status FROM runs WHERE id = ?"), arguments: [runId])
        guard let status else { return RunCheckpoint(runId: runId, status: nil, completedTasks: []) }
        var failed: [String: Int] = [:]
        for row in try Row.fetchAll(try db.cachedStatement(sql: "SELECT task_id, failures FROM tasks WHERE run_id = ? AND status != 'COMPLETED' AND failures > 0"),
                                    arguments: [runId]) {
            failed[row["task_id"]] = row["failures"]
        }
        return RunCheckpoint(runId: runId, status: RunStatus(rawValue: status),
                             completedTasks: try Self.completedTasks(db, runId: runId), failedAttempts: failed,
                             slice: try Int.fetchOne(try db.cachedStatement(sql: "SELECT slices FROM runs WHERE id = ?"), arguments: [runId]) ?? 1)
    }

    /// The command that resumes `runId` now, with `taskId` (a wait about to end) counted as
    /// completed; `nil` when the run is unknown or ended.
    public func resumeCommand(runId: String, counting taskId: String?) async throws -> RunCommand? {
        try await pool.read { db in try Self.resumeCommand(db, runId: runId, counting: taskId) }
    }

    /// The resume command of `runId` with its completed tasks (and `taskId`, a wait about to be
    /// completed, counted as done); `nil` when the run is unknown or finished, or when it has a
    /// concurrency limit and holds no slot for it (``ConcurrencyRules/resumes(timer:holdingSequence:)``).
    private static func resumeCommand(_ db: Database, runId: String, counting taskId: String? = nil) throws -> RunCommand? {
        guard let run = try Row.fetchOne(try db.cachedStatement(sql: """
                SELECT job_slug, job_version, event, status, concurrency_queue,
                    (SELECT seq FROM concurrency_slots WHERE run_id = runs.id AND holding = 1) AS holding
                FROM runs WHERE id = ?
                """), arguments: [runId]),
              !RunStatus(rawValue: run["status"]).isTerminal,
              (run["concurrency_queue"] as String?) == nil || ConcurrencyRules.resumes(timer: taskId, holdingSequence: run["holding"])
        else { return nil }
        var completed = try completedTasks(db, runId: runId)
        if let taskId, !completed.contains(where: { $0.taskId == taskId }),
           let key = try String.fetchOne(try db.cachedStatement(sql: "SELECT key FROM tasks WHERE run_id = ? AND task_id = ?"), arguments: [runId, taskId]) {
            completed.append(CompletedTask(taskId: taskId, key: key, output: .null))
        }
        return RunCommand(kind: .resume, runId: runId, jobSlug: run["job_slug"], jobVersion: run["job_version"],
                          event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data((run["event"] as String).utf8)),
                          completedTasks: completed)
    }

    public func slotCounts() async throws -> SlotCounts {
        try await pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COALESCE(SUM(holding = 0), 0) AS waiting, COALESCE(SUM(holding = 1), 0) AS holding FROM concurrency_slots")
            return SlotCounts(waiting: row?["waiting"] ?? 0, holding: row?["holding"] ?? 0)
        }
    }

    /// Hands the free slots of every queue to its oldest waiting runs, and makes their grant
    /// timers due at `now` (see ``ConcurrencyRules``). One writer at a time: each queue's count
    /// is exact. A queue's limit is that of the run that joined it last.
    public func grantSlots(now: Date = Date()) async throws -> [SlotGrant] {
        guard try await SQLiteDatabase.exists(pool, "SELECT EXISTS (SELECT 1 FROM concurrency_slots WHERE holding = 0)", []) else { return [] }
        let time = now.millisecondsSince1970
        return try await pool.write { db in
            var grants: [SlotGrant] = []
            for queue in try String.fetchAll(try db.cachedStatement(sql: "SELECT DISTINCT queue FROM concurrency_slots WHERE holding = 0")) {
                guard let limit = try Int.fetchOne(try db.cachedStatement(sql: "SELECT lim FROM concurrency_slots WHERE queue = ? ORDER BY seq DESC LIMIT 1"),
                                                   arguments: [queue]) else { continue }
                // A slot held by a run that ended is free (the end normally frees it: this repairs
                // a record that a store written by an older version, or a race, left behind).
                try db.cachedStatement(sql: """
                    DELETE FROM concurrency_slots WHERE queue = ? AND holding = 1
                        AND run_id IN (SELECT id FROM runs WHERE status IN \(Self.terminalPlaceholders))
                    """).execute(arguments: StatementArguments([queue]) + Self.terminalArguments)
                let holding = try Int.fetchOne(try db.cachedStatement(sql: "SELECT COUNT(*) FROM concurrency_slots WHERE queue = ? AND holding = 1"),
                                               arguments: [queue]) ?? 0
                guard holding < limit else { continue }
                let waiting = try Row.fetchAll(try db.cachedStatement(sql: """
                    SELECT run_id, seq FROM concurrency_slots WHERE queue = ? AND holding = 0 ORDER BY seq LIMIT ?
                    """), arguments: [queue, limit - holding]).map { (runId: $0["run_id"] as String, seq: $0["seq"] as Int64) }
                let granted = Set(ConcurrencyRules.granted(limit: limit, holding: holding, queued: waiting.map(\.runId)))
                for run in waiting where granted.contains(run.runId) {
                    let timerId = ConcurrencyRules.grantTimerID(sequence: run.seq)
                    try db.cachedStatement(sql: "UPDATE concurrency_slots SET holding = 1, granted_at = ? WHERE run_id = ?").execute(arguments: [time, run.runId])
                    try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (run_id, task_id, due_at) VALUES (?, ?, ?)")
                        .execute(arguments: [run.runId, timerId, time])
                    grants.append(SlotGrant(runId: run.runId, queue: queue, timerId: timerId))
                }
            }
            return grants
        }
    }

    /// Schedules a timer (as applying a wait, a retry back-off or a yield does).
    public func schedule(runId: String, taskId: String, dueAt: Date) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO timers (run_id, task_id, due_at) VALUES (?, ?, ?)")
                .execute(arguments: [runId, taskId, dueAt.millisecondsSince1970])
        }
    }

    /// Claims due timers for `owner` with a lease (see `TimerRules`): one writer at a time, so
    /// each timer goes to one claimant.
    public func claimDueTimers(owner: String, now: Date = Date(), lease: Duration, limit: Int = 100) async throws -> [ClaimedTimer] {
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        // Most polls find nothing: look first without taking the write lock.
        guard try await SQLiteDatabase.exists(pool, """
                SELECT EXISTS (SELECT 1 FROM timers WHERE fired = 0 AND due_at <= ? AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?))
                """, [time, time, owner]) else { return [] }
        return try await pool.write { db in
            var claimed: [ClaimedTimer] = []
            let rows = try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT run_id, task_id, due_at, fired, lease_owner, lease_until FROM timers
                WHERE fired = 0 AND due_at <= ? AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?) ORDER BY due_at LIMIT ?
                """), arguments: [time, time, owner, limit])
            for row in rows {
                let timer = Self.timerRecord(row)
                guard TimerRules.isClaimable(timer, by: owner, now: now) else { continue }
                let record = TimerRules.claimed(timer, by: owner, now: now, lease: lease)
                try db.cachedStatement(sql: "UPDATE timers SET lease_owner = ?, lease_until = ? WHERE run_id = ? AND task_id = ?")
                    .execute(arguments: [record.leaseOwner, record.leaseUntil?.millisecondsSince1970, record.runId, record.taskId])
                claimed.append(ClaimedTimer(runId: timer.runId, taskId: timer.taskId, dueAt: timer.dueAt))
            }
            return claimed
        }
    }

    /// Marks the claimed `timers` that `owner` still holds fired, with their wait tasks
    /// completed, in one transaction.
    public func markFired(_ timers: [ClaimedTimer], owner: String) async throws {
        let now = Date()
        try await pool.write { db in
            for timer in timers {
                guard let row = try Row.fetchOne(try db.cachedStatement(sql: """
                    SELECT run_id, task_id, due_at, fired, lease_owner, lease_until FROM timers WHERE run_id = ? AND task_id = ?
                    """), arguments: [timer.runId, timer.taskId]),
                    TimerRules.fired(Self.timerRecord(row), by: owner) != nil else { continue }
                try db.cachedStatement(sql: "UPDATE timers SET fired = 1 WHERE run_id = ? AND task_id = ?").execute(arguments: [timer.runId, timer.taskId])
                try Self.execute(RunRules.waitEnded(taskId: timer.taskId, output: .null, attempts: .atLeast(1),
                                                    status: try Self.status(db, runId: timer.runId),
                                                    concurrency: try Self.concurrency(db, runId: timer.runId), at: now),
                                 runId: timer.runId, db)
            }
        }
    }

    private static func timerRecord(_ row: Row) -> TimerRecord {
        TimerRecord(runId: row["run_id"], taskId: row["task_id"], dueAt: Date(millisecondsSince1970: row["due_at"]),
                    fired: (row["fired"] as Int64) != 0, leaseOwner: row["lease_owner"],
                    leaseUntil: (row["lease_until"] as Int64?).map(Date.init(millisecondsSince1970:)))
    }

    /// Cancels run `id` unless it already finished: no further slice will run, pending timers
    /// are dropped. Returns the run's status afterwards and whether this call canceled it;
    /// `nil` for an unknown run.
    public func cancel(runId: String, at now: Date = Date()) async throws -> RunRules.Cancellation? {
        try await pool.write { db in
            let cancellation = RunRules.cancel(status: try Self.status(db, runId: runId), at: now)
            if let cancellation { try Self.execute(cancellation.writes, runId: runId, db) }
            return cancellation
        }
    }


    /// Background fetches due at `now` whose run has not finished, oldest first.
    public func claimDueFetches(owner: String, now: Date = Date(), lease: Duration, limit: Int = 50) async throws -> [ClaimedFetch] {
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        guard try await SQLiteDatabase.exists(pool, """
                SELECT EXISTS (SELECT 1 FROM fetches f JOIN runs r ON r.id = f.run_id
                    WHERE f.done = 0 AND f.next_attempt_at <= ? AND (f.lease_until IS NULL OR f.lease_until < ? OR f.lease_owner = ?)
                    AND r.status NOT IN \(Self.terminalPlaceholders))
                """, StatementArguments([time, time] as [any DatabaseValueConvertible]) + [owner] + Self.terminalArguments) else { return [] }
        return try await pool.write { db in
            var claimed: [ClaimedFetch] = []
            let rows = try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT f.run_id, f.task_id, f.request, f.attempts, f.next_attempt_at, f.done, f.lease_owner, f.lease_until, r.status
                FROM fetches f JOIN runs r ON r.id = f.run_id
                WHERE f.done = 0 AND f.next_attempt_at <= ? AND (f.lease_until IS NULL OR f.lease_until < ? OR f.lease_owner = ?)
                AND r.status NOT IN \(Self.terminalPlaceholders)
                ORDER BY f.next_attempt_at LIMIT ?
                """), arguments: StatementArguments([time, time] as [any DatabaseValueConvertible]) + [owner] + Self.terminalArguments + [limit])
            for row in rows {
                let fetch = Self.fetchRecord(row)
                guard FetchRules.isClaimable(fetch, by: owner, now: now) else { continue }
                let record = FetchRules.claimed(fetch, by: owner, now: now, lease: lease)
                try db.cachedStatement(sql: "UPDATE fetches SET lease_owner = ?, lease_until = ? WHERE run_id = ? AND task_id = ?")
                    .execute(arguments: [record.leaseOwner, record.leaseUntil?.millisecondsSince1970, record.runId, record.taskId])
                claimed.append(ClaimedFetch(runId: fetch.runId, taskId: fetch.taskId,
                                            request: try BatonJSON.decoder.decode(BackgroundFetchRequest.self, from: Data((row["request"] as String).utf8)),
                                            attempts: fetch.attempts))
            }
            return claimed
        }
    }

    /// Drops the pending timers of run `runId` (as canceling or timing it out does).
    public func cancelTimers(runId: String) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "UPDATE timers SET fired = 1 WHERE run_id = ? AND fired = 0").execute(arguments: [runId])
        }
    }

    /// Nothing to record here: a fetch's run is read with it, and an ended run's fetches are
    /// never claimed.
    public func endFetches(runId: String) async throws {}

    /// Records run `runId`'s fetch `taskId`, due at `now` (as applying `fetchRequested` does).
    public func scheduleFetch(runId: String, taskId: String, request: BackgroundFetchRequest, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO fetches (run_id, task_id, request, next_attempt_at) VALUES (?, ?, ?, ?)")
                .execute(arguments: [runId, taskId, try Self.json(request), now.millisecondsSince1970])
        }
    }

    private static func fetchRecord(_ row: Row) -> FetchRecord {
        FetchRecord(runId: row["run_id"], taskId: row["task_id"], attempts: row["attempts"],
                    nextAttemptAt: Date(millisecondsSince1970: row["next_attempt_at"]), done: (row["done"] as Int64) != 0,
                    runEnded: (row["status"] as String?).map { RunStatus(rawValue: $0).isTerminal } ?? true,
                    leaseOwner: row["lease_owner"], leaseUntil: (row["lease_until"] as Int64?).map(Date.init(millisecondsSince1970:)))
    }

    /// The fetch's record (with whether its run ended), read in `db`.
    private static func fetchRecord(_ db: Database, runId: String, taskId: String) throws -> FetchRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: """
            SELECT f.run_id, f.task_id, f.attempts, f.next_attempt_at, f.done, f.lease_owner, f.lease_until, r.status
            FROM fetches f LEFT JOIN runs r ON r.id = f.run_id WHERE f.run_id = ? AND f.task_id = ?
            """), arguments: [runId, taskId]).map(fetchRecord)
    }

    /// Records a failed attempt of `fetch`; the next is due at `next`.
    @discardableResult
    public func rescheduleFetch(_ fetch: ClaimedFetch, owner: String, next: Date) async throws -> Bool {
        try await pool.write { db in
            guard let current = try Self.fetchRecord(db, runId: fetch.runId, taskId: fetch.taskId),
                  let record = FetchRules.rescheduled(current, by: owner, next: next) else { return false }
            try db.cachedStatement(sql: """
                UPDATE fetches SET attempts = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND task_id = ?
                """).execute(arguments: [record.attempts, next.millisecondsSince1970, fetch.runId, fetch.taskId])
            try db.cachedStatement(sql: "UPDATE tasks SET attempts = ? WHERE run_id = ? AND task_id = ?").execute(arguments: [record.attempts, fetch.runId, fetch.taskId])
            return true
        }
    }

    /// Stores `response` as the output of the fetch's task (completed) and marks the fetch
    /// done; its run is then resumed by ``fetchResumes()`` / ``markFetchResumed(runId:taskId:)``.
    @discardableResult
    public func completeFetch(_ fetch: ClaimedFetch, owner: String, response: BackgroundFetchResponse, now: Date = Date()) async throws -> Bool {
        try await pool.write { db in
            guard let current = try Self.fetchRecord(db, runId: fetch.runId, taskId: fetch.taskId),
                  FetchRules.completed(current, by: owner, attempts: response.attempts) != nil else { return false }
            try db.cachedStatement(sql: "UPDATE fetches SET done = 1, attempts = ? WHERE run_id = ? AND task_id = ?").execute(arguments: [response.attempts, fetch.runId, fetch.taskId])
            let output = try BatonJSON.decoder.decode(JSONValue.self, from: try BatonJSON.encoder.encode(response))
            try Self.execute(RunRules.waitEnded(taskId: fetch.taskId, output: output, attempts: .exactly(response.attempts),
                                                status: try Self.status(db, runId: fetch.runId),
                                                concurrency: try Self.concurrency(db, runId: fetch.runId), at: now),
                             runId: fetch.runId, db)
            return true
        }
    }

    /// Finished fetches whose run has not been sent its resume command yet, with that command
    /// (`nil` when the run finished meanwhile: just mark it resumed).
    public func fetchResumes(limit: Int = 50) async throws -> [FetchResume] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: "SELECT run_id, task_id FROM fetches WHERE done = 1 AND resumed = 0 LIMIT ?"), arguments: [limit]).map {
                let runId: String = $0["run_id"]
                let taskId: String = $0["task_id"]
                return FetchResume(runId: runId, taskId: taskId, command: try Self.resumeCommand(db, runId: runId, counting: taskId))
            }
        }
    }

    /// Records that the run of a finished fetch was sent its resume command.
    public func markFetchResumed(runId: String, taskId: String) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "UPDATE fetches SET resumed = 1 WHERE run_id = ? AND task_id = ?").execute(arguments: [runId, taskId])
        }
    }

    /// Claims a deduplication key for a task, atomically: the first claimant executes, later
    /// ones get the stored output (or failure), or `busy` while the holder is executing. A task
    /// that failed under the key is executed again by the next claimant unless it skips failures;
    /// a claim older than `lease` whose holder never finished is taken over.
    public func claim(_ request: DeduplicationClaimRequest, lease: Duration = .seconds(300), now: Date = Date()) async throws -> DeduplicationClaim {
        try await pool.write { db in
            // SQLite has one writer at a time: the read and the write below are one atomic step.
            let decision = DeduplicationRules.claim(request, existing: try Self.deduplicationRecord(db, request.scopedKey), now: now, lease: lease)
            if let record = decision.write { try Self.writeDeduplicationRecord(db, request.scopedKey, record) }
            return decision.answer
        }
    }

    /// Records that the task holding `scopedKey` completed (as applying its `taskCompleted` does).
    public func recordCompleted(scopedKey: String, output: JSONValue, now: Date = Date()) async throws {
        try await pool.write { db in try Self.deduplicationCompleted(db, scopedKey, output: output, now: now) }
    }

    /// Records that the task holding `scopedKey` failed for good (as applying its final `taskFailed` does).
    public func recordFailed(scopedKey: String, runId: String, taskId: String, error: String, now: Date = Date()) async throws {
        try await pool.write { db in try Self.deduplicationFailed(db, scopedKey, runId: runId, taskId: taskId, error: error, now: now) }
    }

    private static func deduplicationCompleted(_ db: Database, _ key: String, output: JSONValue, now: Date) throws {
        if let record = DeduplicationRules.completed(try deduplicationRecord(db, key), output: output, now: now) {
            try writeDeduplicationRecord(db, key, record)
        }
    }

    private static func deduplicationFailed(_ db: Database, _ key: String, runId: String, taskId: String, error: String, now: Date) throws {
        if let record = DeduplicationRules.failed(try deduplicationRecord(db, key), runId: runId, taskId: taskId, error: error, now: now) {
            try writeDeduplicationRecord(db, key, record)
        }
    }

    private static func deduplicationRecord(_ db: Database, _ key: String) throws -> DeduplicationRecord? {
        guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM deduplication_keys WHERE scoped_key = ?"), arguments: [key]) else {
            return nil
        }
        guard let status = DeduplicationRecord.Status(rawValue: row["status"]) else {
            throw StoreError("deduplication key '\(key)' has an unknown status '\(row["status"] as String)'")
        }
        return DeduplicationRecord(runId: row["run_id"], taskId: row["task_id"], status: status, output: try decodeJSON(row["output"]),
                                   error: row["error"], claimedAt: Date(millisecondsSince1970: row["claimed_at"]),
                                   updatedAt: Date(millisecondsSince1970: row["updated_at"]))
    }

    private static func writeDeduplicationRecord(_ db: Database, _ key: String, _ record: DeduplicationRecord) throws {
        try db.cachedStatement(sql: """
            INSERT INTO deduplication_keys (scoped_key, run_id, task_id, status, output, error, claimed_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(scoped_key) DO UPDATE SET run_id = excluded.run_id, task_id = excluded.task_id, status = excluded.status,
                output = excluded.output, error = excluded.error, claimed_at = excluded.claimed_at, updated_at = excluded.updated_at
            """).execute(arguments: [key, record.runId, record.taskId, record.status.rawValue, try record.output.map(json), record.error,
                                     record.claimedAt.millisecondsSince1970, record.updatedAt.millisecondsSince1970])
    }

    /// The SQL list of terminal statuses, e.g. `('COMPLETED', 'FAILED', …)`, derived from
    /// `RunStatus.terminal` (constants, not user input).
    /// `(?, ?, …)`, one placeholder per terminal status (SQL text holds no values, only
    /// placeholders), and the statuses to bind to them.
    static let terminalPlaceholders = "(" + RunStatus.terminal.map { _ in "?" }.joined(separator: ", ") + ")"
    static let terminalArguments = StatementArguments(RunStatus.terminal.map(\.rawValue))

    /// A run that is queued or executing but has made no progress (see ``BatonDomain/StuckRun``).
    public typealias StuckRun = BatonDomain.StuckRun

    /// Runs queued or executing with no progress since before `cutoff` (waiting runs are not
    /// stuck: their timer or fetch is their progress; nor are runs waiting for a concurrency
    /// slot, or granted one since `cutoff`).
    public func stuckRuns(before cutoff: Date, limit: Int = 100) async throws -> [StuckRun] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT id, job_slug, job_version, status, updated_at, reissues FROM runs
                WHERE status IN ('QUEUED', 'EXECUTING') AND updated_at < ?
                    AND NOT EXISTS (SELECT 1 FROM concurrency_slots s WHERE s.run_id = runs.id AND (s.holding = 0 OR s.granted_at >= ?))
                ORDER BY updated_at LIMIT ?
                """), arguments: [cutoff.millisecondsSince1970, cutoff.millisecondsSince1970, limit]).map {
                StuckRun(runId: $0["id"], jobSlug: $0["job_slug"], jobVersion: $0["job_version"], status: RunStatus(rawValue: $0["status"]),
                         lastProgress: Date(millisecondsSince1970: $0["updated_at"]), reissues: $0["reissues"])
            }
        }
    }

    /// Records that a resume command was re-issued for a stuck run (its deadline starts again).
    public func recordReissue(runId: String, at now: Date = Date()) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "UPDATE runs SET reissues = reissues + 1, updated_at = ? WHERE id = ?").execute(arguments: [now.millisecondsSince1970, runId])
        }
    }

    /// Ends a stuck run as `TIMED_OUT` with `reason`, unless it made progress meanwhile.
    public func timeOut(runId: String, reason: String, lastProgress: Date, at now: Date = Date()) async throws {
        try await pool.write { db in
            try Self.execute(RunRules.timeOut(try Self.runState(db, runId: runId), seenWithProgress: lastProgress, reason: reason, at: now),
                             runId: runId, db)
        }
    }

    /// When the oldest run that has not ended was created, and how many runs have not ended;
    /// `nil` date when every run ended. A scan on a reader connection (WAL: writers go on).
    public func activeRuns() async throws -> (oldest: Date?, count: Int) {
        let terminal = RunStatus.terminal.map { "'\($0.rawValue)'" }.joined(separator: ",")
        return try await pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT MIN(created_at) AS oldest, COUNT(*) AS count FROM runs WHERE status NOT IN (\(terminal))")
            let oldest: Int64? = row?["oldest"]
            return (oldest.map(Date.init(millisecondsSince1970:)), row?["count"] ?? 0)
        }
    }

    /// A page of the runs `query` selects, newest first (by rowid: insertion order).
    public func listRuns(_ query: RunQuery) async throws -> RunIDPage {
        var sql = "SELECT rowid, id FROM runs WHERE project = ? AND environment = ?"
        var arguments: StatementArguments = [query.tenant.project, query.tenant.environment]
        if let job = query.jobSlug {
            sql += " AND job_slug = ?"
            arguments += [job]
        }
        if !query.statuses.isEmpty {
            sql += " AND status IN (" + query.statuses.map { _ in "?" }.joined(separator: ", ") + ")"
            arguments += StatementArguments(query.statuses.map(\.rawValue))
        }
        if let from = query.createdFrom {
            sql += " AND created_at >= ?"
            arguments += [from.millisecondsSince1970]
        }
        if let to = query.createdTo {
            sql += " AND created_at < ?"
            arguments += [to.millisecondsSince1970]
        }
        if let event = query.eventId {
            sql += " AND event_id = ?"
            arguments += [event]
        }
        if let after = query.after {
            sql += " AND rowid < ?"
            arguments += [after.sequence]
        }
        sql += " ORDER BY rowid DESC LIMIT ?"
        arguments += [query.limit + 1]
        let rows = try await pool.read { [sql, arguments] db in
            try Row.fetchAll(try db.cachedStatement(sql: sql), arguments: arguments).map { (sequence: $0[0] as Int64, id: $0[1] as String) }
        }
        let page = rows.prefix(query.limit)
        return RunIDPage(ids: page.map(\.id), next: rows.count > query.limit ? page.last.map { RunCursor(sequence: $0.sequence) } : nil)
    }

    /// One tenant's runs of job `slug`, counted by version and status.
    public func runCounts(tenant: Tenant, jobSlug: String) async throws -> [RunCount] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT job_version, status, COUNT(*) AS runs, MAX(created_at) AS last FROM runs
                WHERE project = ? AND environment = ? AND job_slug = ? GROUP BY job_version, status ORDER BY job_version, status
                """), arguments: [tenant.project, tenant.environment, jobSlug]).map {
                RunCount(jobVersion: $0["job_version"], status: RunStatus(rawValue: $0["status"]), count: $0["runs"],
                         lastCreatedAt: Date(millisecondsSince1970: $0["last"]))
            }
        }
    }

    /// How run `id` was created (its job, version and event).
    public func creation(ofRun id: String) async throws -> RunEvent.RunCreated? {
        try await pool.read { db in
            try Row.fetchOne(try db.cachedStatement(sql: """
                SELECT job_slug, job_version, event, replay_of, concurrency_queue, concurrency_limit FROM runs WHERE id = ?
                """), arguments: [id]).map {
                let queue: String? = $0["concurrency_queue"], limit: Int? = $0["concurrency_limit"]
                return RunEvent.RunCreated(jobSlug: $0["job_slug"], jobVersion: $0["job_version"],
                                           event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["event"] as String).utf8)),
                                           replayOf: $0["replay_of"], concurrency: queue.flatMap { queue in limit.map { ConcurrencySlot(queue: queue, limit: $0) } })
            }
        }
    }

    /// The tenant of run `id` (from its event), without loading its tasks and logs; `nil` for
    /// an unknown run.
    public func tenant(ofRun id: String) async throws -> Tenant? {
        try await pool.read { db in
            try String.fetchOne(try db.cachedStatement(sql: "SELECT event FROM runs WHERE id = ?"), arguments: [id]).map {
                try BatonJSON.decoder.decode(EventEnvelope.self, from: Data($0.utf8)).tenant
            }
        }
    }

    /// The run with `id`, its tasks and log lines.
    public func run(id: String) async throws -> RunDetails? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM runs WHERE id = ?"), arguments: [id]) else { return nil }
            let event = try BatonJSON.decoder.decode(EventEnvelope.self, from: Data((row["event"] as String).utf8))
            let tasks = try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM tasks WHERE run_id = ? ORDER BY rowid"), arguments: [id]).map { task in
                RunDetails.TaskDetails(
                    id: task["task_id"], key: task["key"], parentId: task["parent_task_id"], name: task["name"],
                    properties: try Self.decodeJSON(task["properties"]),
                    status: TaskStatus(rawValue: task["status"]), output: try Self.decodeJSON(task["output"]),
                    error: task["error"], attempts: task["attempts"],
                    startedAt: (task["started_at"] as Int64?).map(Date.init(millisecondsSince1970:)),
                    completedAt: (task["completed_at"] as Int64?).map(Date.init(millisecondsSince1970:)),
                    waitUntil: (task["wait_until"] as Int64?).map(Date.init(millisecondsSince1970:)))
            }
            let logs = try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM logs WHERE run_id = ? ORDER BY rowid"), arguments: [id]).map { line in
                RunDetails.LogLine(level: line["level"], message: line["message"], properties: try Self.decodeJSON(line["properties"]),
                                   loggedAt: Date(millisecondsSince1970: line["logged_at"]))
            }
            return RunDetails(
                id: id, jobId: row["job_slug"], jobVersion: row["job_version"], status: RunStatus(rawValue: row["status"]),
                output: try Self.decodeJSON(row["output"]), error: row["error"],
                event: .init(id: event.id, name: event.name, timestamp: event.timestamp),
                tasks: tasks, logs: logs,
                createdAt: Date(millisecondsSince1970: row["created_at"]), updatedAt: Date(millisecondsSince1970: row["updated_at"]),
                completedAt: (row["completed_at"] as Int64?).map(Date.init(millisecondsSince1970:)),
                tenant: event.tenant, replayOf: row["replay_of"], parentRun: event.parent)
        }
    }

    // MARK: - Requests to callback URLs

    public func receiveRequest(tokenHash: String, request: WaitedRequest, at now: Date) async throws -> RequestWaitAnswer {
        let body = try Self.json(request)
        return try await pool.write { db in
            let wait = try Row.fetchOne(try db.cachedStatement(sql: "SELECT run_id, task_id, timeout_at, received_at FROM request_waits WHERE token_hash = ?"),
                                        arguments: [tokenHash]).map {
                RequestWaitRecord(runId: $0["run_id"], taskId: $0["task_id"], timeoutAt: Date(millisecondsSince1970: $0["timeout_at"]),
                                  receivedAt: ($0["received_at"] as Int64?).map(Date.init(millisecondsSince1970:)))
            }
            let answer = RequestWaitRules.answer(wait, now: now)
            if case .accepted = answer {
                try db.cachedStatement(sql: "UPDATE request_waits SET received_at = ?, request = ? WHERE token_hash = ? AND received_at IS NULL")
                    .execute(arguments: [now.millisecondsSince1970, body, tokenHash])
            }
            return answer
        }
    }

    public func undeliveredRequests(before: Date, limit: Int) async throws -> [ReceivedRequest] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT token_hash, run_id, task_id, request FROM request_waits
                WHERE received_at IS NOT NULL AND delivered_at IS NULL AND received_at < ? ORDER BY received_at LIMIT ?
                """), arguments: [before.millisecondsSince1970, limit]).map {
                ReceivedRequest(tokenHash: $0["token_hash"], runId: $0["run_id"], taskId: $0["task_id"],
                                request: try BatonJSON.decoder.decode(WaitedRequest.self, from: Data(($0["request"] as String).utf8)))
            }
        }
    }

    public func markRequestsDelivered(tokenHashes: [String], at now: Date) async throws {
        try await pool.write { db in
            for hash in tokenHashes {
                try db.cachedStatement(sql: "UPDATE request_waits SET delivered_at = ? WHERE token_hash = ? AND delivered_at IS NULL")
                    .execute(arguments: [now.millisecondsSince1970, hash])
            }
        }
    }

    // MARK: - Helpers

    private static func completedTasks(_ db: Database, runId: String) throws -> [CompletedTask] {
        let tasks = try Row.fetchAll(try db.cachedStatement(sql: "SELECT task_id, key, output FROM tasks WHERE run_id = ? AND status = 'COMPLETED' ORDER BY rowid"),
                                     arguments: [runId]).map {
            CompletedTask(taskId: $0["task_id"], key: $0["key"], output: try decodeJSON($0["output"]) ?? .null)
        }
        let logs = try Row.fetchAll(try db.cachedStatement(sql: "SELECT task_id, message FROM logs WHERE run_id = ? ORDER BY rowid"), arguments: [runId]).map {
            CompletedTask(taskId: $0["task_id"], key: $0["message"], output: .null)
        }
        return tasks + logs
    }

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try BatonJSON.encoder.encode(value), as: UTF8.self)
    }

    private static func decodeJSON(_ text: String?) throws -> JSONValue? {
        guard let text else { return nil }
        return try BatonJSON.decoder.decode(JSONValue.self, from: Data(text.utf8))
    }
}
