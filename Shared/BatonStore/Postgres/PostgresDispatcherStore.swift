import BatonDomain
import BatonProtocol
import Foundation
import Logging
import PostgresNIO

/// The run dispatcher's state in PostgreSQL, shared by any number of instances: events seen,
/// runs started, job registrations, schedules, delayed events (with their cancels), consumed
/// offsets, the broker binding and duty leases. Whichever instance receives a cancel or
/// consumes an event, they all read and write the same rows; ``DispatchRules`` and
/// ``DelayedEventRules`` decide every change.
public struct PostgresDispatcherStore: DispatcherStoring, PostgresServiceStore {
    public let database: PostgresDatabase
    private let delayed: PostgresDelayedEventStore
    public let offsets: PostgresConsumedOffsetStore

    static let migrations: [PostgresDatabase.Migration] = [
        .init(id: "dispatcher v1 events jobs schedules", statements: [
            """
            CREATE TABLE events (
                event_id TEXT PRIMARY KEY,
                event TEXT NOT NULL,
                received_at BIGINT NOT NULL,
                dispatched_at BIGINT
            )
            """,
            "CREATE INDEX events_dispatched ON events (dispatched_at) WHERE dispatched_at IS NOT NULL",
            """
            CREATE TABLE dispatched (
                event_id TEXT NOT NULL,
                job_slug TEXT NOT NULL,
                run_id TEXT NOT NULL,
                dispatched_at BIGINT NOT NULL,
                PRIMARY KEY (event_id, job_slug)
            )
            """,
            """
            CREATE TABLE jobs (
                slug TEXT PRIMARY KEY,
                version TEXT NOT NULL,
                event_name TEXT NOT NULL,
                registration TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX jobs_by_event_name ON jobs (event_name)",
            """
            CREATE TABLE schedules (
                job_slug TEXT PRIMARY KEY,
                trigger TEXT NOT NULL,
                next_due BIGINT NOT NULL,
                last_tick BIGINT
            )
            """,
        ]),
        // The events list (`GET /api/v1/events`) reads the newest first.
        .init(id: "dispatcher v2 events by time", statements: ["CREATE INDEX events_by_received ON events (received_at DESC)"]),
    ] + PostgresSharedTables.migrations + [
        // Runs waiting for an event (`io.waitForEvent`), and the events received lately, kept
        // for waits registered after them (see `EventWaitRules`).
        .init(id: "dispatcher v3 event waits", statements: [
            """
            CREATE TABLE event_waits (
                id TEXT PRIMARY KEY,
                scoped_name TEXT NOT NULL,
                project TEXT NOT NULL,
                environment TEXT NOT NULL,
                wait TEXT NOT NULL,
                timeout_at BIGINT NOT NULL,
                registered_at BIGINT NOT NULL,
                matched_event TEXT,
                matched_at BIGINT,
                delivered_at BIGINT
            )
            """,
            "CREATE INDEX event_waits_pending ON event_waits (scoped_name) WHERE matched_at IS NULL",
            "CREATE INDEX event_waits_undelivered ON event_waits (matched_at) WHERE matched_at IS NOT NULL AND delivered_at IS NULL",
            """
            CREATE TABLE recent_events (
                seq BIGSERIAL PRIMARY KEY,
                scoped_name TEXT NOT NULL,
                event TEXT NOT NULL,
                received_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX recent_events_by_name ON recent_events (scoped_name, received_at)",
            "CREATE INDEX recent_events_by_time ON recent_events (received_at)",
        ]),
        // Rate limits and throttles: each job and key's recent starts, and each event's decision.
        .init(id: "dispatcher v4 flow control", statements: [
            "CREATE TABLE flow_starts (job_slug TEXT NOT NULL, key TEXT NOT NULL, starts TEXT NOT NULL, PRIMARY KEY (job_slug, key))",
            """
            CREATE TABLE flow_decisions (
                event_id TEXT NOT NULL,
                job_slug TEXT NOT NULL,
                decision TEXT NOT NULL,
                deliver_at BIGINT,
                decided_at BIGINT NOT NULL,
                PRIMARY KEY (event_id, job_slug)
            )
            """,
            "CREATE INDEX flow_decisions_by_time ON flow_decisions (decided_at)",
        ]),
    ]

    /// Opens the store, applying its migrations.
    /// - Throws: `StoreError` when the database holds the task-result service's store.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await PostgresSharedTables.requireOwnDatabase(database, service: "run dispatcher", otherService: "task-result service",
                                                          otherMigration: PostgresTaskResultStore.migrations[0].id)
        self.delayed = try await PostgresDelayedEventStore(database: database)
        self.offsets = try await PostgresConsumedOffsetStore(database: database)
        try await database.migrate(Self.migrations)
    }

    @discardableResult
    public func commit(_ effects: DispatchBatch, at now: Date) async throws -> [EventWaitMatch] {
        let time = now.millisecondsSince1970
        let seen = try effects.firstSeen.map { (id: $0.tenant.scoped($0.id), json: try Self.json($0)) }
        return try await database.transaction { connection, logger -> [EventWaitMatch] in
            // Set-based: a statement per kind of write, whatever the batch's size.
            if !seen.isEmpty {
                try await connection.query("""
                    INSERT INTO events (event_id, event, received_at)
                    SELECT id, event, \(time) FROM unnest(\(seen.map(\.id)), \(seen.map(\.json))) AS seen(id, event)
                    ON CONFLICT (event_id) DO NOTHING
                    """, logger: logger)
            }
            for event in effects.held {
                try await PostgresDelayedEventStore.hold(event, id: event.tenant.scoped(event.id), now: now, connection, logger)
            }
            if !effects.runsStarted.isEmpty {
                try await connection.query("""
                    INSERT INTO dispatched (event_id, job_slug, run_id, dispatched_at)
                    SELECT event_id, job_slug, run_id, \(time)
                    FROM unnest(\(effects.runsStarted.map(\.eventID)), \(effects.runsStarted.map(\.jobSlug)), \(effects.runsStarted.map(\.runID)))
                        AS started(event_id, job_slug, run_id)
                    ON CONFLICT (event_id, job_slug) DO NOTHING
                    """, logger: logger)
            }
            try await Self.markEventsDispatched(eventIDs: effects.eventsDispatched, time: time, connection, logger)
            let matches = try await Self.matchEventWaits(waits: effects.waitsRegistered, events: effects.waitableEvents, keep: effects.keepsRecentEvents,
                                                         now: now, connection, logger)
            for (topic, next) in effects.consumed {
                try await PostgresConsumedOffsetStore.advance(topic: topic, to: next, connection, logger)
            }
            return matches
        }
    }

    /// Records `waits` and `events` and matches them (``EventWaitRules``). Transactions that
    /// touch the same event name take turns (an advisory lock per name, in one order), so a
    /// wait and an event committed at once by two instances always see each other.
    private static func matchEventWaits(waits: [EventWaitRecord], events: [EventEnvelope], keep: Bool, now: Date,
                                        _ connection: PostgresConnection, _ logger: Logger) async throws -> [EventWaitMatch] {
        guard !waits.isEmpty || !events.isEmpty else { return [] }
        let time = now.millisecondsSince1970
        // A name with a new wait: exclusive (its events wait their turn); a name with events only:
        // shared (events of one name do not wait for each other: the conditional UPDATE below
        // gives a wait one event). In one order, so two transactions never deadlock.
        let waited = Set(waits.map(\.scopedName))
        for name in Set(waited).union(events.map { $0.tenant.scoped($0.name) }).sorted() {
            if waited.contains(name) {
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("event-wait " + name)))", logger: logger)
            } else {
                try await connection.query("SELECT pg_advisory_xact_lock_shared(hashtext(\("event-wait " + name)))", logger: logger)
            }
        }
        var newWaits: [EventWaitRecord] = []
        var stored: [RecentEvent] = []
        for wait in waits {
            var inserted = false
            for try await _ in try await connection.query("""
                INSERT INTO event_waits (id, scoped_name, project, environment, wait, timeout_at, registered_at)
                VALUES (\(wait.id), \(wait.scopedName), \(wait.tenant.project), \(wait.tenant.environment), \(try json(wait.request)),
                        \(wait.request.timeoutAt.millisecondsSince1970), \(time))
                ON CONFLICT (id) DO NOTHING RETURNING 1
                """, logger: logger).decode(Int32.self) { inserted = true }
            guard inserted else { continue }  // registered before: a resend
            newWaits.append(wait)
            let from = wait.request.since.addingTimeInterval(-(EventWaitRequest.clockTolerance / .seconds(1))).millisecondsSince1970
            for try await (event, receivedAt) in try await connection.query("""
                SELECT event, received_at FROM recent_events WHERE scoped_name = \(wait.scopedName) AND received_at >= \(from) ORDER BY seq
                """, logger: logger).decode((String, Int64).self) {
                stored.append(RecentEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)),
                                          receivedAt: Date(millisecondsSince1970: receivedAt)))
            }
        }
        var pending: [EventWaitRecord] = []
        let eventNames = Array(Set(events.map { $0.tenant.scoped($0.name) }))
        if !eventNames.isEmpty {
            for try await (project, environment, wait) in try await connection.query("""
                SELECT project, environment, wait FROM event_waits WHERE scoped_name = ANY(\(eventNames)) AND matched_at IS NULL AND timeout_at > \(time)
                """, logger: logger).decode((String, String, String).self) {
                pending.append(EventWaitRecord(tenant: Tenant.of(project: project, environment: environment),
                                               request: try BatonJSON.decoder.decode(EventWaitRequest.self, from: Data(wait.utf8))))
            }
            if keep { try await connection.query("""
                INSERT INTO recent_events (scoped_name, event, received_at)
                SELECT name, event, \(time) FROM unnest(\(events.map { $0.tenant.scoped($0.name) }), \(try events.map { try json($0) }))
                    WITH ORDINALITY AS received(name, event, position)
                ORDER BY position
                """, logger: logger) }
        }
        let matched = EventWaitRules.match(newWaits: newWaits, events: events.map { RecentEvent(event: $0, receivedAt: now) }, stored: stored, pending: pending)
        var taken: [EventWaitMatch] = []
        for wait in matched {
            // Another instance's event may have matched it since it was read: only the first counts.
            for try await _ in try await connection.query("""
                UPDATE event_waits SET matched_event = \(try json(wait.matched)), matched_at = \(time) WHERE id = \(wait.id) AND matched_at IS NULL
                RETURNING 1
                """, logger: logger).decode(Int32.self) {
                if let match = wait.match { taken.append(match) }
            }
        }
        return taken
    }

    public func decideFlow(jobSlug: String, key: String, control: FlowControl, eventID: String, at now: Date) async throws -> FlowDecision {
        try await database.transaction { connection, logger in
            // One instance at a time per job and key: the row exists, then is locked.
            try await connection.query("""
                INSERT INTO flow_starts (job_slug, key, starts) VALUES (\(jobSlug), \(key), '[]') ON CONFLICT (job_slug, key) DO NOTHING
                """, logger: logger)
            var stored: String?
            for try await starts in try await connection.query("""
                SELECT starts FROM flow_starts WHERE job_slug = \(jobSlug) AND key = \(key) FOR UPDATE
                """, logger: logger).decode(String.self) { stored = starts }
            for try await (decision, deliverAt) in try await connection.query("""
                SELECT decision, deliver_at FROM flow_decisions WHERE event_id = \(eventID) AND job_slug = \(jobSlug)
                """, logger: logger).decode((String, Int64?).self) {
                return FlowDecision(stored: decision, deliverAt: deliverAt)
            }
            let (decision, starts) = FlowControlRules.decide(control, starts: FlowDecision.starts(from: stored), now: now)
            try await connection.query("""
                UPDATE flow_starts SET starts = \(FlowDecision.encode(starts)) WHERE job_slug = \(jobSlug) AND key = \(key)
                """, logger: logger)
            try await connection.query("""
                INSERT INTO flow_decisions (event_id, job_slug, decision, deliver_at, decided_at)
                VALUES (\(eventID), \(jobSlug), \(decision.storedName), \(decision.deliverAt?.millisecondsSince1970), \(now.millisecondsSince1970))
                """, logger: logger)
            return decision
        }
    }

    public func flowStarts(jobSlug: String, key: String) async throws -> [Date] {
        for try await starts in try await database.client.query("SELECT starts FROM flow_starts WHERE job_slug = \(jobSlug) AND key = \(key)",
                                                                logger: database.logger).decode(String.self) {
            return FlowDecision.starts(from: starts)
        }
        return []
    }

    public func undeliveredWaitMatches(before: Date, limit: Int) async throws -> [EventWaitMatch] {
        var matches: [EventWaitMatch] = []
        for try await (project, environment, wait, event) in try await database.client.query("""
            SELECT project, environment, wait, matched_event FROM event_waits
            WHERE matched_at IS NOT NULL AND delivered_at IS NULL AND matched_at < \(before.millisecondsSince1970) ORDER BY matched_at LIMIT \(limit)
            """, logger: database.logger).decode((String, String, String, String).self) {
            let record = EventWaitRecord(tenant: Tenant.of(project: project, environment: environment),
                                         request: try BatonJSON.decoder.decode(EventWaitRequest.self, from: Data(wait.utf8)),
                                         matched: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)))
            if let match = record.match { matches.append(match) }
        }
        return matches
    }

    public func markWaitMatchesDelivered(ids: [String], at now: Date) async throws {
        guard !ids.isEmpty else { return }
        try await database.client.query("""
            UPDATE event_waits SET delivered_at = \(now.millisecondsSince1970) WHERE id = ANY(\(ids)) AND delivered_at IS NULL
            """, logger: database.logger)
    }

    @discardableResult
    public func pruneEventWaits(receivedBefore: Date, endedBefore: Date) async throws -> Int {
        try await database.transaction { connection, logger in
            var removed = 0
            for statement: PostgresQuery in [
                "DELETE FROM recent_events WHERE received_at < \(receivedBefore.millisecondsSince1970) RETURNING 1",
                """
                DELETE FROM event_waits WHERE delivered_at < \(endedBefore.millisecondsSince1970)
                    OR (matched_at IS NULL AND timeout_at < \(endedBefore.millisecondsSince1970)) RETURNING 1
                """,
            ] {
                for try await _ in try await connection.query(statement, logger: logger).decode(Int32.self) { removed += 1 }
            }
            return removed
        }
    }

    public func seenEvent(eventID: String) async throws -> SeenEvent? {
        try await database.client.withConnection { connection in
            try await Self.seenEvent(eventID, lock: false, connection, database.logger)
        }
    }

    private static func seenEvent(_ id: String, lock: Bool, _ connection: PostgresConnection, _ logger: Logger) async throws -> SeenEvent? {
        let rows = try await connection.query("""
            SELECT event, dispatched_at FROM events WHERE event_id = \(id) \(unescaped: lock ? "FOR UPDATE" : "")
            """, logger: logger)
        for try await (event, dispatchedAt) in rows.decode((String, Int64?).self) {
            return SeenEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)), dispatched: dispatchedAt != nil)
        }
        return nil
    }

    public func seenEvents(eventIDs: [String]) async throws -> [String: SeenEvent] {
        guard !eventIDs.isEmpty else { return [:] }
        var seen: [String: SeenEvent] = [:]
        for try await (id, event, dispatchedAt) in try await database.client.query("""
            SELECT event_id, event, dispatched_at FROM events WHERE event_id = ANY(\(Array(Set(eventIDs))))
            """, logger: database.logger).decode((String, String, Int64?).self) {
            seen[id] = SeenEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)), dispatched: dispatchedAt != nil)
        }
        return seen
    }

    public func delayedEventStatuses(ids: [String]) async throws -> [String: DelayedEventRecord.Status] {
        guard !ids.isEmpty else { return [:] }
        var statuses: [String: DelayedEventRecord.Status] = [:]
        for try await (id, status) in try await database.client.query("""
            SELECT event_id, status FROM delayed_events WHERE event_id = ANY(\(Array(Set(ids)))) AND status != 'NEW'
            """, logger: database.logger).decode((String, String).self) {
            statuses[id] = DelayedEventRecord.Status(rawValue: status)
        }
        return statuses
    }

    public func dispatchedJobs(eventIDs: [String]) async throws -> [String: Set<String>] {
        guard !eventIDs.isEmpty else { return [:] }
        var jobs: [String: Set<String>] = [:]
        for try await (id, slug) in try await database.client.query("""
            SELECT event_id, job_slug FROM dispatched WHERE event_id = ANY(\(Array(Set(eventIDs))))
            """, logger: database.logger).decode((String, String).self) {
            jobs[id, default: []].insert(slug)
        }
        return jobs
    }

    public func markEventDispatched(eventID: String, at now: Date) async throws {
        try await database.transaction { connection, logger in
            try await Self.markEventDispatched(eventID: eventID, time: now.millisecondsSince1970, connection, logger)
        }
    }

    /// Marks `eventIDs` dispatched (``DispatchRules/dispatched(_:)``) in three statements: their
    /// rows locked in id order, the rules asked, the changed ones written.
    private static func markEventsDispatched(eventIDs: [String], time: Int64, _ connection: PostgresConnection, _ logger: Logger) async throws {
        guard !eventIDs.isEmpty else { return }
        var changed: [(id: String, json: String)] = []
        for try await (id, event, dispatchedAt) in try await connection.query("""
            SELECT event_id, event, dispatched_at FROM events WHERE event_id = ANY(\(Array(Set(eventIDs)))) ORDER BY event_id FOR UPDATE
            """, logger: logger).decode((String, String, Int64?).self) {
            let seen = SeenEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)), dispatched: dispatchedAt != nil)
            if let stored = DispatchRules.dispatched(seen) { changed.append((id, try json(stored))) }
        }
        guard !changed.isEmpty else { return }
        try await connection.query("""
            UPDATE events SET dispatched_at = \(time), event = change.event
            FROM unnest(\(changed.map(\.id)), \(changed.map(\.json))) AS change(id, event) WHERE events.event_id = change.id
            """, logger: logger)
    }

    private static func markEventDispatched(eventID: String, time: Int64, _ connection: PostgresConnection, _ logger: Logger) async throws {
        guard let seen = try await seenEvent(eventID, lock: true, connection, logger), let stored = DispatchRules.dispatched(seen) else { return }
        try await connection.query("""
            UPDATE events SET dispatched_at = \(time), event = \(try json(stored)) WHERE event_id = \(eventID)
            """, logger: logger)
    }

    public func prune(before cutoff: Date) async throws -> Int {
        let cutoff = cutoff.millisecondsSince1970
        return try await database.transaction { connection, logger in
            var removed = 0
            for statement: PostgresQuery in [
                "DELETE FROM events WHERE dispatched_at < \(cutoff) RETURNING 1",
                "DELETE FROM dispatched WHERE dispatched_at < \(cutoff) RETURNING 1",
                "DELETE FROM flow_decisions WHERE decided_at < \(cutoff) RETURNING 1",
                "DELETE FROM delayed_events WHERE status NOT IN ('PENDING', 'NEW') AND updated_at < \(cutoff) RETURNING 1",
            ] {
                for try await _ in try await connection.query(statement, logger: logger).decode(Int32.self) { removed += 1 }
            }
            return removed
        }
    }

    public func upsert(_ registration: JobRegistration) async throws {
        let json = try Self.json(registration)
        try await database.transaction { connection, logger in
            // One registration of a slug at a time, whichever instance reads it.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(registration.slug)))", logger: logger)
            try DispatchRules.checkOwnership(registration, existing: try await Self.job(registration.slug, connection, logger))
            try await connection.query("""
                INSERT INTO jobs (slug, version, event_name, registration, updated_at)
                VALUES (\(registration.slug), \(registration.version), \(registration.trigger.eventName), \(json), \(Date().millisecondsSince1970))
                ON CONFLICT (slug) DO UPDATE SET version = EXCLUDED.version, event_name = EXCLUDED.event_name,
                    registration = EXCLUDED.registration, updated_at = EXCLUDED.updated_at
                """, logger: logger)
        }
    }

    public func syncSchedule(_ registration: JobRegistration, now: Date) async throws {
        try await database.transaction { connection, logger in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(registration.slug)))", logger: logger)
            var current: JobTrigger?
            for try await trigger in try await connection.query("SELECT trigger FROM schedules WHERE job_slug = \(registration.slug)",
                                                                logger: logger).decode(String.self) {
                current = try BatonJSON.decoder.decode(JobTrigger.self, from: Data(trigger.utf8))
            }
            switch DispatchRules.syncSchedule(registration, current: current, now: now) {
            case .keep:
                break
            case .remove:
                try await connection.query("DELETE FROM schedules WHERE job_slug = \(registration.slug)", logger: logger)
            case .set(let trigger, let next):
                try await connection.query("""
                    INSERT INTO schedules (job_slug, trigger, next_due) VALUES (\(registration.slug), \(try Self.json(trigger)), \(next.millisecondsSince1970))
                    ON CONFLICT (job_slug) DO UPDATE SET trigger = EXCLUDED.trigger, next_due = EXCLUDED.next_due
                    """, logger: logger)
            }
        }
    }

    public func dueSchedules(now: Date) async throws -> [DueSchedule] {
        var due: [DueSchedule] = []
        for try await (slug, trigger, next, last) in try await database.client.query("""
            SELECT job_slug, trigger, next_due, last_tick FROM schedules WHERE next_due <= \(now.millisecondsSince1970) ORDER BY next_due
            """, logger: database.logger).decode((String, String, Int64, Int64?).self) {
            due.append(DueSchedule(jobSlug: slug, trigger: try BatonJSON.decoder.decode(JobTrigger.self, from: Data(trigger.utf8)),
                                   due: Date(millisecondsSince1970: next), lastTick: last.map(Date.init(millisecondsSince1970:))))
        }
        return due
    }

    public func advanceSchedule(jobSlug: String, fired: Date, next: Date) async throws {
        try await database.client.query("""
            UPDATE schedules SET last_tick = \(fired.millisecondsSince1970), next_due = \(next.millisecondsSince1970)
            WHERE job_slug = \(jobSlug) AND next_due = \(fired.millisecondsSince1970)
            """, logger: database.logger)
    }

    public func jobs(of tenant: Tenant?) async throws -> [JobRegistration] {
        try await registrations(database.client.query("SELECT registration FROM jobs ORDER BY slug", logger: database.logger))
            .filter { tenant == nil || $0.tenant == tenant }
    }

    public func job(slug: String) async throws -> JobRegistration? {
        try await database.client.withConnection { connection in try await Self.job(slug, connection, database.logger) }
    }

    private static func job(_ slug: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> JobRegistration? {
        for try await registration in try await connection.query("SELECT registration FROM jobs WHERE slug = \(slug)", logger: logger).decode(String.self) {
            return try BatonJSON.decoder.decode(JobRegistration.self, from: Data(registration.utf8))
        }
        return nil
    }

    public func jobs(forEventName name: String) async throws -> [JobRegistration] {
        try await registrations(database.client.query("SELECT registration FROM jobs WHERE event_name = \(name) ORDER BY slug",
                                                      logger: database.logger))
    }

    private func registrations(_ rows: PostgresRowSequence) async throws -> [JobRegistration] {
        var registrations: [JobRegistration] = []
        for try await json in rows.decode(String.self) {
            registrations.append(try BatonJSON.decoder.decode(JobRegistration.self, from: Data(json.utf8)))
        }
        return registrations
    }

    public func wasDispatched(eventID: String, jobSlug: String) async throws -> Bool {
        for try await _ in try await database.client.query("""
            SELECT 1 FROM dispatched WHERE event_id = \(eventID) AND job_slug = \(jobSlug)
            """, logger: database.logger).decode(Int32.self) {
            return true
        }
        return false
    }

    public func markDispatched(eventID: String, jobSlug: String, runID: String) async throws {
        try await database.client.withConnection { connection in
            try await Self.markDispatched(eventID: eventID, jobSlug: jobSlug, runID: runID, time: Date().millisecondsSince1970, connection, database.logger)
        }
    }

    private static func markDispatched(eventID: String, jobSlug: String, runID: String, time: Int64, _ connection: PostgresConnection,
                                       _ logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO dispatched (event_id, job_slug, run_id, dispatched_at) VALUES (\(eventID), \(jobSlug), \(runID), \(time))
            ON CONFLICT (event_id, job_slug) DO NOTHING
            """, logger: logger)
    }

    // MARK: - Delayed events, offsets, broker, duties

    public func hold(_ event: EventEnvelope, id: String, now: Date) async throws {
        try await delayed.hold(event, id: id, now: now)
    }

    public func cancelDelayed(id: String, now: Date) async throws -> (status: DelayedEventRecord.Status, canceled: Bool) {
        try await delayed.cancelDelayed(id: id, now: now)
    }

    public func delayedEventStatus(id: String) async throws -> DelayedEventRecord.Status? {
        try await delayed.delayedEventStatus(id: id)
    }

    public func claimDueDelayed(owner: String, now: Date, lease: Duration, limit: Int) async throws -> [EventEnvelope] {
        try await delayed.claimDueDelayed(owner: owner, now: now, lease: lease, limit: limit)
    }

    public func markDelivered(id: String, owner: String, now: Date) async throws {
        try await delayed.markDelivered(id: id, owner: owner, now: now)
    }

    public func recentEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent] {
        var listed: [ListedEvent] = []
        for try await (event, receivedAt, dispatchedAt) in try await database.client.query("""
            SELECT event, received_at, dispatched_at FROM events
            WHERE starts_with(event_id, \(idPrefix ?? "")) ORDER BY received_at DESC, event_id DESC LIMIT \(limit)
            """, logger: database.logger).decode((String, Int64, Int64?).self) {
            listed.append(ListedEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)),
                                      receivedAt: Date(millisecondsSince1970: receivedAt), dispatched: dispatchedAt != nil))
        }
        return listed
    }

    public func pendingDelayedEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent] {
        var listed: [ListedEvent] = []
        for try await (event, deliverAt) in try await database.client.query("""
            SELECT event, deliver_at FROM delayed_events
            WHERE status = 'PENDING' AND event IS NOT NULL AND starts_with(event_id, \(idPrefix ?? ""))
            ORDER BY deliver_at, event_id LIMIT \(limit)
            """, logger: database.logger).decode((String, Int64).self) {
            listed.append(ListedEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(event.utf8)),
                                      receivedAt: nil, dispatched: false, deliverAt: Date(millisecondsSince1970: deliverAt), delayedStatus: .pending))
        }
        return listed
    }

    /// The tables ``eraseAll()`` empties.
    public static let tables = ["events", "dispatched", "jobs", "schedules", "delayed_events", "consumer_offsets", "broker_bindings", "duty_leases"]
    /// The service its broker binding is kept under.
    public static let service = "dispatcher"

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try BatonJSON.encoder.encode(value), as: UTF8.self)
    }
}
