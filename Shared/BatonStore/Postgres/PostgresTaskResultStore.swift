import BatonDomain
import BatonProtocol
import Foundation
import Logging
import PostgresNIO

/// The task-result service's state in PostgreSQL, shared by any number of instances: runs,
/// tasks and log lines (every change decided by ``RunRules``), timers, background fetches,
/// deduplication keys, consumed offsets, the broker binding and duty leases.
///
/// Instances write concurrently. A transaction that changes runs locks their rows first, in id
/// order (`SELECT … ORDER BY id FOR UPDATE`), so what it read stays true until it commits and
/// two instances never wait for each other in a cycle; PostgreSQL breaks any other deadlock by
/// aborting one transaction, which is then run again whole.
public struct PostgresTaskResultStore: RunStore, TimerStore, FetchStore, DeduplicationStore, PostgresServiceStore, AppliedProgressNotifying, RequestWaitStore, ConcurrencySlotStore {
    public let database: PostgresDatabase
    private let timers: PostgresTimerStore
    private let fetches: PostgresFetchStore
    private let deduplication: PostgresDeduplicationStore
    public let offsets: PostgresConsumedOffsetStore

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "task results v1 runs tasks logs", statements: [
            """
            CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                job_slug TEXT NOT NULL,
                job_version TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event TEXT NOT NULL,
                status TEXT NOT NULL,
                output TEXT,
                error TEXT,
                slices INTEGER NOT NULL DEFAULT 0,
                reissues INTEGER NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                completed_at BIGINT,
                trace_parent TEXT
            )
            """,
            "CREATE INDEX runs_by_event ON runs (event_id)",
            "CREATE INDEX runs_by_status ON runs (status, updated_at)",
            """
            CREATE TABLE tasks (
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                seq BIGSERIAL,
                key TEXT NOT NULL,
                parent_task_id TEXT,
                name TEXT,
                properties TEXT,
                status TEXT NOT NULL,
                output TEXT,
                error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                failures INTEGER NOT NULL DEFAULT 0,
                started_at BIGINT,
                completed_at BIGINT,
                wait_until BIGINT,
                PRIMARY KEY (run_id, task_id)
            )
            """,
            """
            CREATE TABLE logs (
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                seq BIGSERIAL,
                level TEXT NOT NULL,
                message TEXT NOT NULL,
                properties TEXT,
                logged_at BIGINT NOT NULL,
                PRIMARY KEY (run_id, task_id)
            )
            """,
            // Whether a finished fetch's run was sent its resume command.
            "ALTER TABLE fetches ADD COLUMN resumed BOOLEAN NOT NULL DEFAULT false",
            "CREATE INDEX fetches_to_resume ON fetches (run_id) WHERE done AND NOT resumed",
        ]),
    ] + PostgresSharedTables.migrations + [
        .init(id: "task results v2 run tenants and order", statements: [
            // The run's tenant as columns (from its event), so a list of one tenant's runs pages
            // in the database, and an insertion sequence, the list's order.
            "ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT 'default'",
            "ALTER TABLE runs ADD COLUMN environment TEXT NOT NULL DEFAULT 'default'",
            """
            UPDATE runs SET project = COALESCE(event::json->>'project', 'default'), environment = COALESCE(event::json->>'environment', 'default')
            """,
            "ALTER TABLE runs ADD COLUMN seq BIGSERIAL",
            "CREATE INDEX runs_by_tenant ON runs (project, environment, seq DESC)",
            // The run a replay replays.
            "ALTER TABLE runs ADD COLUMN replay_of TEXT",
        ]),
        // Waits for a request to a callback URL (`io.waitForRequest`), by their token's hash.
        .init(id: "task results v3 request waits", statements: [
            """
            CREATE TABLE request_waits (
                token_hash TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                timeout_at BIGINT NOT NULL,
                received_at BIGINT,
                request TEXT,
                delivered_at BIGINT
            )
            """,
            "CREATE INDEX request_waits_undelivered ON request_waits (received_at) WHERE received_at IS NOT NULL AND delivered_at IS NULL",
        ]),
        // A limited run's queue (see `ConcurrencyRules`), and the runs in each queue: waiting
        // (not `holding`, in `seq` order) or holding a slot (since `granted_at`). `seq` is never
        // reused: it names the grant's timer, which must be new each time.
        .init(id: "task results v4 concurrency slots", statements: [
            "ALTER TABLE runs ADD COLUMN concurrency_queue TEXT",
            "ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER",
            """
            CREATE TABLE concurrency_slots (
                run_id TEXT PRIMARY KEY,
                queue TEXT NOT NULL,
                lim INTEGER NOT NULL,
                holding BOOLEAN NOT NULL DEFAULT false,
                seq BIGSERIAL,
                queued_at BIGINT NOT NULL,
                granted_at BIGINT
            )
            """,
            "CREATE INDEX concurrency_slots_by_queue ON concurrency_slots (queue, holding, seq)",
        ]),
    ]

    /// Opens the store, applying its migrations.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await PostgresSharedTables.requireOwnDatabase(database, service: "task-result service", otherService: "run dispatcher",
                                                          otherMigration: PostgresDispatcherStore.migrations[0].id)
        self.timers = try await PostgresTimerStore(database: database)
        self.fetches = try await PostgresFetchStore(database: database)
        self.deduplication = try await PostgresDeduplicationStore(database: database)
        self.offsets = try await PostgresConsumedOffsetStore(database: database)
        try await database.migrate(Self.migrations)
    }

    // MARK: - Runs

    /// Applies a batch set-based: the rules are asked event by event (in order, with each run's
    /// status as the batch left it), and their writes are grouped into one statement per kind
    /// (runs created, task changes in waves, log lines, timers, fetches, ends, status changes),
    /// so a batch costs about a dozen statements whatever its size. Every statement is the
    /// set-based form of the write it groups (``execute(_:runId:_:_:)`` is the one-by-one form).
    public func apply(_ records: [ConsumedRunEvent]) async throws -> [String] {
        var next: [String: [Int32: Int64]] = [:]
        for record in records {
            next[record.topic, default: [:]][record.partition] = max(next[record.topic]?[record.partition] ?? 0, record.offset + 1)
        }
        let events = records.compactMap { record in record.event.map { (event: $0, traceParent: record.traceParent) } }
        return try await database.transaction { connection, logger in
            var statuses = try await Self.lockRuns(Set(events.map(\.event.runId)), connection, logger)
            // Runs created by this batch, first: later events of theirs need their status.
            // In the order of their events: the runs' insertion order is the runs list's order.
            var creations: [(id: String, created: RunEvent.RunCreated, traceParent: String?, at: Date)] = []
            var creating: Set<String> = []
            for (event, traceParent) in events where statuses[event.runId] == nil && !creating.contains(event.runId) {
                if case .runCreated(let created) = event.body {
                    creating.insert(event.runId)
                    creations.append((event.runId, created, traceParent, Date(millisecondsSince1970: event.occurredAt.millisecondsSince1970)))
                }
            }
            if !creations.isEmpty {
                let created = try await Self.createRuns(creations, connection, logger)
                for id in created { statuses[id] = .queued }
                // Created by another instance meanwhile: their locks are ours now.
                let others = creating.subtracting(created)
                for (id, status) in try await Self.lockRuns(others, connection, logger) { statuses[id] = status }
            }
            var plan = ApplyPlan()
            var unknown: [String] = []
            for (event, traceParent) in events {
                let status = statuses[event.runId]
                guard let writes = RunRules.apply(event, status: status, traceParent: traceParent) else {
                    unknown.append(event.runId)
                    continue
                }
                try plan.add(writes, runId: event.runId)
                statuses[event.runId] = RunRules.status(after: writes, from: status)
            }
            try await plan.execute(connection, logger)
            for (topic, partitions) in next { try await PostgresConsumedOffsetStore.advance(topic: topic, to: partitions, connection, logger) }
            // Delivered at commit: instances waiting at their read barrier look again.
            try await connection.query("SELECT pg_notify(\(Self.appliedChannel), '')", logger: logger)
            return unknown
        }
    }

    /// Inserts the runs of `creations` unless they exist, in order (their sequence numbers
    /// follow it); returns the ids it created.
    private static func createRuns(_ runs: [(id: String, created: RunEvent.RunCreated, traceParent: String?, at: Date)],
                                   _ connection: PostgresConnection, _ logger: Logger) async throws -> Set<String> {
        let events = try runs.map { try json($0.created.event) }
        let traces = nullable(runs.map(\.traceParent))
        let replays = nullable(runs.map(\.created.replayOf))
        let queues = nullable(runs.map(\.created.concurrency?.queue))
        let limits = runs.map { Int32($0.created.concurrency?.limit ?? 0) }
        var created: Set<String> = []
        for try await id in try await connection.query("""
            INSERT INTO runs (id, job_slug, job_version, event_id, event, status, created_at, updated_at, trace_parent, project, environment,
                              replay_of, concurrency_queue, concurrency_limit)
            SELECT id, slug, version, event_id, event, \(RunStatus.queued.rawValue), at, at, CASE WHEN no_trace THEN NULL ELSE trace_parent END,
                project, environment, CASE WHEN no_replay THEN NULL ELSE replay_of END,
                CASE WHEN no_queue THEN NULL ELSE queue END, CASE WHEN no_queue THEN NULL ELSE lim END
            FROM unnest(\(runs.map(\.id)), \(runs.map(\.created.jobSlug)), \(runs.map(\.created.jobVersion)),
                        \(runs.map(\.created.event.id)), \(events), \(runs.map { $0.at.millisecondsSince1970 }),
                        \(traces.values), \(traces.nulls), \(runs.map(\.created.event.tenant.project)),
                        \(runs.map(\.created.event.tenant.environment)), \(replays.values), \(replays.nulls),
                        \(queues.values), \(queues.nulls), \(limits))
                WITH ORDINALITY AS created(id, slug, version, event_id, event, at, trace_parent, no_trace, project, environment, replay_of, no_replay,
                                           queue, no_queue, lim, position)
            ORDER BY position
            ON CONFLICT (id) DO NOTHING RETURNING id
            """, logger: logger).decode(String.self) {
            created.insert(id)
        }
        return created
    }

    /// The writes of a batch, grouped into set-based statements (see ``apply(_:)``).
    private struct ApplyPlan {
        /// A task's first record and a change to it (a row of one wave of task upserts).
        struct TaskRow {
            var runId, taskId, key: String
            var parent, name: String?
            var status: TaskStatus
            var at: Date
            var change: RunWrite
        }

        /// Task changes in waves: the n-th change of each task goes in wave n, so no statement
        /// touches a row twice and each task's changes keep their order.
        var waves: [[TaskRow]] = []
        var changesPerTask: [String: Int] = [:]
        var logs: [(runId: String, taskId: String, level: String, message: String, properties: String?, at: Int64)] = []
        var timers: [(runId: String, taskId: String, dueAt: Int64)] = []
        /// Timers made due (every run end makes its parent notice due): one statement per batch.
        var timersDue: [(runId: String, taskId: String, at: Int64)] = []
        var fetches: [(runId: String, taskId: String, request: String, at: Int64)] = []
        var ends: [String: (status: RunStatus, output: String?, error: String?, at: Int64)] = [:]
        var statusChanges: [String: (status: RunStatus, at: Int64)] = [:]
        /// Runs joining their concurrency queue, runs giving their slot back and runs leaving
        /// the queue (after the joins).
        var slotsQueued: [(runId: String, slot: ConcurrencySlot)] = []
        var slotsReleased: Set<String> = []
        var queuesLeft: Set<String> = []
        /// Writes run one by one, after the grouped ones (rare: deduplication keys).
        var oneByOne: [(runId: String, write: RunWrite)] = []

        mutating func add(_ writes: [RunWrite], runId: String) throws {
            var index = writes.startIndex
            while index < writes.endIndex {
                let write = writes[index]
                index += 1
                switch write {
                case .createRun:
                    break  // created before the batch's other writes
                case .addTask(let taskId, let key, let parent, let name, let status, let at):
                    // The rules always follow a task's record with its change.
                    guard index < writes.endIndex else { throw StoreError("a task record without its change (rules changed?)") }
                    let row = TaskRow(runId: runId, taskId: taskId, key: key, parent: parent, name: name, status: status, at: at, change: writes[index])
                    index += 1
                    let wave = changesPerTask["\(runId)\u{0}\(taskId)", default: 0]
                    changesPerTask["\(runId)\u{0}\(taskId)"] = wave + 1
                    if waves.count <= wave { waves.append([]) }
                    waves[wave].append(row)
                case .addLog(let taskId, let level, let message, let properties, let at):
                    logs.append((runId, taskId, level, message, try properties.map(json), at.millisecondsSince1970))
                case .scheduleTimer(let taskId, let dueAt):
                    timers.append((runId, taskId, dueAt.millisecondsSince1970))
                case .scheduleFetch(let taskId, let request, let at):
                    fetches.append((runId, taskId, try json(request), at.millisecondsSince1970))
                case .makeTimerDue(let taskId, let at):
                    timersDue.append((runId, taskId, at.millisecondsSince1970))
                case .setStatus(let status, let at):
                    statusChanges[runId] = (status, at.millisecondsSince1970)
                case .finish(let status, let output, let error, let at):
                    // The end supersedes any status change before it.
                    statusChanges[runId] = nil
                    ends[runId] = (status, try output.map(json), error, at.millisecondsSince1970)
                case .queueForSlot(let slot):
                    slotsQueued.append((runId, slot))
                case .releaseSlot:
                    slotsReleased.insert(runId)
                case .leaveQueue:
                    queuesLeft.insert(runId)
                default:
                    oneByOne.append((runId, write))
                }
            }
        }

        func execute(_ connection: PostgresConnection, _ logger: Logger) async throws {
            for wave in waves { try await PostgresTaskResultStore.upsertTasks(wave, connection, logger) }
            if !logs.isEmpty {
                try await connection.query("""
                    INSERT INTO logs (run_id, task_id, level, message, properties, logged_at)
                    SELECT run_id, task_id, level, message, CASE WHEN no_properties THEN NULL ELSE properties END, at
                    FROM unnest(\(logs.map(\.runId)), \(logs.map(\.taskId)), \(logs.map(\.level)), \(logs.map(\.message)),
                                \(nullable(logs.map(\.properties)).values), \(nullable(logs.map(\.properties)).nulls), \(logs.map(\.at)))
                        AS l(run_id, task_id, level, message, properties, no_properties, at)
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            }
            if !timers.isEmpty {
                try await connection.query("""
                    INSERT INTO timers (run_id, task_id, due_at)
                    SELECT * FROM unnest(\(timers.map(\.runId)), \(timers.map(\.taskId)), \(timers.map(\.dueAt)))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            }
            if !timersDue.isEmpty {
                // After the inserts: a child created and ended in one batch finds its notice.
                try await connection.query("""
                    UPDATE timers SET due_at = d.at
                    FROM unnest(\(timersDue.map(\.runId)), \(timersDue.map(\.taskId)), \(timersDue.map(\.at))) AS d(run_id, task_id, at)
                    WHERE timers.run_id = d.run_id AND timers.task_id = d.task_id AND NOT timers.fired
                    """, logger: logger)
            }
            if !fetches.isEmpty {
                try await connection.query("""
                    INSERT INTO fetches (run_id, task_id, request, next_attempt_at)
                    SELECT * FROM unnest(\(fetches.map(\.runId)), \(fetches.map(\.taskId)), \(fetches.map(\.request)), \(fetches.map(\.at)))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            }
            if !ends.isEmpty {
                let ended = ends.sorted { $0.key < $1.key }
                // An ended run's fetches are never performed.
                try await connection.query("""
                    WITH ended AS (
                        UPDATE runs SET status = e.status, output = CASE WHEN e.no_output THEN NULL ELSE e.output END,
                            error = CASE WHEN e.no_error THEN NULL ELSE e.error END, updated_at = e.at, completed_at = e.at
                        FROM unnest(\(ended.map(\.key)), \(ended.map(\.value.status.rawValue)),
                                    \(nullable(ended.map(\.value.output)).values), \(nullable(ended.map(\.value.output)).nulls),
                                    \(nullable(ended.map(\.value.error)).values), \(nullable(ended.map(\.value.error)).nulls), \(ended.map(\.value.at)))
                            AS e(id, status, output, no_output, error, no_error, at)
                        WHERE runs.id = e.id RETURNING runs.id
                    )
                    UPDATE fetches SET run_ended = true WHERE run_id IN (SELECT id FROM ended)
                    """, logger: logger)
            }
            if !statusChanges.isEmpty {
                let changes = statusChanges.sorted { $0.key < $1.key }
                try await connection.query("""
                    UPDATE runs SET status = change.status, updated_at = change.at
                    FROM unnest(\(changes.map(\.key)), \(changes.map(\.value.status.rawValue)), \(changes.map(\.value.at)))
                        AS change(id, status, at)
                    WHERE runs.id = change.id
                    """, logger: logger)
            }
            if !slotsQueued.isEmpty {
                // In the batch's order: the queue's order.
                try await connection.query("""
                    INSERT INTO concurrency_slots (run_id, queue, lim, queued_at)
                    SELECT run_id, queue, lim, \(Date().millisecondsSince1970)
                    FROM unnest(\(slotsQueued.map(\.runId)), \(slotsQueued.map(\.slot.queue)), \(slotsQueued.map { Int32($0.slot.limit) }))
                        WITH ORDINALITY AS q(run_id, queue, lim, position)
                    ORDER BY position
                    ON CONFLICT (run_id) DO NOTHING
                    """, logger: logger)
            }
            if !slotsReleased.isEmpty {
                try await connection.query("DELETE FROM concurrency_slots WHERE run_id = ANY(\(slotsReleased.sorted())) AND holding", logger: logger)
            }
            if !queuesLeft.isEmpty {
                try await connection.query("DELETE FROM concurrency_slots WHERE run_id = ANY(\(queuesLeft.sorted()))", logger: logger)
            }
            for (runId, write) in oneByOne {
                try await PostgresTaskResultStore.execute([write], runId: runId, connection, logger)
            }
        }
    }

    /// One wave of task records and changes (each task at most once), a statement per kind of
    /// change: each the set-based form of ``RunWrite/addTask(taskId:key:parentTaskId:name:status:at:)``
    /// followed by the change, in one `INSERT … ON CONFLICT DO UPDATE`.
    private static func upsertTasks(_ rows: [ApplyPlan.TaskRow], _ connection: PostgresConnection, _ logger: Logger) async throws {
        var starts: [(ApplyPlan.TaskRow, attempt: Int, name: String?, properties: String?)] = []
        var completions: [(ApplyPlan.TaskRow, output: String, attempts: Int, at: Int64)] = []
        var failures: [(ApplyPlan.TaskRow, error: String, attempt: Int)] = []
        var waits: [(ApplyPlan.TaskRow, until: Int64)] = []
        for row in rows {
            switch row.change {
            case .startAttempt(row.taskId, let attempt, let name, let properties):
                starts.append((row, attempt, name ?? row.name, try properties.map(json)))
            case .completeTask(row.taskId, let output, .atLeast(let attempts), let at):
                completions.append((row, try json(output), attempts, at.millisecondsSince1970))
            case .failAttempt(row.taskId, let error, let attempt):
                failures.append((row, error, attempt))
            case .setWaitUntil(row.taskId, let until):
                waits.append((row, until.millisecondsSince1970))
            default:
                // Not a change the set-based statements know: one by one.
                try await execute([.addTask(taskId: row.taskId, key: row.key, parentTaskId: row.parent, name: row.name, status: row.status, at: row.at),
                                   row.change], runId: row.runId, connection, logger)
            }
        }
        if !starts.isEmpty {
            try await connection.query("""
                INSERT INTO tasks (run_id, task_id, key, parent_task_id, name, properties, status, attempts, started_at)
                SELECT run_id, task_id, key, CASE WHEN no_parent THEN NULL ELSE parent END, CASE WHEN no_name THEN NULL ELSE name END,
                    CASE WHEN no_properties THEN NULL ELSE properties END, 'RUNNING', attempts, started
                FROM unnest(\(starts.map(\.0.runId)), \(starts.map(\.0.taskId)), \(starts.map(\.0.key)),
                            \(nullable(starts.map(\.0.parent)).values), \(nullable(starts.map(\.0.parent)).nulls),
                            \(nullable(starts.map(\.name)).values), \(nullable(starts.map(\.name)).nulls),
                            \(nullable(starts.map(\.properties)).values), \(nullable(starts.map(\.properties)).nulls),
                            \(starts.map { Int32(max(0, $0.attempt)) }), \(starts.map(\.0.at.millisecondsSince1970)))
                    AS s(run_id, task_id, key, parent, no_parent, name, no_name, properties, no_properties, attempts, started)
                ON CONFLICT (run_id, task_id) DO UPDATE SET attempts = GREATEST(tasks.attempts, EXCLUDED.attempts),
                    name = COALESCE(EXCLUDED.name, tasks.name), properties = COALESCE(EXCLUDED.properties, tasks.properties), status = 'RUNNING'
                WHERE tasks.status != 'COMPLETED'
                """, logger: logger)
        }
        if !completions.isEmpty {
            try await connection.query("""
                INSERT INTO tasks (run_id, task_id, key, parent_task_id, name, status, output, attempts, started_at, completed_at)
                SELECT run_id, task_id, key, CASE WHEN no_parent THEN NULL ELSE parent END, CASE WHEN no_name THEN NULL ELSE name END,
                    'COMPLETED', output, attempts, started, completed
                FROM unnest(\(completions.map(\.0.runId)), \(completions.map(\.0.taskId)), \(completions.map(\.0.key)),
                            \(nullable(completions.map(\.0.parent)).values), \(nullable(completions.map(\.0.parent)).nulls),
                            \(nullable(completions.map(\.0.name)).values), \(nullable(completions.map(\.0.name)).nulls), \(completions.map(\.output)),
                            \(completions.map { Int32(max(0, $0.attempts)) }), \(completions.map(\.0.at.millisecondsSince1970)), \(completions.map(\.at)))
                    AS c(run_id, task_id, key, parent, no_parent, name, no_name, output, attempts, started, completed)
                ON CONFLICT (run_id, task_id) DO UPDATE SET status = 'COMPLETED', output = EXCLUDED.output, error = NULL,
                    completed_at = EXCLUDED.completed_at, attempts = GREATEST(tasks.attempts, EXCLUDED.attempts)
                WHERE tasks.status != 'COMPLETED'
                """, logger: logger)
        }
        if !failures.isEmpty {
            try await connection.query("""
                INSERT INTO tasks (run_id, task_id, key, parent_task_id, name, status, error, attempts, failures, started_at)
                SELECT run_id, task_id, key, CASE WHEN no_parent THEN NULL ELSE parent END, CASE WHEN no_name THEN NULL ELSE name END,
                    'ERRORED', error, attempts, attempts, started
                FROM unnest(\(failures.map(\.0.runId)), \(failures.map(\.0.taskId)), \(failures.map(\.0.key)),
                            \(nullable(failures.map(\.0.parent)).values), \(nullable(failures.map(\.0.parent)).nulls),
                            \(nullable(failures.map(\.0.name)).values), \(nullable(failures.map(\.0.name)).nulls), \(failures.map(\.error)),
                            \(failures.map { Int32(max(0, $0.attempt)) }), \(failures.map(\.0.at.millisecondsSince1970)))
                    AS f(run_id, task_id, key, parent, no_parent, name, no_name, error, attempts, started)
                ON CONFLICT (run_id, task_id) DO UPDATE SET status = 'ERRORED', error = EXCLUDED.error,
                    attempts = GREATEST(tasks.attempts, EXCLUDED.attempts), failures = GREATEST(tasks.failures, EXCLUDED.failures)
                WHERE tasks.status != 'COMPLETED'
                """, logger: logger)
        }
        if !waits.isEmpty {
            try await connection.query("""
                INSERT INTO tasks (run_id, task_id, key, parent_task_id, name, status, attempts, started_at, wait_until)
                SELECT run_id, task_id, key, CASE WHEN no_parent THEN NULL ELSE parent END, CASE WHEN no_name THEN NULL ELSE name END,
                    status, 1, started, until
                FROM unnest(\(waits.map(\.0.runId)), \(waits.map(\.0.taskId)), \(waits.map(\.0.key)),
                            \(nullable(waits.map(\.0.parent)).values), \(nullable(waits.map(\.0.parent)).nulls),
                            \(nullable(waits.map(\.0.name)).values), \(nullable(waits.map(\.0.name)).nulls), \(waits.map(\.0.status.rawValue)),
                            \(waits.map(\.0.at.millisecondsSince1970)), \(waits.map(\.until)))
                    AS w(run_id, task_id, key, parent, no_parent, name, no_name, status, started, until)
                ON CONFLICT (run_id, task_id) DO UPDATE SET wait_until = COALESCE(tasks.wait_until, EXCLUDED.wait_until), attempts = 1
                """, logger: logger)
        }
    }

    /// Locks the rows of the known runs among `ids`, in id order, and returns their statuses.
    private static func lockRuns(_ ids: Set<String>, _ connection: PostgresConnection, _ logger: Logger) async throws -> [String: RunStatus] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await connection.query("SELECT id, status FROM runs WHERE id = ANY(\(ids.sorted())) ORDER BY id FOR UPDATE", logger: logger)
        var statuses: [String: RunStatus] = [:]
        for try await (id, status) in rows.decode((String, String).self) { statuses[id] = RunStatus(rawValue: status) }
        return statuses
    }

    /// The concurrency queues of the limited runs among `ids`.
    private static func concurrencySlots(_ ids: Set<String>, _ connection: PostgresConnection, _ logger: Logger) async throws -> [String: ConcurrencySlot] {
        guard !ids.isEmpty else { return [:] }
        var slots: [String: ConcurrencySlot] = [:]
        for try await (id, queue, limit) in try await connection.query("""
            SELECT id, concurrency_queue, concurrency_limit FROM runs WHERE id = ANY(\(ids.sorted())) AND concurrency_queue IS NOT NULL
            """, logger: logger).decode((String, String, Int32).self) {
            slots[id] = ConcurrencySlot(queue: queue, limit: Int(limit))
        }
        return slots
    }

    /// The locked run's state (see ``lockRuns(_:_:_:)``).
    private static func lockedState(_ runId: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> RunState? {
        let rows = try await connection.query("SELECT status, updated_at FROM runs WHERE id = \(runId) FOR UPDATE", logger: logger)
        for try await (status, updatedAt) in rows.decode((String, Int64).self) {
            return RunState(status: RunStatus(rawValue: status), lastProgress: Date(millisecondsSince1970: updatedAt))
        }
        return nil
    }

    /// Performs `writes` (decided by ``RunRules``) on run `runId`; `true` when they created it.
    @discardableResult
    private static func execute(_ writes: [RunWrite], runId: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> Bool {
        var created = false
        for write in writes {
            switch write {
            case .createRun(let run, let traceParent, let at):
                let rows = try await connection.query("""
                    INSERT INTO runs (id, job_slug, job_version, event_id, event, status, created_at, updated_at, trace_parent, project, environment,
                                      replay_of, concurrency_queue, concurrency_limit)
                    VALUES (\(runId), \(run.jobSlug), \(run.jobVersion), \(run.event.id), \(try json(run.event)), \(RunStatus.queued.rawValue),
                            \(at.millisecondsSince1970), \(at.millisecondsSince1970), \(traceParent), \(run.event.tenant.project),
                            \(run.event.tenant.environment), \(run.replayOf), \(run.concurrency?.queue), \(run.concurrency.map { Int32($0.limit) }))
                    ON CONFLICT (id) DO NOTHING RETURNING id
                    """, logger: logger)
                for try await _ in rows.decode(String.self) { created = true }
            case .addTask(let taskId, let key, let parent, let name, let status, let at):
                try await connection.query("""
                    INSERT INTO tasks (run_id, task_id, key, parent_task_id, name, status, started_at)
                    VALUES (\(runId), \(taskId), \(key), \(parent), \(name), \(status.rawValue), \(at.millisecondsSince1970))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            case .startAttempt(let taskId, let attempt, let name, let properties):
                try await connection.query("""
                    UPDATE tasks SET attempts = GREATEST(attempts, \(attempt)), name = COALESCE(\(name), name),
                        properties = COALESCE(\(try properties.map(json)), properties), status = 'RUNNING'
                    WHERE run_id = \(runId) AND task_id = \(taskId) AND status != 'COMPLETED'
                    """, logger: logger)
            case .completeTask(let taskId, let output, let attempts, let at):
                let (minimum, exact): (Int, Int?) = switch attempts {
                case .atLeast(let count): (count, nil)
                case .exactly(let count): (count, count)
                }
                try await connection.query("""
                    UPDATE tasks SET status = 'COMPLETED', output = \(try json(output)), error = NULL, completed_at = \(at.millisecondsSince1970),
                        attempts = COALESCE(\(exact), GREATEST(attempts, \(minimum)))
                    WHERE run_id = \(runId) AND task_id = \(taskId) AND status != 'COMPLETED'
                    """, logger: logger)
            case .failAttempt(let taskId, let error, let attempt):
                try await connection.query("""
                    UPDATE tasks SET status = 'ERRORED', error = \(error), attempts = GREATEST(attempts, \(attempt)), failures = GREATEST(failures, \(attempt))
                    WHERE run_id = \(runId) AND task_id = \(taskId) AND status != 'COMPLETED'
                    """, logger: logger)
            case .setWaitUntil(let taskId, let until):
                try await connection.query("""
                    UPDATE tasks SET wait_until = COALESCE(wait_until, \(until.millisecondsSince1970)), attempts = 1
                    WHERE run_id = \(runId) AND task_id = \(taskId)
                    """, logger: logger)
            case .scheduleTimer(let taskId, let dueAt):
                try await connection.query("""
                    INSERT INTO timers (run_id, task_id, due_at) VALUES (\(runId), \(taskId), \(dueAt.millisecondsSince1970))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            case .scheduleFetch(let taskId, let request, let at):
                try await connection.query("""
                    INSERT INTO fetches (run_id, task_id, request, next_attempt_at) VALUES (\(runId), \(taskId), \(try json(request)), \(at.millisecondsSince1970))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            case .addLog(let taskId, let level, let message, let properties, let at):
                try await connection.query("""
                    INSERT INTO logs (run_id, task_id, level, message, properties, logged_at)
                    VALUES (\(runId), \(taskId), \(level), \(message), \(try properties.map(json)), \(at.millisecondsSince1970))
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
            case .setStatus(let status, let at):
                try await connection.query("UPDATE runs SET status = \(status.rawValue), updated_at = \(at.millisecondsSince1970) WHERE id = \(runId)", logger: logger)
            case .finish(let status, let output, let error, let at):
                // An ended run's fetches are never performed.
                try await connection.query("""
                    WITH ended AS (
                        UPDATE runs SET status = \(status.rawValue), output = \(try output.map(json)), error = \(error),
                            updated_at = \(at.millisecondsSince1970), completed_at = \(at.millisecondsSince1970)
                        WHERE id = \(runId) RETURNING id
                    )
                    UPDATE fetches SET run_ended = true WHERE run_id IN (SELECT id FROM ended)
                    """, logger: logger)
            case .deduplicationCompleted(let key, let output, let at):
                if let record = DeduplicationRules.completed(
                    try await PostgresDeduplicationStore.lockedRecord(key, placeholder: false, connection, logger), output: output, now: at) {
                    try await PostgresDeduplicationStore.write(key, record, connection, logger)
                }
            case .deduplicationFailed(let key, let taskId, let error, let at):
                if let record = DeduplicationRules.failed(
                    try await PostgresDeduplicationStore.lockedRecord(key, placeholder: false, connection, logger),
                    runId: runId, taskId: taskId, error: error, now: at) {
                    try await PostgresDeduplicationStore.write(key, record, connection, logger)
                }
            case .dropTimers:
                try await connection.query(
                    "UPDATE timers SET fired = true WHERE run_id = \(runId) AND NOT fired AND task_id <> \(RunRules.parentNoticeTimerID)", logger: logger)
            case .setTaskProperties(let taskId, let properties):
                try await connection.query(
                    "UPDATE tasks SET properties = COALESCE(properties, \(try json(properties))) WHERE run_id = \(runId) AND task_id = \(taskId)",
                    logger: logger)
            case .registerRequestWait(let taskId, let tokenHash, let timeoutAt):
                try await connection.query("""
                    INSERT INTO request_waits (token_hash, run_id, task_id, timeout_at) VALUES (\(tokenHash), \(runId), \(taskId), \(timeoutAt.millisecondsSince1970))
                    ON CONFLICT (token_hash) DO NOTHING
                    """, logger: logger)
            case .dropTimer(let taskId):
                try await connection.query("UPDATE timers SET fired = true WHERE run_id = \(runId) AND task_id = \(taskId) AND NOT fired", logger: logger)
            case .makeTimerDue(let taskId, let at):
                try await connection.query(
                    "UPDATE timers SET due_at = \(at.millisecondsSince1970) WHERE run_id = \(runId) AND task_id = \(taskId) AND NOT fired",
                    logger: logger)
            case .queueForSlot(let slot):
                try await connection.query("""
                    INSERT INTO concurrency_slots (run_id, queue, lim, queued_at) VALUES (\(runId), \(slot.queue), \(Int32(slot.limit)), \(Date().millisecondsSince1970))
                    ON CONFLICT (run_id) DO NOTHING
                    """, logger: logger)
            case .releaseSlot:
                try await connection.query("DELETE FROM concurrency_slots WHERE run_id = \(runId) AND holding", logger: logger)
            case .leaveQueue:
                try await connection.query("DELETE FROM concurrency_slots WHERE run_id = \(runId)", logger: logger)
            }
        }
        return created
    }

    /// Reads the checkpoints of `runIds` set-based: four statements whatever their number (lock
    /// in id order, count the slices, read the tasks and log lines of all of them).
    public func checkpoints(runIds: [String]) async throws -> [RunCheckpoint] {
        guard !runIds.isEmpty else { return [] }
        var occurrences: [String: Int] = [:]
        for id in runIds { occurrences[id, default: 0] += 1 }
        let ids = occurrences.keys.sorted()
        return try await database.transaction { connection, logger in
            _ = try await Self.lockRuns(Set(ids), connection, logger)
            // Each id counts a slice per occurrence, unless its run ended.
            var runs: [String: (status: RunStatus, slices: Int)] = [:]
            for try await (id, status, slices) in try await connection.query("""
                UPDATE runs SET slices = runs.slices + CASE WHEN runs.status = ANY(\(RunStatus.terminal.map(\.rawValue))) THEN 0 ELSE counted.n END
                FROM unnest(\(ids), \(ids.map { Int32(occurrences[$0]!) })) AS counted(id, n)
                WHERE runs.id = counted.id RETURNING runs.id, runs.status, runs.slices
                """, logger: logger).decode((String, String, Int32).self) {
                runs[id] = (RunStatus(rawValue: status), Int(slices))
            }
            let progress = try await Self.progress(Array(runs.keys), connection, logger)
            var seen: [String: Int] = [:]
            return runIds.map { runId in
                guard let run = runs[runId] else { return RunCheckpoint(runId: runId, status: nil, completedTasks: []) }
                let occurrence = seen[runId, default: 0]
                seen[runId] = occurrence + 1
                // The n occurrences of a live run are its last n slices, in order.
                let slice = run.status.isTerminal ? run.slices : run.slices - occurrences[runId]! + occurrence + 1
                return RunCheckpoint(runId: runId, status: run.status, completedTasks: progress[runId]?.completed ?? [],
                                     failedAttempts: progress[runId]?.failed ?? [:], slice: slice)
            }
        }
    }

    /// The run's completed tasks and log lines (a log line counts as a completed task keyed by
    /// its message), in the order they were first recorded: tasks, then log lines.
    private static func completedTasks(_ runId: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> [CompletedTask] {
        try await progress([runId], connection, logger)[runId]?.completed ?? []
    }

    /// Each run's completed tasks (as ``completedTasks(_:_:_:)``) and the failed attempts of its
    /// tasks that have not completed, in one query for all of `runIds`.
    private static func progress(_ runIds: [String], _ connection: PostgresConnection,
                                 _ logger: Logger) async throws -> [String: (completed: [CompletedTask], failed: [String: Int])] {
        guard !runIds.isEmpty else { return [:] }
        var tasks: [String: [CompletedTask]] = [:]
        var logs: [String: [CompletedTask]] = [:]
        var failed: [String: [String: Int]] = [:]
        for try await (runId, source, taskId, key, output, completed, failures) in try await connection.query("""
            SELECT * FROM (
                SELECT run_id, 0 AS source, task_id, key, output, status = 'COMPLETED' AS completed, failures, seq FROM tasks
                WHERE run_id = ANY(\(runIds)) AND (status = 'COMPLETED' OR failures > 0)
                UNION ALL
                SELECT run_id, 1, task_id, message, NULL, true, 0, seq FROM logs WHERE run_id = ANY(\(runIds))
            ) AS progress ORDER BY run_id, source, seq
            """, logger: logger).decode((String, Int32, String, String, String?, Bool, Int32).self) {
            if source == 1 {
                logs[runId, default: []].append(CompletedTask(taskId: taskId, key: key, output: .null))
            } else if completed {
                tasks[runId, default: []].append(CompletedTask(taskId: taskId, key: key, output: try decodeJSON(output) ?? .null))
            } else {
                failed[runId, default: [:]][taskId] = Int(failures)
            }
        }
        var progress: [String: (completed: [CompletedTask], failed: [String: Int])] = [:]
        for runId in runIds { progress[runId] = ((tasks[runId] ?? []) + (logs[runId] ?? []), failed[runId] ?? [:]) }
        return progress
    }

    public func resumeCommand(runId: String, counting taskId: String?) async throws -> RunCommand? {
        try await database.client.withConnection { connection in
            try await Self.resumeCommand(runId: runId, counting: taskId, connection, database.logger)
        }
    }

    private static func resumeCommand(runId: String, counting taskId: String? = nil, _ connection: PostgresConnection,
                                      _ logger: Logger) async throws -> RunCommand? {
        var run: (slug: String, version: String, event: String, status: String, queue: String?, holding: Int64?)?
        for try await row in try await connection.query("""
            SELECT job_slug, job_version, event, status, concurrency_queue,
                (SELECT seq FROM concurrency_slots WHERE run_id = runs.id AND holding) FROM runs WHERE id = \(runId)
            """, logger: logger).decode((String, String, String, String, String?, Int64?).self) {
            run = row
        }
        // A limited run goes on only with its slot (see `ConcurrencyRules`).
        guard let run, !RunStatus(rawValue: run.status).isTerminal,
              run.queue == nil || ConcurrencyRules.resumes(timer: taskId, holdingSequence: run.holding) else { return nil }
        var completed = try await completedTasks(runId, connection, logger)
        if let taskId, !completed.contains(where: { $0.taskId == taskId }) {
            for try await key in try await connection.query("SELECT key FROM tasks WHERE run_id = \(runId) AND task_id = \(taskId)", logger: logger)
                .decode(String.self) {
                completed.append(CompletedTask(taskId: taskId, key: key, output: .null))
            }
        }
        return RunCommand(kind: .resume, runId: runId, jobSlug: run.slug, jobVersion: run.version,
                          event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(run.event.utf8)), completedTasks: completed)
    }

    public func traceParent(runId: String) async throws -> String? {
        for try await value in try await database.client.query("SELECT trace_parent FROM runs WHERE id = \(runId)", logger: database.logger)
            .decode(String?.self) {
            return value
        }
        return nil
    }

    public func cancel(runId: String, at now: Date) async throws -> RunRules.Cancellation? {
        try await database.transaction { connection, logger in
            let cancellation = RunRules.cancel(status: try await Self.lockedState(runId, connection, logger)?.status, at: now)
            if let cancellation { try await Self.execute(cancellation.writes, runId: runId, connection, logger) }
            return cancellation
        }
    }

    public func stuckRuns(before cutoff: Date, limit: Int) async throws -> [StuckRun] {
        var stuck: [StuckRun] = []
        for try await (id, slug, version, status, updatedAt, reissues) in try await database.client.query("""
            SELECT id, job_slug, job_version, status, updated_at, reissues FROM runs
            WHERE status IN ('QUEUED', 'EXECUTING') AND updated_at < \(cutoff.millisecondsSince1970)
                AND NOT EXISTS (SELECT 1 FROM concurrency_slots s WHERE s.run_id = runs.id
                                AND (NOT s.holding OR s.granted_at >= \(cutoff.millisecondsSince1970)))
            ORDER BY updated_at LIMIT \(limit)
            """, logger: database.logger).decode((String, String, String, String, Int64, Int32).self) {
            stuck.append(StuckRun(runId: id, jobSlug: slug, jobVersion: version, status: RunStatus(rawValue: status),
                                  lastProgress: Date(millisecondsSince1970: updatedAt), reissues: Int(reissues)))
        }
        return stuck
    }

    public func recordReissue(runId: String, at now: Date) async throws {
        try await database.client.query("UPDATE runs SET reissues = reissues + 1, updated_at = \(now.millisecondsSince1970) WHERE id = \(runId)",
                                        logger: database.logger)
    }

    public func timeOut(runId: String, reason: String, lastProgress: Date, at now: Date) async throws {
        _ = try await database.transaction { connection, logger in
            try await Self.execute(RunRules.timeOut(try await Self.lockedState(runId, connection, logger), seenWithProgress: lastProgress,
                                                    reason: reason, at: now),
                                   runId: runId, connection, logger)
        }
    }

    public func activeRuns() async throws -> (oldest: Date?, count: Int) {
        for try await (oldest, count) in try await database.client.query("""
            SELECT MIN(created_at), COUNT(*) FROM runs WHERE NOT (status = ANY(\(RunStatus.terminal.map(\.rawValue))))
            """, logger: database.logger).decode((Int64?, Int64).self) {
            return (oldest.map(Date.init(millisecondsSince1970:)), Int(count))
        }
        return (nil, 0)
    }

    public func listRuns(_ query: RunQuery) async throws -> RunIDPage {
        var binds = PostgresBindings()
        var sql = "SELECT seq, id FROM runs WHERE project = $1 AND environment = $2"
        binds.append(query.tenant.project)
        binds.append(query.tenant.environment)
        func condition(_ text: String, _ value: some PostgresDynamicTypeEncodable) {
            binds.append(value)
            sql += " AND " + text.replacingOccurrences(of: "?", with: "$\(binds.count)")
        }
        if let job = query.jobSlug { condition("job_slug = ?", job) }
        if !query.statuses.isEmpty { condition("status = ANY(?)", query.statuses.map(\.rawValue)) }
        if let from = query.createdFrom { condition("created_at >= ?", from.millisecondsSince1970) }
        if let to = query.createdTo { condition("created_at < ?", to.millisecondsSince1970) }
        if let event = query.eventId { condition("event_id = ?", event) }
        if let after = query.after { condition("seq < ?", after.sequence) }
        binds.append(query.limit + 1)
        sql += " ORDER BY seq DESC LIMIT $\(binds.count)"
        var rows: [(sequence: Int64, id: String)] = []
        for try await row in try await database.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: database.logger)
            .decode((Int64, String).self) {
            rows.append(row)
        }
        let page = rows.prefix(query.limit)
        return RunIDPage(ids: page.map(\.id), next: rows.count > query.limit ? page.last.map { RunCursor(sequence: $0.sequence) } : nil)
    }

    public func runCounts(tenant: Tenant, jobSlug: String) async throws -> [RunCount] {
        var counts: [RunCount] = []
        for try await (version, status, runs, last) in try await database.client.query("""
            SELECT job_version, status, COUNT(*), MAX(created_at) FROM runs
            WHERE project = \(tenant.project) AND environment = \(tenant.environment) AND job_slug = \(jobSlug)
            GROUP BY job_version, status ORDER BY job_version, status
            """, logger: database.logger).decode((String, String, Int64, Int64).self) {
            counts.append(RunCount(jobVersion: version, status: RunStatus(rawValue: status), count: Int(runs),
                                   lastCreatedAt: Date(millisecondsSince1970: last)))
        }
        return counts
    }

    public func creation(ofRun id: String) async throws -> RunEvent.RunCreated? {
        for try await (slug, version, event, replayOf, queue, limit) in try await database.client.query("""
            SELECT job_slug, job_version, event, replay_of, concurrency_queue, concurrency_limit FROM runs WHERE id = \(id)
            """, logger: database.logger).decode((String, String, String, String?, String?, Int32?).self) {
            return RunEvent.RunCreated(jobSlug: slug, jobVersion: version,
                                       event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)), replayOf: replayOf,
                                       concurrency: queue.flatMap { queue in limit.map { ConcurrencySlot(queue: queue, limit: Int($0)) } })
        }
        return nil
    }

    public func tenant(ofRun id: String) async throws -> Tenant? {
        for try await event in try await database.client.query("SELECT event FROM runs WHERE id = \(id)", logger: database.logger).decode(String.self) {
            return try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)).tenant
        }
        return nil
    }

    public func run(id: String) async throws -> RunDetails? {
        try await database.client.withConnection { connection in
            let logger = database.logger
            var found: (slug: String, version: String, status: String, output: String?, error: String?, event: String,
                        created: Int64, updated: Int64, completed: Int64?, replayOf: String?)?
            for try await row in try await connection.query("""
                SELECT job_slug, job_version, status, output, error, event, created_at, updated_at, completed_at, replay_of FROM runs WHERE id = \(id)
                """, logger: logger).decode((String, String, String, String?, String?, String, Int64, Int64, Int64?, String?).self) {
                found = row
            }
            guard let run = found else { return nil }
            let event = try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(run.event.utf8))
            var tasks: [RunDetails.TaskDetails] = []
            for try await (taskId, key, parent, name, properties, status, output, error, attempts, started, completed, waitUntil)
                in try await connection.query("""
                    SELECT task_id, key, parent_task_id, name, properties, status, output, error, attempts, started_at, completed_at, wait_until
                    FROM tasks WHERE run_id = \(id) ORDER BY seq
                    """, logger: logger)
                .decode((String, String, String?, String?, String?, String, String?, String?, Int32, Int64?, Int64?, Int64?).self) {
                tasks.append(RunDetails.TaskDetails(
                    id: taskId, key: key, parentId: parent, name: name, properties: try Self.decodeJSON(properties),
                    status: TaskStatus(rawValue: status), output: try Self.decodeJSON(output), error: error, attempts: Int(attempts),
                    startedAt: started.map(Date.init(millisecondsSince1970:)), completedAt: completed.map(Date.init(millisecondsSince1970:)),
                    waitUntil: waitUntil.map(Date.init(millisecondsSince1970:))))
            }
            var logs: [RunDetails.LogLine] = []
            for try await (level, message, properties, loggedAt) in try await connection.query("""
                SELECT level, message, properties, logged_at FROM logs WHERE run_id = \(id) ORDER BY seq
                """, logger: logger).decode((String, String, String?, Int64).self) {
                logs.append(RunDetails.LogLine(level: level, message: message, properties: try Self.decodeJSON(properties),
                                               loggedAt: Date(millisecondsSince1970: loggedAt)))
            }
            return RunDetails(
                id: id, jobId: run.slug, jobVersion: run.version, status: RunStatus(rawValue: run.status),
                output: try Self.decodeJSON(run.output), error: run.error,
                event: .init(id: event.id, name: event.name, timestamp: event.timestamp), tasks: tasks, logs: logs,
                createdAt: Date(millisecondsSince1970: run.created), updatedAt: Date(millisecondsSince1970: run.updated),
                completedAt: run.completed.map(Date.init(millisecondsSince1970:)), tenant: event.tenant, replayOf: run.replayOf, parentRun: event.parent)
        }
    }

    public func fetchResumes(limit: Int) async throws -> [FetchResume] {
        try await database.client.withConnection { connection in
            let logger = database.logger
            var finished: [(String, String)] = []
            for try await row in try await connection.query("""
                SELECT run_id, task_id FROM fetches WHERE done AND NOT resumed LIMIT \(limit)
                """, logger: logger).decode((String, String).self) {
                finished.append(row)
            }
            var resumes: [FetchResume] = []
            for (runId, taskId) in finished {
                resumes.append(FetchResume(runId: runId, taskId: taskId, command: try await Self.resumeCommand(runId: runId, counting: taskId, connection, logger)))
            }
            return resumes
        }
    }

    public func markFetchResumed(runId: String, taskId: String) async throws {
        try await database.client.query("UPDATE fetches SET resumed = true WHERE run_id = \(runId) AND task_id = \(taskId)", logger: database.logger)
    }

    /// The channel every applied batch notifies (see ``followAppliedProgress(_:)``).
    static let appliedChannel = "baton_task_results_applied"

    /// Listens on a connection of its own for applied batches of any instance.
    public func followAppliedProgress(_ changed: @escaping @Sendable () async -> Void) async throws {
        try await database.client.withConnection { connection in
            try await connection.listen(on: Self.appliedChannel) { notifications in
                for try await _ in notifications { await changed() }
            }
        }
    }

    // MARK: - Timers

    public func schedule(runId: String, taskId: String, dueAt: Date) async throws {
        try await timers.schedule(runId: runId, taskId: taskId, dueAt: dueAt)
    }

    public func claimDueTimers(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedTimer] {
        try await timers.claimDueTimers(owner: owner, now: now, lease: lease, limit: limit)
    }

    public func cancelTimers(runId: String) async throws {
        try await timers.cancelTimers(runId: runId)
    }

    public func receiveRequest(tokenHash: String, request: WaitedRequest, at now: Date) async throws -> RequestWaitAnswer {
        let body = try Self.json(request)
        return try await database.transaction { connection, logger in
            var wait: RequestWaitRecord?
            for try await (runId, taskId, timeoutAt, receivedAt) in try await connection.query("""
                SELECT run_id, task_id, timeout_at, received_at FROM request_waits WHERE token_hash = \(tokenHash) FOR UPDATE
                """, logger: logger).decode((String, String, Int64, Int64?).self) {
                wait = RequestWaitRecord(runId: runId, taskId: taskId, timeoutAt: Date(millisecondsSince1970: timeoutAt),
                                         receivedAt: receivedAt.map(Date.init(millisecondsSince1970:)))
            }
            let answer = RequestWaitRules.answer(wait, now: now)
            if case .accepted = answer {
                try await connection.query("""
                    UPDATE request_waits SET received_at = \(now.millisecondsSince1970), request = \(body) WHERE token_hash = \(tokenHash) AND received_at IS NULL
                    """, logger: logger)
            }
            return answer
        }
    }

    public func undeliveredRequests(before: Date, limit: Int) async throws -> [ReceivedRequest] {
        var found: [ReceivedRequest] = []
        for try await (hash, runId, taskId, request) in try await database.client.query("""
            SELECT token_hash, run_id, task_id, request FROM request_waits
            WHERE received_at IS NOT NULL AND delivered_at IS NULL AND received_at < \(before.millisecondsSince1970) ORDER BY received_at LIMIT \(limit)
            """, logger: database.logger).decode((String, String, String, String).self) {
            found.append(ReceivedRequest(tokenHash: hash, runId: runId, taskId: taskId,
                                         request: try BatonJSON.decoder.decode(WaitedRequest.self, from: Data(request.utf8))))
        }
        return found
    }

    public func markRequestsDelivered(tokenHashes: [String], at now: Date) async throws {
        guard !tokenHashes.isEmpty else { return }
        try await database.client.query("""
            UPDATE request_waits SET delivered_at = \(now.millisecondsSince1970) WHERE token_hash = ANY(\(tokenHashes)) AND delivered_at IS NULL
            """, logger: database.logger)
    }

    /// Marks the timers `owner` still holds fired and ends their waits (``RunRules/waitEnded(taskId:output:attempts:status:at:)``),
    /// in one transaction.
    public func markFired(_ timers: [ClaimedTimer], owner: String) async throws {
        let now = Date()
        try await database.transaction { connection, logger in
            let statuses = try await Self.lockRuns(Set(timers.map(\.runId)), connection, logger)
            let slots = try await Self.concurrencySlots(Set(timers.map(\.runId)), connection, logger)
            for timer in timers.sorted(by: { ($0.runId, $0.taskId) < ($1.runId, $1.taskId) }) {
                var holder: (fired: Bool, owner: String?)?
                for try await row in try await connection.query("""
                    SELECT fired, lease_owner FROM timers WHERE run_id = \(timer.runId) AND task_id = \(timer.taskId) FOR UPDATE
                    """, logger: logger).decode((Bool, String?).self) {
                    holder = row
                }
                guard let holder, TimerRules.fired(TimerRecord(runId: timer.runId, taskId: timer.taskId, dueAt: timer.dueAt, fired: holder.fired,
                                                               leaseOwner: holder.owner), by: owner) != nil else { continue }
                try await connection.query("UPDATE timers SET fired = true WHERE run_id = \(timer.runId) AND task_id = \(timer.taskId)", logger: logger)
                try await Self.execute(RunRules.waitEnded(taskId: timer.taskId, output: .null, attempts: .atLeast(1),
                                                          status: statuses[timer.runId], concurrency: slots[timer.runId], at: now),
                                       runId: timer.runId, connection, logger)
            }
        }
    }

    // MARK: - Concurrency slots

    public func slotCounts() async throws -> SlotCounts {
        for try await (waiting, holding) in try await database.client.query("""
            SELECT count(*) FILTER (WHERE NOT holding), count(*) FILTER (WHERE holding) FROM concurrency_slots
            """, logger: database.logger).decode((Int64, Int64).self) {
            return SlotCounts(waiting: Int(waiting), holding: Int(holding))
        }
        return SlotCounts(waiting: 0, holding: 0)
    }

    /// Hands the free slots of every queue to its oldest waiting runs (``ConcurrencyRules``), one
    /// transaction per queue under the queue's advisory lock, so that instances granting at once
    /// never hand out the same slot twice. A queue's limit is that of the run that joined it last.
    public func grantSlots(now: Date) async throws -> [SlotGrant] {
        // Queues with a run waiting and, by the largest limit any of their runs carries, a slot free.
        var candidates: [String] = []
        for try await queue in try await database.client.query("""
            SELECT queue FROM concurrency_slots GROUP BY queue
            HAVING bool_or(NOT holding) AND count(*) FILTER (WHERE holding) < max(lim)
            """, logger: database.logger).decode(String.self) {
            candidates.append(queue)
        }
        var grants: [SlotGrant] = []
        for queue in candidates {
            grants += try await database.transaction { connection, logger in
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("concurrency " + queue)))", logger: logger)
                // A slot held by a run that ended is free (the end normally frees it: this repairs
                // a record that a race left behind).
                try await connection.query("""
                    DELETE FROM concurrency_slots WHERE queue = \(queue) AND holding
                        AND run_id IN (SELECT id FROM runs WHERE status = ANY(\(RunStatus.terminal.map(\.rawValue))))
                    """, logger: logger)
                var limit: Int?
                for try await lim in try await connection.query("SELECT lim FROM concurrency_slots WHERE queue = \(queue) ORDER BY seq DESC LIMIT 1",
                                                                logger: logger).decode(Int32.self) {
                    limit = Int(lim)
                }
                var holding = 0
                for try await count in try await connection.query("SELECT count(*) FROM concurrency_slots WHERE queue = \(queue) AND holding",
                                                                  logger: logger).decode(Int64.self) {
                    holding = Int(count)
                }
                guard let limit, holding < limit else { return [] }
                var waiting: [String] = []
                for try await runId in try await connection.query("""
                    SELECT run_id FROM concurrency_slots WHERE queue = \(queue) AND NOT holding ORDER BY seq LIMIT \(limit - holding)
                    """, logger: logger).decode(String.self) {
                    waiting.append(runId)
                }
                let granted = ConcurrencyRules.granted(limit: limit, holding: holding, queued: waiting)
                guard !granted.isEmpty else { return [] }
                // A run that left the queue meanwhile (canceled) is not granted.
                var grants: [SlotGrant] = []
                for try await (runId, seq) in try await connection.query("""
                    UPDATE concurrency_slots SET holding = true, granted_at = \(now.millisecondsSince1970)
                    WHERE run_id = ANY(\(granted)) AND NOT holding RETURNING run_id, seq
                    """, logger: logger).decode((String, Int64).self) {
                    grants.append(SlotGrant(runId: runId, queue: queue, timerId: ConcurrencyRules.grantTimerID(sequence: seq)))
                }
                guard !grants.isEmpty else { return [] }
                try await connection.query("""
                    INSERT INTO timers (run_id, task_id, due_at)
                    SELECT run_id, task_id, \(now.millisecondsSince1970) FROM unnest(\(grants.map(\.runId)), \(grants.map(\.timerId))) AS g(run_id, task_id)
                    ON CONFLICT (run_id, task_id) DO NOTHING
                    """, logger: logger)
                return grants
            }
        }
        return grants
    }

    // MARK: - Fetches

    public func scheduleFetch(runId: String, taskId: String, request: BackgroundFetchRequest, now: Date) async throws {
        try await fetches.scheduleFetch(runId: runId, taskId: taskId, request: request, now: now)
    }

    public func claimDueFetches(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [ClaimedFetch] {
        try await fetches.claimDueFetches(owner: owner, now: now, lease: lease, limit: limit)
    }

    public func endFetches(runId: String) async throws {
        try await fetches.endFetches(runId: runId)
    }

    public func rescheduleFetch(_ fetch: ClaimedFetch, owner: String, next: Date) async throws -> Bool {
        guard try await fetches.rescheduleFetch(fetch, owner: owner, next: next) else { return false }
        // For display: the task shows the attempts made so far.
        try await database.client.query("""
            UPDATE tasks SET attempts = \(fetch.attempts + 1) WHERE run_id = \(fetch.runId) AND task_id = \(fetch.taskId)
            """, logger: database.logger)
        return true
    }

    /// Stores `response` with the fetch (done) and ends its wait, in one transaction; the run is
    /// then resumed by ``fetchResumes(limit:)`` / ``markFetchResumed(runId:taskId:)``.
    public func completeFetch(_ fetch: ClaimedFetch, owner: String, response: BackgroundFetchResponse, now: Date) async throws -> Bool {
        let output = try BatonJSON.decoder.decode(JSONValue.self, from: try BatonJSON.encoder.encode(response))
        return try await database.transaction { connection, logger in
            let status = try await Self.lockRuns([fetch.runId], connection, logger)[fetch.runId]
            guard try await PostgresFetchStore.complete(fetch, owner: owner, response: response, connection, logger) else { return false }
            let slot = try await Self.concurrencySlots([fetch.runId], connection, logger)[fetch.runId]
            try await Self.execute(RunRules.waitEnded(taskId: fetch.taskId, output: output, attempts: .exactly(response.attempts), status: status,
                                                      concurrency: slot, at: now),
                                   runId: fetch.runId, connection, logger)
            return true
        }
    }

    // MARK: - Deduplication

    public func claim(_ request: DeduplicationClaimRequest, lease: Duration, now: Date) async throws -> DeduplicationClaim {
        try await deduplication.claim(request, lease: lease, now: now)
    }

    public func recordCompleted(scopedKey: String, output: JSONValue, now: Date) async throws {
        try await deduplication.recordCompleted(scopedKey: scopedKey, output: output, now: now)
    }

    public func recordFailed(scopedKey: String, runId: String, taskId: String, error: String, now: Date) async throws {
        try await deduplication.recordFailed(scopedKey: scopedKey, runId: runId, taskId: taskId, error: error, now: now)
    }

    /// The tables ``eraseAll()`` empties.
    public static let tables = ["runs", "tasks", "logs", "timers", "fetches", "deduplication_keys", "consumer_offsets", "broker_bindings", "duty_leases"]
    /// The service its broker binding is kept under.
    public static let service = "task-results"

    // MARK: - Helpers

    /// `values` as a text array and a null mask, for `unnest` (postgres-nio binds no arrays of
    /// optionals): select `CASE WHEN <mask> THEN NULL ELSE <value> END`.
    static func nullable(_ values: [String?]) -> (values: [String], nulls: [Bool]) {
        (values.map { $0 ?? "" }, values.map { $0 == nil })
    }

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try BatonJSON.encoder.encode(value), as: UTF8.self)
    }

    private static func decodeJSON(_ text: String?) throws -> JSONValue? {
        guard let text else { return nil }
        return try BatonJSON.decoder.decode(JSONValue.self, from: Data(text.utf8))
    }
}

/// A service's PostgreSQL store: its consumed offsets, duty leases and broker binding work
/// alike for every service (the members below), over the tables it names.
public protocol PostgresServiceStore: ConsumedOffsetStore, DutyLeaseStore {
    /// The database the store is in.
    var database: PostgresDatabase { get }
    /// The store's consumed offsets.
    var offsets: PostgresConsumedOffsetStore { get }
    /// The service its broker binding is kept under.
    static var service: String { get }
    /// The tables ``eraseAll()`` empties.
    static var tables: [String] { get }
}

extension PostgresServiceStore {
    public func consumedOffsets(topic: String) async throws -> [Int32: Int64] {
        try await offsets.consumedOffsets(topic: topic)
    }

    public func advanceOffsets(topic: String, to next: [Int32: Int64]) async throws {
        try await offsets.advanceOffsets(topic: topic, to: next)
    }

    public func acquireDuty(_ name: String, owner: String, now: Date, lease: Duration) async throws -> Bool {
        try await PostgresSharedTables.acquireDuty(database, name: name, owner: owner, now: now, lease: lease)
    }

    /// The broker identity the store is bound to (JSON), `nil` when never bound.
    public func brokerBinding() async throws -> String? { try await PostgresSharedTables.brokerBinding(database, service: Self.service) }

    /// Binds the store to broker identity `identity` (JSON).
    public func bindBroker(_ identity: String) async throws { try await PostgresSharedTables.bindBroker(database, service: Self.service, identity) }

    /// Erases everything the store's tables hold (after the broker they were written against
    /// was lost), keeping the schema.
    public func eraseAll() async throws {
        try await database.transaction { connection, logger in
            for table in Self.tables {
                try await connection.query(PostgresQuery(unsafeSQL: "DELETE FROM \(table)"), logger: logger)
            }
        }
    }
}

/// Tables every PostgreSQL store of a service keeps: the broker binding and duty leases.
enum PostgresSharedTables {
    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "shared v1 broker binding and duty leases", statements: [
            "CREATE TABLE IF NOT EXISTS broker_bindings (service TEXT PRIMARY KEY, identity TEXT NOT NULL, bound_at BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS duty_leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, lease_until BIGINT NOT NULL)",
        ]),
    ]

    static func brokerBinding(_ database: PostgresDatabase, service: String) async throws -> String? {
        for try await identity in try await database.client.query("SELECT identity FROM broker_bindings WHERE service = \(service)",
                                                                  logger: database.logger).decode(String.self) {
            return identity
        }
        return nil
    }

    static func bindBroker(_ database: PostgresDatabase, service: String, _ identity: String) async throws {
        try await database.client.query("""
            INSERT INTO broker_bindings (service, identity, bound_at) VALUES (\(service), \(identity), \(Date().millisecondsSince1970))
            ON CONFLICT (service) DO UPDATE SET identity = EXCLUDED.identity, bound_at = EXCLUDED.bound_at
            """, logger: database.logger)
    }

    /// Refuses to open a store in a database that holds another service's store (their tables
    /// would mix): each service gets a database of its own.
    static func requireOwnDatabase(_ database: PostgresDatabase, service: String, otherService: String, otherMigration: String) async throws {
        for try await exists in try await database.client.query("SELECT to_regclass('baton_migrations') IS NOT NULL", logger: database.logger)
            .decode(Bool.self) where !exists {
            return
        }
        for try await _ in try await database.client.query("SELECT id FROM baton_migrations WHERE id = \(otherMigration)", logger: database.logger)
            .decode(String.self) {
            throw StoreError("the database '\(database.name)' holds the \(otherService)'s store; give the \(service) a database of its own (e.g. STORE_URL=postgres://…/baton_\(service.replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_")))")
        }
    }

    /// Takes or renews duty `name` for `owner` (``DutyLeaseRules``), the lease's row locked.
    static func acquireDuty(_ database: PostgresDatabase, name: String, owner: String, now: Date, lease: Duration) async throws -> Bool {
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        return try await database.transaction { connection, logger in
            try await connection.query("""
                INSERT INTO duty_leases (name, owner, lease_until) VALUES (\(name), '', 0) ON CONFLICT (name) DO NOTHING
                """, logger: logger)
            var current: DutyLease?
            for try await (holder, until) in try await connection.query("""
                SELECT owner, lease_until FROM duty_leases WHERE name = \(name) FOR UPDATE
                """, logger: logger).decode((String, Int64).self) where !holder.isEmpty {
                current = DutyLease(name: name, owner: holder, until: Date(millisecondsSince1970: until))
            }
            guard let taken = DutyLeaseRules.acquire(current, name: name, by: owner, now: now, lease: lease) else { return false }
            try await connection.query("""
                UPDATE duty_leases SET owner = \(taken.owner), lease_until = \(taken.until.millisecondsSince1970) WHERE name = \(name)
                """, logger: logger)
            return true
        }
    }
}
