import BatonDomain
import BatonProtocol
import Foundation
import GRDB

/// The run dispatcher's state: known jobs and the (event, job) pairs already dispatched.
public final class DispatcherStore: DispatcherStoring, DutyLeaseStore, Sendable {
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
        migrator.registerMigration("v1 jobs and dispatched events") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    slug TEXT PRIMARY KEY NOT NULL,
                    version TEXT NOT NULL,
                    event_name TEXT NOT NULL,
                    registration TEXT NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE INDEX jobs_by_event_name ON jobs(event_name);
                CREATE TABLE delayed_events (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    event TEXT,
                    deliver_at INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE INDEX delayed_due ON delayed_events(status, deliver_at);
                CREATE TABLE schedules (
                    job_slug TEXT PRIMARY KEY NOT NULL,
                    trigger TEXT NOT NULL,
                    next_due INTEGER NOT NULL,
                    last_tick INTEGER
                );
                CREATE TABLE dispatched (
                    event_id TEXT NOT NULL,
                    job_slug TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    dispatched_at INTEGER NOT NULL,
                    PRIMARY KEY (event_id, job_slug)
                );
                """)
        }
        migrator.registerMigration("v2 events seen") { db in
            // The first envelope seen with each (tenant-scoped) id: a later record with the same
            // id is a resend, and the first one's content is what runs see.
            try db.execute(sql: """
                CREATE TABLE events (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    event TEXT NOT NULL,
                    received_at INTEGER NOT NULL,
                    dispatched_at INTEGER
                );
                """)
        }
        migrator.registerMigration("v3 consumed offsets") { db in
            // The next offset to read of each events partition, written in the transaction of
            // the batch that consumed it: on assignment the consumer starts there.
            try db.execute(sql: """
                CREATE TABLE consumer_offsets (
                    topic TEXT NOT NULL,
                    partition INTEGER NOT NULL,
                    next_offset INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition)
                );
                """)
        }
        migrator.registerMigration("v4 broker binding") { db in
            // Which broker (and topic shapes) the store was written against.
            try BrokerBindingTable.create(db)
        }
        migrator.registerMigration("v5 delayed event leases") { db in
            // Which instance delivers a due delayed event, until when (see `DelayedEventRules`).
            try db.execute(sql: "ALTER TABLE delayed_events ADD COLUMN lease_owner TEXT")
            try db.execute(sql: "ALTER TABLE delayed_events ADD COLUMN lease_until INTEGER")
        }
        migrator.registerMigration("v6 duty leases") { db in
            // Which instance performs a duty only one performs at a time (see `DutyLeaseRules`).
            try DutyLeasesTable.create(db)
        }
        migrator.registerMigration("v7 events by time") { db in
            // The events list (`GET /api/v1/events`) reads the newest first.
            try db.execute(sql: "CREATE INDEX events_by_received ON events(received_at)")
        }
        migrator.registerMigration("v8 event waits") { db in
            // Runs waiting for an event (`io.waitForEvent`), and the events received lately, kept
            // for waits registered after them (see `EventWaitRules`).
            try db.execute(sql: """
                CREATE TABLE event_waits (
                    id TEXT PRIMARY KEY NOT NULL,
                    scoped_name TEXT NOT NULL,
                    project TEXT NOT NULL,
                    environment TEXT NOT NULL,
                    wait TEXT NOT NULL,
                    timeout_at INTEGER NOT NULL,
                    registered_at INTEGER NOT NULL,
                    matched_event TEXT,
                    matched_at INTEGER,
                    delivered_at INTEGER
                );
                CREATE INDEX event_waits_pending ON event_waits(scoped_name) WHERE matched_at IS NULL;
                CREATE INDEX event_waits_undelivered ON event_waits(matched_at) WHERE matched_at IS NOT NULL AND delivered_at IS NULL;
                CREATE TABLE recent_events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    scoped_name TEXT NOT NULL,
                    event TEXT NOT NULL,
                    received_at INTEGER NOT NULL
                );
                CREATE INDEX recent_events_by_name ON recent_events(scoped_name, received_at);
                CREATE INDEX recent_events_by_time ON recent_events(received_at);
                """)
        }
        migrator.registerMigration("v9 flow control") { db in
            // Rate limits and throttles: each job and key's recent starts, and each event's decision.
            try db.execute(sql: """
                CREATE TABLE flow_starts (
                    job_slug TEXT NOT NULL,
                    key TEXT NOT NULL,
                    starts TEXT NOT NULL,
                    PRIMARY KEY (job_slug, key)
                );
                CREATE TABLE flow_decisions (
                    event_id TEXT NOT NULL,
                    job_slug TEXT NOT NULL,
                    decision TEXT NOT NULL,
                    deliver_at INTEGER,
                    decided_at INTEGER NOT NULL,
                    PRIMARY KEY (event_id, job_slug)
                );
                CREATE INDEX flow_decisions_by_time ON flow_decisions(decided_at);
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

    /// What one batch of consumed events changed (see ``BatonDomain/DispatchBatch``).
    public typealias BatchEffects = DispatchBatch
    /// The first event seen with an id (see ``BatonDomain/SeenEvent``).
    public typealias SeenEvent = BatonDomain.SeenEvent
    /// A scheduled job whose next tick is due (see ``BatonDomain/DueSchedule``).
    public typealias DueSchedule = BatonDomain.DueSchedule

    /// Writes `effects` in one transaction: reprocessing the same records after a crash before
    /// it changes nothing twice (every write is idempotent), and after it nothing at all (the
    /// consumer starts past them).
    @discardableResult
    public func commit(_ effects: DispatchBatch, at now: Date = Date()) async throws -> [EventWaitMatch] {
        let time = now.millisecondsSince1970
        let seen = try effects.firstSeen.map { (id: $0.tenant.scoped($0.id), json: String(decoding: try BatonJSON.encoder.encode($0), as: UTF8.self)) }
        // Waitable events are kept as first seen: their JSON is encoded once.
        let encoded = Dictionary(seen.map { ($0.id, $0.json) }, uniquingKeysWith: { first, _ in first })

        // GRDB's async write suspends the caller instead of blocking a cooperative thread.
        return try await pool.write { db -> [EventWaitMatch] in
            for event in seen {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO events (event_id, event, received_at) VALUES (?, ?, ?)").execute(arguments: [event.id, event.json, time])
            }
            for event in effects.held {
                try Self.hold(db, id: event.tenant.scoped(event.id), event: event, now: now)
            }
            for run in effects.runsStarted {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO dispatched (event_id, job_slug, run_id, dispatched_at) VALUES (?, ?, ?, ?)").execute(arguments: [run.eventID, run.jobSlug, run.runID, time])
            }
            for id in effects.eventsDispatched {
                try Self.markEventDispatched(db, eventID: id, time: time)
            }
            let matches = try Self.matchEventWaits(db, waits: effects.waitsRegistered, events: effects.waitableEvents, encoded: encoded,
                                                   keep: effects.keepsRecentEvents, now: now)
            for (topic, next) in effects.consumed { try ConsumerOffsetsTable.advance(db, topic: topic, to: next) }
            return matches
        }
    }

    /// Records `waits` and `events` and matches them (``EventWaitRules``); one writer at a time,
    /// so what this transaction reads stays true until it commits.
    private static func matchEventWaits(_ db: Database, waits: [EventWaitRecord], events: [EventEnvelope], encoded: [String: String],
                                        keep: Bool, now: Date) throws -> [EventWaitMatch] {
        guard !waits.isEmpty || !events.isEmpty else { return [] }
        let time = now.millisecondsSince1970
        var newWaits: [EventWaitRecord] = []
        var stored: [RecentEvent] = []
        for wait in waits {
            try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO event_waits (id, scoped_name, project, environment, wait, timeout_at, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [wait.id, wait.scopedName, wait.tenant.project, wait.tenant.environment, try json(wait.request),
                                         wait.request.timeoutAt.millisecondsSince1970, time])
            guard db.changesCount == 1 else { continue }  // registered before: a resend
            newWaits.append(wait)
            let from = wait.request.since.addingTimeInterval(-(EventWaitRequest.clockTolerance / .seconds(1))).millisecondsSince1970
            stored += try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT event, received_at FROM recent_events WHERE scoped_name = ? AND received_at >= ? ORDER BY seq
                """), arguments: [wait.scopedName, from]).map {
                RecentEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["event"] as String).utf8)),
                            receivedAt: Date(millisecondsSince1970: $0["received_at"]))
            }
        }
        var pending: [EventWaitRecord] = []
        for name in Set(events.map { $0.tenant.scoped($0.name) }) {
            pending += try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT project, environment, wait FROM event_waits WHERE scoped_name = ? AND matched_at IS NULL AND timeout_at > ?
                """), arguments: [name, time]).map {
                EventWaitRecord(tenant: Tenant.of(project: $0["project"], environment: $0["environment"]),
                                request: try BatonJSON.decoder.decode(EventWaitRequest.self, from: Data(($0["wait"] as String).utf8)))
            }
        }
        // One statement for the batch's events (a statement per event costs the burst ~10 %).
        let kept = keep ? events : []
        for start in stride(from: 0, to: kept.count, by: 200) {
            let chunk = kept[start..<min(start + 200, kept.count)]
            let values = Array(repeating: "(?, ?, ?)", count: chunk.count).joined(separator: ", ")
            var arguments: [any DatabaseValueConvertible] = []
            for event in chunk {
                arguments += [event.tenant.scoped(event.name), try encoded[event.tenant.scoped(event.id)] ?? json(event), time]
            }
            try db.execute(sql: "INSERT INTO recent_events (scoped_name, event, received_at) VALUES \(values)", arguments: StatementArguments(arguments))
        }
        let matched = EventWaitRules.match(newWaits: newWaits, events: events.map { RecentEvent(event: $0, receivedAt: now) }, stored: stored, pending: pending)
        var taken: [EventWaitMatch] = []
        for wait in matched {
            try db.cachedStatement(sql: "UPDATE event_waits SET matched_event = ?, matched_at = ? WHERE id = ? AND matched_at IS NULL")
                .execute(arguments: [try json(wait.matched), time, wait.id])
            if db.changesCount == 1, let match = wait.match { taken.append(match) }
        }
        return taken
    }

    public func decideFlow(jobSlug: String, key: String, control: FlowControl, eventID: String, at now: Date) async throws -> FlowDecision {
        try await pool.write { db in
            if let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT decision, deliver_at FROM flow_decisions WHERE event_id = ? AND job_slug = ?"),
                                          arguments: [eventID, jobSlug]) {
                return FlowDecision(stored: row["decision"], deliverAt: row["deliver_at"])
            }
            let stored = try String.fetchOne(try db.cachedStatement(sql: "SELECT starts FROM flow_starts WHERE job_slug = ? AND key = ?"),
                                             arguments: [jobSlug, key])
            let (decision, starts) = FlowControlRules.decide(control, starts: FlowDecision.starts(from: stored), now: now)
            try db.cachedStatement(sql: "INSERT INTO flow_starts (job_slug, key, starts) VALUES (?, ?, ?) ON CONFLICT (job_slug, key) DO UPDATE SET starts = excluded.starts")
                .execute(arguments: [jobSlug, key, FlowDecision.encode(starts)])
            try db.cachedStatement(sql: "INSERT INTO flow_decisions (event_id, job_slug, decision, deliver_at, decided_at) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [eventID, jobSlug, decision.storedName, decision.deliverAt?.millisecondsSince1970, now.millisecondsSince1970])
            return decision
        }
    }

    public func flowStarts(jobSlug: String, key: String) async throws -> [Date] {
        try await pool.read { db in
            FlowDecision.starts(from: try String.fetchOne(try db.cachedStatement(sql: "SELECT starts FROM flow_starts WHERE job_slug = ? AND key = ?"),
                                                          arguments: [jobSlug, key]))
        }
    }

    public func undeliveredWaitMatches(before: Date, limit: Int) async throws -> [EventWaitMatch] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT project, environment, wait, matched_event FROM event_waits
                WHERE matched_at IS NOT NULL AND delivered_at IS NULL AND matched_at < ? ORDER BY matched_at LIMIT ?
                """), arguments: [before.millisecondsSince1970, limit]).compactMap {
                EventWaitRecord(tenant: Tenant.of(project: $0["project"], environment: $0["environment"]),
                                request: try BatonJSON.decoder.decode(EventWaitRequest.self, from: Data(($0["wait"] as String).utf8)),
                                matched: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["matched_event"] as String).utf8))).match
            }
        }
    }

    public func markWaitMatchesDelivered(ids: [String], at now: Date = Date()) async throws {
        try await pool.write { db in
            for id in ids {
                try db.cachedStatement(sql: "UPDATE event_waits SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL")
                    .execute(arguments: [now.millisecondsSince1970, id])
            }
        }
    }

    @discardableResult
    public func pruneEventWaits(receivedBefore: Date, endedBefore: Date) async throws -> Int {
        try await pool.write { db in
            try db.cachedStatement(sql: "DELETE FROM recent_events WHERE received_at < ?").execute(arguments: [receivedBefore.millisecondsSince1970])
            var removed = db.changesCount
            try db.cachedStatement(sql: """
                DELETE FROM event_waits WHERE delivered_at < ? OR (matched_at IS NULL AND timeout_at < ?)
                """).execute(arguments: [endedBefore.millisecondsSince1970, endedBefore.millisecondsSince1970])
            removed += db.changesCount
            return removed
        }
    }

    private static func json(_ value: some Encodable) throws -> String {
        String(decoding: try BatonJSON.encoder.encode(value), as: UTF8.self)
    }

    /// The next offset to read of each partition of `topic`, as far as this store has consumed.
    public func consumedOffsets(topic: String) async throws -> [Int32: Int64] {
        try await pool.read { db in try ConsumerOffsetsTable.read(db, topic: topic) }
    }

    /// The first event seen with `eventID` (tenant-scoped), if any.
    public func seenEvent(eventID: String) async throws -> SeenEvent? {
        try await pool.read { db in try Self.seenEvent(db, id: eventID) }
    }

    public func seenEvents(eventIDs: [String]) async throws -> [String: SeenEvent] {
        try await pool.read { db in
            var seen: [String: SeenEvent] = [:]
            for id in Set(eventIDs) { seen[id] = try Self.seenEvent(db, id: id) }
            return seen
        }
    }

    public func delayedEventStatuses(ids: [String]) async throws -> [String: DelayedEventRecord.Status] {
        try await pool.read { db in
            var statuses: [String: DelayedEventRecord.Status] = [:]
            for id in Set(ids) {
                statuses[id] = try String.fetchOne(try db.cachedStatement(sql: "SELECT status FROM delayed_events WHERE event_id = ?"), arguments: [id])
                    .flatMap(DelayedEventRecord.Status.init(rawValue:))
            }
            return statuses
        }
    }

    public func dispatchedJobs(eventIDs: [String]) async throws -> [String: Set<String>] {
        try await pool.read { db in
            var jobs: [String: Set<String>] = [:]
            for id in Set(eventIDs) {
                let slugs = try String.fetchAll(try db.cachedStatement(sql: "SELECT job_slug FROM dispatched WHERE event_id = ?"), arguments: [id])
                if !slugs.isEmpty { jobs[id] = Set(slugs) }
            }
            return jobs
        }
    }

    private static func seenEvent(_ db: Database, id: String) throws -> SeenEvent? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT event, dispatched_at FROM events WHERE event_id = ?"), arguments: [id]).map {
            SeenEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["event"] as String).utf8)),
                      dispatched: ($0["dispatched_at"] as Int64?) != nil)
        }
    }

    public func recentEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent] {
        try await pool.read { db in
            let prefix = idPrefix ?? ""
            return try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT event, received_at, dispatched_at FROM events
                WHERE substr(event_id, 1, ?) = ? ORDER BY received_at DESC, event_id DESC LIMIT ?
                """), arguments: [prefix.count, prefix, limit]).map {
                ListedEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["event"] as String).utf8)),
                            receivedAt: Date(millisecondsSince1970: $0["received_at"]), dispatched: ($0["dispatched_at"] as Int64?) != nil)
            }
        }
    }

    public func pendingDelayedEvents(idPrefix: String?, limit: Int) async throws -> [ListedEvent] {
        try await pool.read { db in
            let prefix = idPrefix ?? ""
            return try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT event, deliver_at FROM delayed_events
                WHERE status = 'PENDING' AND event IS NOT NULL AND substr(event_id, 1, ?) = ?
                ORDER BY deliver_at, event_id LIMIT ?
                """), arguments: [prefix.count, prefix, limit]).map {
                ListedEvent(event: try BatonJSON.decoder.decode(EventEnvelope.self, from: Data(($0["event"] as String).utf8)),
                            receivedAt: nil, dispatched: false, deliverAt: Date(millisecondsSince1970: $0["deliver_at"]), delayedStatus: .pending)
            }
        }
    }

    /// Records that event `eventID` (tenant-scoped) started all its runs: a resend starts none.
    /// The stored event keeps what a resend is answered with (id, name, timestamp, deliverAt);
    /// its payload and context are dropped (the runs have them).
    public func markEventDispatched(eventID: String, at now: Date = Date()) async throws {
        try await pool.write { db in try Self.markEventDispatched(db, eventID: eventID, time: now.millisecondsSince1970) }
    }

    private static func markEventDispatched(_ db: Database, eventID: String, time: Int64) throws {
        guard let seen = try Self.seenEvent(db, id: eventID), let stored = DispatchRules.dispatched(seen) else { return }
        try db.cachedStatement(sql: "UPDATE events SET dispatched_at = ?, event = ? WHERE event_id = ?").execute(arguments: [time, String(decoding: try BatonJSON.encoder.encode(stored), as: UTF8.self), eventID])
    }

    /// Forgets events dispatched, and delayed events delivered or canceled, before `cutoff`: a
    /// record with such an id is a new event again. Returns how many rows went.
    @discardableResult
    public func prune(before cutoff: Date) async throws -> Int {
        let cutoff = cutoff.millisecondsSince1970
        return try await pool.write { db in
            try db.cachedStatement(sql: "DELETE FROM events WHERE dispatched_at < ?").execute(arguments: [cutoff])
            var removed = db.changesCount
            try db.cachedStatement(sql: "DELETE FROM dispatched WHERE dispatched_at < ?").execute(arguments: [cutoff])
            removed += db.changesCount
            try db.cachedStatement(sql: "DELETE FROM flow_decisions WHERE decided_at < ?").execute(arguments: [cutoff])
            removed += db.changesCount
            try db.cachedStatement(sql: "DELETE FROM delayed_events WHERE status != 'PENDING' AND updated_at < ?").execute(arguments: [cutoff])
            return removed + db.changesCount
        }
    }

    /// Holds `event` until its `deliverAt`. A second hold of the same id changes nothing, and
    /// an event canceled before it arrived stays canceled. Held events are keyed by
    /// `event.tenant.scoped(event.id)`: the `id` of the other methods.
    public func hold(_ event: EventEnvelope, id: String, now: Date = Date()) async throws {
        try await pool.write { db in try Self.hold(db, id: id, event: event, now: now) }
    }

    private static func hold(_ db: Database, id: String, event: EventEnvelope, now: Date) throws {
        if let record = DelayedEventRules.held(try delayedRecord(db, id: id), id: id, event: event, now: now) {
            try writeDelayed(db, record)
        }
    }

    private static func delayedRecord(_ db: Database, id: String) throws -> DelayedEventRecord? {
        try Row.fetchOne(try db.cachedStatement(sql: """
            SELECT event_id, event, deliver_at, status, lease_owner, lease_until, updated_at FROM delayed_events WHERE event_id = ?
            """), arguments: [id]).map(delayedRecord)
    }

    private static func delayedRecord(_ row: Row) throws -> DelayedEventRecord {
        guard let status = DelayedEventRecord.Status(rawValue: row["status"]) else {
            throw StoreError("delayed event '\(row["event_id"] as String)' has an unknown status '\(row["status"] as String)'")
        }
        return DelayedEventRecord(id: row["event_id"], event: try (row["event"] as String?).map { try BatonJSON.decoder.decode(EventEnvelope.self, from: Data($0.utf8)) },
                                  deliverAt: Date(millisecondsSince1970: row["deliver_at"]), status: status, leaseOwner: row["lease_owner"],
                                  leaseUntil: (row["lease_until"] as Int64?).map(Date.init(millisecondsSince1970:)),
                                  updatedAt: Date(millisecondsSince1970: row["updated_at"]))
    }

    private static func writeDelayed(_ db: Database, _ record: DelayedEventRecord) throws {
        let json = try record.event.map { String(decoding: try BatonJSON.encoder.encode($0), as: UTF8.self) }
        try db.cachedStatement(sql: """
            INSERT INTO delayed_events (event_id, event, deliver_at, status, lease_owner, lease_until, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(event_id) DO UPDATE SET event = excluded.event, deliver_at = excluded.deliver_at, status = excluded.status,
                lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at
            """).execute(arguments: [record.id, json, record.deliverAt.millisecondsSince1970, record.status.rawValue, record.leaseOwner,
                                     record.leaseUntil?.millisecondsSince1970, record.updatedAt.millisecondsSince1970])
    }

    /// Claims due held events for delivery by `owner` (see `DelayedEventRules`).
    public func claimDueDelayed(owner: String, now: Date = Date(), lease: Duration, limit: Int = 100) async throws -> [EventEnvelope] {
        // The store keeps milliseconds: decide at the same precision.
        let now = Date(millisecondsSince1970: now.millisecondsSince1970)
        let time = now.millisecondsSince1970
        guard try await SQLiteDatabase.exists(pool, """
                SELECT EXISTS (SELECT 1 FROM delayed_events WHERE status = 'PENDING' AND deliver_at <= ? AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?))
                """, [time, time, owner]) else { return [] }
        return try await pool.write { db in
            var claimed: [EventEnvelope] = []
            for row in try Row.fetchAll(try db.cachedStatement(sql: """
                SELECT event_id, event, deliver_at, status, lease_owner, lease_until, updated_at FROM delayed_events
                WHERE status = 'PENDING' AND deliver_at <= ? AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?) ORDER BY deliver_at LIMIT ?
                """), arguments: [time, time, owner, limit]) {
                let record = try Self.delayedRecord(row)
                guard DelayedEventRules.isClaimable(record, by: owner, now: now), let event = record.event else { continue }
                try Self.writeDelayed(db, DelayedEventRules.claimed(record, by: owner, now: now, lease: lease))
                claimed.append(event)
            }
            return claimed
        }
    }

    /// Records that `owner` delivered held event `id` (after its runs were started).
    public func markDelivered(id: String, owner: String, now: Date = Date()) async throws {
        try await pool.write { db in
            if let record = try Self.delayedRecord(db, id: id), let delivered = DelayedEventRules.delivered(record, by: owner, now: now) {
                try Self.writeDelayed(db, delivered)
            }
        }
    }

    /// Cancels delayed event `id` unless it was delivered. An id not seen yet is recorded as
    /// canceled, so the event is dropped when it arrives. Returns the status afterwards and
    /// whether this call canceled it.
    public func cancelDelayed(id: String, now: Date = Date()) async throws -> (status: DelayedEventRecord.Status, canceled: Bool) {
        try await pool.write { db in
            let decision = DelayedEventRules.canceled(try Self.delayedRecord(db, id: id), id: id, now: now)
            if let record = decision.write { try Self.writeDelayed(db, record) }
            return (decision.status, decision.canceled)
        }
    }

    /// The status of delayed event `id`, if it is one.
    public func delayedEventStatus(id: String) async throws -> DelayedEventRecord.Status? {
        try await pool.read { db in
            try String.fetchOne(try db.cachedStatement(sql: "SELECT status FROM delayed_events WHERE event_id = ?"), arguments: [id])
                .flatMap(DelayedEventRecord.Status.init(rawValue:))
        }
    }

    /// A registration refused because its slug belongs to another tenant (see ``BatonDomain/JobOwnershipConflict``).
    public typealias JobOwnershipConflict = BatonDomain.JobOwnershipConflict

    /// Records (or replaces) a job registration.
    /// - Throws: ``JobOwnershipConflict`` when the slug is registered by another tenant.
    public func upsert(_ registration: JobRegistration) async throws {
        let json = String(decoding: try BatonJSON.encoder.encode(registration), as: UTF8.self)
        try await pool.write { db in
            let existing = try String.fetchOne(try db.cachedStatement(sql: "SELECT registration FROM jobs WHERE slug = ?"), arguments: [registration.slug])
            try DispatchRules.checkOwnership(registration, existing: try existing.map { try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8)) })
            try db.cachedStatement(sql: """
                INSERT INTO jobs (slug, version, event_name, registration, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(slug) DO UPDATE SET version = excluded.version, event_name = excluded.event_name,
                    registration = excluded.registration, updated_at = excluded.updated_at
                """).execute(arguments: [registration.slug, registration.version, registration.trigger.eventName, json,
                                 Date().millisecondsSince1970])
        }
    }

    /// Keeps the schedule of `registration` in step: a new or changed schedule starts from `now`,
    /// an unchanged one keeps its next tick, a job that is no longer scheduled loses it.
    public func syncSchedule(_ registration: JobRegistration, now: Date = Date()) async throws {
        try await pool.write { db in
            let current = try String.fetchOne(try db.cachedStatement(sql: "SELECT trigger FROM schedules WHERE job_slug = ?"), arguments: [registration.slug])
            switch DispatchRules.syncSchedule(registration, current: try current.map { try BatonJSON.decoder.decode(JobTrigger.self, from: Data($0.utf8)) }, now: now) {
            case .keep:
                return
            case .remove:
                try db.cachedStatement(sql: "DELETE FROM schedules WHERE job_slug = ?").execute(arguments: [registration.slug])
                return
            case .set(let trigger, let next):
                try Self.setSchedule(db, slug: registration.slug, trigger: trigger, next: next)
            }
        }
    }

    private static func setSchedule(_ db: Database, slug: String, trigger: JobTrigger, next: Date) throws {
            let trigger = String(decoding: try BatonJSON.encoder.encode(trigger), as: UTF8.self)
            try db.cachedStatement(sql: """
                INSERT INTO schedules (job_slug, trigger, next_due) VALUES (?, ?, ?)
                ON CONFLICT(job_slug) DO UPDATE SET trigger = excluded.trigger, next_due = excluded.next_due
                """).execute(arguments: [slug, trigger, next.millisecondsSince1970])
    }

    /// Schedules whose next tick is due at `now`.
    public func dueSchedules(now: Date = Date()) async throws -> [DueSchedule] {
        try await pool.read { db in
            try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM schedules WHERE next_due <= ? ORDER BY next_due"), arguments: [now.millisecondsSince1970]).map {
                DueSchedule(jobSlug: $0["job_slug"],
                            trigger: try BatonJSON.decoder.decode(JobTrigger.self, from: Data(($0["trigger"] as String).utf8)),
                            due: Date(millisecondsSince1970: $0["next_due"]),
                            lastTick: ($0["last_tick"] as Int64?).map(Date.init(millisecondsSince1970:)))
            }
        }
    }

    /// Records that the tick at `fired` ran; the next is due at `next`.
    public func advanceSchedule(jobSlug: String, fired: Date, next: Date) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "UPDATE schedules SET last_tick = ?, next_due = ? WHERE job_slug = ? AND next_due = ?").execute(arguments: [fired.millisecondsSince1970, next.millisecondsSince1970, jobSlug, fired.millisecondsSince1970])
        }
    }

    /// Every registered job; only `tenant`'s when given.
    public func jobs(of tenant: Tenant? = nil) async throws -> [JobRegistration] {
        try await pool.read { db in
            try String.fetchAll(try db.cachedStatement(sql: "SELECT registration FROM jobs ORDER BY slug")).map {
                try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8))
            }
        }.filter { tenant == nil || $0.tenant == tenant }
    }

    /// The job with `slug`, if registered.
    public func job(slug: String) async throws -> JobRegistration? {
        try await pool.read { db in
            try String.fetchOne(try db.cachedStatement(sql: "SELECT registration FROM jobs WHERE slug = ?"), arguments: [slug]).map {
                try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8))
            }
        }
    }

    /// The jobs registered for events named `name` (of every tenant), by slug.
    public func jobs(forEventName name: String) async throws -> [JobRegistration] {
        try await pool.read { db in
            try String.fetchAll(try db.cachedStatement(sql: "SELECT registration FROM jobs WHERE event_name = ? ORDER BY slug"), arguments: [name])
        }.map { try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8)) }
    }

    /// Whether the run of `jobSlug` for `eventID` was already dispatched.
    public func wasDispatched(eventID: String, jobSlug: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM dispatched WHERE event_id = ? AND job_slug = ?"), arguments: [eventID, jobSlug]) ?? false
        }
    }

    /// Records that the run of `jobSlug` for `eventID` was dispatched.
    public func markDispatched(eventID: String, jobSlug: String, runID: String) async throws {
        try await pool.write { db in
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO dispatched (event_id, job_slug, run_id, dispatched_at) VALUES (?, ?, ?, ?)").execute(arguments: [eventID, jobSlug, runID, Date().millisecondsSince1970])
        }
    }
}
