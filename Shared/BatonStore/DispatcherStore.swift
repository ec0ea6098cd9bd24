import BatonProtocol
import Foundation
import GRDB

/// The run dispatcher's state: known jobs and the (event, job) pairs already dispatched.
public final class DispatcherStore: Sendable {
    private let pool: DatabasePool

    /// Opens (creating when needed) the SQLite file at `path`.
    public init(path: String) throws {
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
                CREATE TABLE dispatched (
                    event_id TEXT NOT NULL,
                    job_slug TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    dispatched_at INTEGER NOT NULL,
                    PRIMARY KEY (event_id, job_slug)
                );
                """)
        }
        self.pool = try SQLiteDatabase.open(path: path, migrator: migrator)
    }

    /// Records (or replaces) a job registration.
    public func upsert(_ registration: JobRegistration) throws {
        let json = String(decoding: try BatonJSON.encoder.encode(registration), as: UTF8.self)
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO jobs (slug, version, event_name, registration, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(slug) DO UPDATE SET version = excluded.version, event_name = excluded.event_name,
                    registration = excluded.registration, updated_at = excluded.updated_at
                """, arguments: [registration.slug, registration.version, registration.trigger.eventName, json,
                                 Date().millisecondsSince1970])
        }
    }

    /// Every registered job.
    public func jobs() throws -> [JobRegistration] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT registration FROM jobs ORDER BY slug").map {
                try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8))
            }
        }
    }

    /// Jobs whose trigger matches `event`.
    public func matchingJobs(for event: EventEnvelope) throws -> [JobRegistration] {
        let candidates = try pool.read { db in
            try String.fetchAll(db, sql: "SELECT registration FROM jobs WHERE event_name = ? ORDER BY slug", arguments: [event.name])
        }
        return try candidates
            .map { try BatonJSON.decoder.decode(JobRegistration.self, from: Data($0.utf8)) }
            .filter { $0.trigger.matches(event) }
    }

    /// Whether the run of `jobSlug` for `eventID` was already dispatched.
    public func wasDispatched(eventID: String, jobSlug: String) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM dispatched WHERE event_id = ? AND job_slug = ?", arguments: [eventID, jobSlug]) ?? false
        }
    }

    /// Records that the run of `jobSlug` for `eventID` was dispatched.
    public func markDispatched(eventID: String, jobSlug: String, runID: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO dispatched (event_id, job_slug, run_id, dispatched_at) VALUES (?, ?, ?, ?)",
                           arguments: [eventID, jobSlug, runID, Date().millisecondsSince1970])
        }
    }
}
