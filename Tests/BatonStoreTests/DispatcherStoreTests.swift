import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Testing

/// Everything the dispatcher keeps, as a test sees either backend.
typealias DispatcherBackend = DispatcherStoring & DutyLeaseStore

func withDispatcherStore(_ backend: StoreBackend, _ body: (any DispatcherBackend) async throws -> Void) async throws {
    try await withTwoStores(backend, sqlite: { try DispatcherStore(path: $0) as any DispatcherBackend },
                            postgres: { try await PostgresDispatcherStore(database: $0) }) { store, _ in try await body(store) }
}

func withTwoDispatcherStores(_ backend: StoreBackend, _ body: (any DispatcherBackend, any DispatcherBackend) async throws -> Void) async throws {
    try await withTwoStores(backend, sqlite: { try DispatcherStore(path: $0) as any DispatcherBackend },
                            postgres: { try await PostgresDispatcherStore(database: $0) }, body)
}

@Suite("Dispatcher store conformance: events seen, runs started, jobs and schedules, on SQLite and PostgreSQL", .serialized)
struct DispatcherStoreTests {
    /// A batch that saw `events` for the first time.
    func seen(_ events: [EventEnvelope]) -> DispatchBatch {
        var batch = DispatchBatch()
        batch.firstSeen = events
        return batch
    }

    @Test("the first event with an id wins, per tenant; it counts as dispatched once marked, without its payload", arguments: StoreBackend.allCases)
    func firstSeenWins(_ backend: StoreBackend) async throws {
        try await withTwoDispatcherStores(backend) { (a: any DispatcherBackend, b: any DispatcherBackend) async throws in
            let at = Date(timeIntervalSince1970: 1_790_000_000.125)  // what JSON keeps: milliseconds
            let first = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 1], timestamp: at)
            let resend = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 2], timestamp: at.addingTimeInterval(5))
            try await a.commit(seen([first]), at: at)
            try await b.commit(seen([resend]), at: at)
            #expect(try await b.seenEvent(eventID: "e1") == SeenEvent(event: first, dispatched: false), "the first one wins, on any instance")
            try await b.markEventDispatched(eventID: first.tenant.scoped(first.id), at: at)
            var answered = first
            answered.payload = .null  // once dispatched, what a resend is answered with is kept
            #expect(try await a.seenEvent(eventID: "e1") == SeenEvent(event: answered, dispatched: true))
            // Another tenant's event with the same id is another event.
            let other = EventEnvelope(id: "e1", name: "user.created", payload: ["n": 3], timestamp: at, tenant: try Tenant(project: "beta", environment: "prod"))
            try await a.commit(seen([other]), at: at)
            #expect(try await a.seenEvent(eventID: other.tenant.scoped("e1")) == SeenEvent(event: other, dispatched: false))
            #expect(try await a.seenEvent(eventID: "unknown") == nil)
        }
    }

    @Test("pruning forgets dispatched events, dispatched pairs and finished delayed events older than the cutoff; nothing pending",
          arguments: StoreBackend.allCases)
    func prune(_ backend: StoreBackend) async throws {
        try await withDispatcherStore(backend) { (store: any DispatcherBackend) async throws in
            let old = Date(timeIntervalSince1970: 1_790_000_000)
            let event = EventEnvelope(id: "old", name: "n", timestamp: old)
            let pending = EventEnvelope(id: "later", name: "n", deliverAt: Date().addingTimeInterval(3600))
            try await store.commit(seen([event, pending]), at: old)
            try await store.markEventDispatched(eventID: "old", at: old)
            try await store.markDispatched(eventID: "old", jobSlug: "j", runID: "r")  // now: kept
            try await store.hold(pending, id: "later", now: Date())
            #expect(try await store.prune(before: old.addingTimeInterval(1)) == 1)
            #expect(try await store.seenEvent(eventID: "old") == nil, "a resend of a forgotten id is a new event")
            #expect(try await store.wasDispatched(eventID: "old", jobSlug: "j"))
            #expect(try await store.seenEvent(eventID: "later") != nil, "not dispatched yet: kept")
            #expect(try await store.prune(before: Date().addingTimeInterval(60)) == 1, "the dispatched pair")
            #expect(try await store.delayedEventStatus(id: "later") == .pending)
        }
    }

    @Test("a batch's effects and offsets commit together; committing the same batch again changes nothing", arguments: StoreBackend.allCases)
    func batchCommit(_ backend: StoreBackend) async throws {
        try await withDispatcherStore(backend) { (store: any DispatcherBackend) async throws in
            let at = Date(timeIntervalSince1970: 1_790_000_000)
            let event = EventEnvelope(id: "b1", name: "user.created", payload: ["n": 1], timestamp: at)
            let later = EventEnvelope(id: "b2", name: "user.created", timestamp: at, deliverAt: Date().addingTimeInterval(3600))
            var effects = seen([event, later])
            effects.held = [later]
            effects.runsStarted = [(eventID: "b1", jobSlug: "welcome", runID: "run_b1")]
            effects.eventsDispatched = [event.tenant.scoped("b1")]
            effects.consumed(topic: "baton.events", partition: 0, offset: 41)
            effects.consumed(topic: "baton.events", partition: 0, offset: 42)
            effects.consumed(topic: "baton.events", partition: 2, offset: 7)
            #expect(try await store.consumedOffsets(topic: "baton.events").isEmpty)
            try await store.commit(effects, at: at)
            #expect(try await store.consumedOffsets(topic: "baton.events") == [0: 43, 2: 8], "one past the highest offset of each partition")
            #expect(try await store.wasDispatched(eventID: "b1", jobSlug: "welcome"))
            #expect(try await store.seenEvent(eventID: "b1")?.dispatched == true)
            #expect(try await store.seenEvent(eventID: "b2")?.dispatched == false)
            #expect(try await store.delayedEventStatus(id: "b2") == .pending)

            // Redelivered after a crash before the consumer moved on: nothing changes, offsets never go back.
            var older = effects
            older.consumed = [:]
            older.consumed(topic: "baton.events", partition: 0, offset: 41)
            try await store.commit(older, at: at)
            #expect(try await store.consumedOffsets(topic: "baton.events") == [0: 43, 2: 8])
            #expect(try await store.seenEvent(eventID: "b1")?.event.payload == .null, "dispatched: its payload is not kept")
            #expect(try await store.claimDueDelayed(owner: "test", now: Date().addingTimeInterval(7200), lease: .seconds(60), limit: 10).map(\.id) == ["b2"])
        }
    }

    @Test("a job id belongs to the tenant that registered it first; its matching jobs are found by event", arguments: StoreBackend.allCases)
    func jobs(_ backend: StoreBackend) async throws {
        try await withTwoDispatcherStores(backend) { (a: any DispatcherBackend, b: any DispatcherBackend) async throws in
            let beta = try Tenant(project: "beta", environment: "prod")
            let welcome = try JobRegistration(id: "welcome", name: "Welcome", version: "1.0.0", trigger: .event(name: "user.created"))
            try await a.upsert(welcome)
            var updated = welcome
            updated.version = "1.1.0"
            try await b.upsert(updated)
            var stolen = welcome
            stolen.tenant = beta
            await #expect(throws: JobOwnershipConflict.self) { try await b.upsert(stolen) }
            #expect(try await a.job(slug: "welcome")?.version == "1.1.0")
            #expect(try await b.matchingJobs(for: EventEnvelope(id: "x", name: "user.created")).map(\.slug) == ["welcome"])
            #expect(try await b.matchingJobs(for: EventEnvelope(id: "x", name: "user.deleted")).isEmpty)
            #expect(try await a.jobs(of: beta).isEmpty)
            #expect(try await a.jobs(of: nil).count == 1)
        }
    }

    @Test("a schedule starts when registered, keeps its next tick while unchanged, advances once per tick, goes when unscheduled",
          arguments: StoreBackend.allCases)
    func schedules(_ backend: StoreBackend) async throws {
        try await withTwoDispatcherStores(backend) { (a: any DispatcherBackend, b: any DispatcherBackend) async throws in
            let now = Date(timeIntervalSince1970: 1_790_000_000)
            var job = try JobRegistration(id: "tick", name: "Tick", version: "1.0.0", trigger: .interval(seconds: 60))
            try await a.syncSchedule(job, now: now)
            #expect(try await b.dueSchedules(now: now).isEmpty)
            let due = try #require(try await b.dueSchedules(now: now.addingTimeInterval(60)).first)
            #expect(due.jobSlug == "tick" && due.lastTick == nil)
            try await b.syncSchedule(job, now: now.addingTimeInterval(30))
            #expect(try await a.dueSchedules(now: now.addingTimeInterval(60)).map(\.due) == [due.due], "unchanged: keeps its next tick")
            try await a.advanceSchedule(jobSlug: "tick", fired: due.due, next: due.due.addingTimeInterval(60))
            try await b.advanceSchedule(jobSlug: "tick", fired: due.due, next: due.due.addingTimeInterval(999))  // late: already advanced
            let next = try #require(try await a.dueSchedules(now: now.addingTimeInterval(120)).first)
            #expect(next.due == due.due.addingTimeInterval(60) && next.lastTick == due.due)
            job.trigger = .event(name: "n")
            try await b.syncSchedule(job, now: now)
            #expect(try await a.dueSchedules(now: now.addingTimeInterval(3600)).isEmpty)
        }
    }
}
