import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Testing

/// Everything the task-result service keeps, as a test sees either backend.
typealias TaskResultBackend = RunStore & TimerStore & FetchStore & DeduplicationStore & ConsumedOffsetStore & DutyLeaseStore & RequestWaitStore
    & ConcurrencySlotStore

func withTaskResultStore(_ backend: StoreBackend, _ body: (any TaskResultBackend) async throws -> Void) async throws {
    try await withStore(backend, sqlite: { $0 as any TaskResultBackend }, postgres: { try await PostgresTaskResultStore(database: $0) }, body)
}

func withTwoTaskResultStores(_ backend: StoreBackend, _ body: (any TaskResultBackend, any TaskResultBackend) async throws -> Void) async throws {
    try await withTwoStores(backend, sqlite: { try TaskResultStore(path: $0) as any TaskResultBackend },
                            postgres: { try await PostgresTaskResultStore(database: $0) }, body)
}

@Suite("Run store conformance: run events, checkpoints, waits, fetches, cancels and stuck runs, on SQLite and PostgreSQL", .serialized)
struct TaskResultStoreTests {
    let topic = "baton.task-results"

    func created(_ run: String, at date: Date = Date()) -> RunEvent {
        RunEvent(runId: run, occurredAt: date, body: .runCreated(.init(jobSlug: "job", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(run)", name: "n"))))
    }

    func completed(_ run: String, _ key: String, _ output: JSONValue) -> RunEvent {
        RunEvent(runId: run, body: .taskCompleted(.init(taskId: "t-\(key)", key: key, parentTaskId: nil, output: output)))
    }

    /// `events` as consumed records of partition 0 from offset `from` on.
    func records(_ events: [RunEvent], from offset: Int64 = 0) -> [ConsumedRunEvent] {
        events.enumerated().map { ConsumedRunEvent(event: $1, topic: topic, partition: 0, offset: offset + Int64($0)) }
    }

    @Test("a batch applies its events and its offsets in one go; applying it again changes nothing; unknown runs are reported",
          arguments: StoreBackend.allCases)
    func batchApply(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let batch: [ConsumedRunEvent] = [
                .init(event: created("r1"), topic: topic, partition: 0, offset: 10, traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                .init(event: completed("r1", "a", 1), topic: topic, partition: 0, offset: 11),
                .init(event: nil, topic: topic, partition: 1, offset: 4),  // dead-lettered: only its offset counts
                .init(event: completed("ghost", "a", 2), topic: topic, partition: 1, offset: 5),
            ]
            #expect(try await store.apply(batch) == ["ghost"])
            #expect(try await store.consumedOffsets(topic: topic) == [0: 12, 1: 6])
            #expect(try await store.traceParent(runId: "r1") == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            _ = try await store.apply(batch)
            let run = try #require(try await store.run(id: "r1"))
            #expect(run.tasks.map(\.key) == ["a"] && run.tasks.first?.output == 1)
            #expect(run.status == .executing && run.jobVersion == "1.0.0")
            #expect(try await store.consumedOffsets(topic: topic) == [0: 12, 1: 6])
            #expect(try await store.listRuns(RunQuery(tenant: .default, eventId: "e-r1")).ids == ["r1"])
            #expect(try await store.tenant(ofRun: "r1") == .default)
            // A replay: linked to the run it replays, with that run's job version and event.
            let original = try #require(try await store.creation(ofRun: "r1"))
            var event = original.event
            event.id = "e-replay"
            let replay = RunEvent(runId: "r1-replay", body: .runCreated(.init(jobSlug: original.jobSlug, jobVersion: original.jobVersion,
                                                                              event: event, replayOf: "r1")))
            _ = try await store.apply(records([replay], from: 20))
            #expect(try await store.run(id: "r1-replay")?.replayOf == "r1")
            #expect(try await store.creation(ofRun: "r1-replay") == .init(jobSlug: "job", jobVersion: "1.0.0", event: event, replayOf: "r1"))
            #expect(try await store.run(id: "r1")?.replayOf == nil)
        }
    }

    @Test("checkpoints read together answer each id in order; a repeated id counts two slices", arguments: StoreBackend.allCases)
    func checkpointsTogether(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            _ = try await store.apply(records([created("r1"), completed("r1", "a", "done"), created("r2")]))
            let answers = try await store.checkpoints(runIds: ["r1", "unknown", "r2", "r1"])
            #expect(answers.map(\.runId) == ["r1", "unknown", "r2", "r1"])
            #expect(answers[0].completedTasks.map(\.key) == ["a"])
            #expect(answers[1].status == nil)
            #expect(answers[2].completedTasks.isEmpty)
            #expect(answers[0].slice == 1 && answers[3].slice == 2 && answers[2].slice == 1)
        }
    }

    @Test("a wait: the run waits, its timer fires once, the wait completes and the run is queued; a replayed request schedules nothing new",
          arguments: StoreBackend.allCases)
    func waitLifecycle(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let due = Date().addingTimeInterval(-1)
            let wait = RunEvent(runId: "r", body: .waitRequested(.init(taskId: "w", key: "nap", parentTaskId: nil, until: due)))
            _ = try await store.apply(records([created("r"), completed("r", "a", 1), wait]))
            #expect(try await store.run(id: "r")?.status == .waiting)
            let claimed = try await store.claimDueTimers(owner: "i1", now: Date(), lease: .seconds(30), limit: 10)
            #expect(claimed.map(\.taskId) == ["w"])
            let command = try #require(try await store.resumeCommand(runId: "r", counting: "w"))
            #expect(command.completedTasks.map(\.key) == ["a", "nap"], "the wait counts as done in the command that ends it")
            try await store.markFired(claimed, owner: "i1")
            let run = try #require(try await store.run(id: "r"))
            #expect(run.status == .queued)
            #expect(run.tasks.first { $0.id == "w" }?.status == .completed)
            _ = try await store.apply(records([wait], from: 3))
            #expect(try await store.claimDueTimers(owner: "i2", now: Date().addingTimeInterval(3600), lease: .seconds(30), limit: 10).isEmpty,
                    "a replayed wait request schedules nothing new")
            #expect(try await store.checkpoints(runIds: ["r"]).first?.completedTasks.map(\.key) == ["a", "nap"])
        }
    }

    @Test("cancel: an unknown run is nil, a running one ends CANCELED with its timers dropped, an ended one is left as it is",
          arguments: StoreBackend.allCases)
    func cancel(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            #expect(try await store.cancel(runId: "nope", at: Date()) == nil)
            let wait = RunEvent(runId: "r", body: .waitRequested(.init(taskId: "w", key: "nap", parentTaskId: nil, until: Date())))
            _ = try await store.apply(records([created("r"), wait]))
            let first = try #require(try await store.cancel(runId: "r", at: Date()))
            #expect(first.canceled && first.status == .canceled)
            let again = try #require(try await store.cancel(runId: "r", at: Date()))
            #expect(!again.canceled && again.status == .canceled)
            #expect(try await store.claimDueTimers(owner: "i", now: Date().addingTimeInterval(60), lease: .seconds(30), limit: 10).isEmpty)
            // A slice that was running reports what it did: recorded, the status stays.
            _ = try await store.apply(records([completed("r", "late", 2), RunEvent(runId: "r", body: .runCompleted(.init(output: 3)))], from: 2))
            let run = try #require(try await store.run(id: "r"))
            #expect(run.status == .canceled && run.tasks.contains { $0.key == "late" } && run.output == nil)
            #expect(try await store.resumeCommand(runId: "r", counting: nil) == nil)
        }
    }

    @Test("a run with no progress is stuck; a re-issue restarts its deadline; a time-out applies only to the progress it saw",
          arguments: StoreBackend.allCases)
    func stuckRuns(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let old = Date().addingTimeInterval(-600)
            _ = try await store.apply(records([created("old", at: old), created("new")]))
            let stuck = try await store.stuckRuns(before: Date().addingTimeInterval(-60), limit: 10)
            #expect(stuck.map(\.runId) == ["old"] && stuck.first?.reissues == 0)
            try await store.timeOut(runId: "old", reason: "r", lastProgress: old.addingTimeInterval(1), at: Date())
            #expect(try await store.run(id: "old")?.status == .queued, "progress other than what was seen: no time-out")
            try await store.recordReissue(runId: "old", at: Date())
            #expect(try await store.stuckRuns(before: Date().addingTimeInterval(-60), limit: 10).isEmpty)
            let again = try #require(try await store.stuckRuns(before: Date().addingTimeInterval(1), limit: 10).first { $0.runId == "old" })
            #expect(again.reissues == 1)
            try await store.timeOut(runId: "old", reason: "no progress", lastProgress: again.lastProgress, at: Date())
            let run = try #require(try await store.run(id: "old"))
            #expect(run.status == .timedOut && run.error == "no progress")
            #expect(try await store.listRuns(RunQuery(tenant: .default, statuses: [.timedOut])).ids == ["old"])
            #expect(try await store.activeRuns().count == 1)
        }
    }

    @Test("a background fetch: claimed, completed with its response as the task's output, the run queued and resumed once",
          arguments: StoreBackend.allCases)
    func fetchLifecycle(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let request = BackgroundFetchRequest(url: "https://example.com/x")
            let fetch = RunEvent(runId: "r", body: .fetchRequested(.init(taskId: "f", key: "get", parentTaskId: nil, request: request)))
            _ = try await store.apply(records([created("r"), fetch]))
            #expect(try await store.run(id: "r")?.status == .waiting)
            let claimed = try #require(try await store.claimDueFetches(owner: "i1", now: Date().addingTimeInterval(1), lease: .seconds(60), limit: 10).first)
            let response = BackgroundFetchResponse(status: 200, headers: [:], body: "ok", error: nil, attempts: 2)
            #expect(try await store.completeFetch(claimed, owner: "i1", response: response, now: Date()))
            #expect(try await !store.completeFetch(claimed, owner: "i1", response: response, now: Date()), "done once")
            let run = try #require(try await store.run(id: "r"))
            #expect(run.status == .queued)
            let task = try #require(run.tasks.first { $0.id == "f" })
            #expect(task.status == .completed && task.attempts == 2 && task.output?["body"] == "ok")
            let resumes = try await store.fetchResumes(limit: 10)
            #expect(resumes.map(\.taskId) == ["f"] && resumes.first?.command?.completedTasks.map(\.key) == ["get"])
            try await store.markFetchResumed(runId: "r", taskId: "f")
            #expect(try await store.fetchResumes(limit: 10).isEmpty)
        }
    }

    @Test("two instances applying the same batches at once (a rebalance) end in the state one would reach", arguments: StoreBackend.allCases)
    func concurrentApply(_ backend: StoreBackend) async throws {
        try await withTwoTaskResultStores(backend) { (a: any TaskResultBackend, b: any TaskResultBackend) async throws in
            var events: [RunEvent] = []
            for run in 0..<20 {
                events.append(created("r\(run)"))
                for task in 0..<5 { events.append(completed("r\(run)", "k\(task)", .int(Int64(task)))) }
                events.append(RunEvent(runId: "r\(run)", body: .runCompleted(.init(output: .int(Int64(run))))))
            }
            let batches = stride(from: 0, to: events.count, by: 10).map { Array(events[$0..<min($0 + 10, events.count)]) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for store in [a, b] {
                    group.addTask {
                        var offset: Int64 = 0
                        for batch in batches {
                            _ = try await store.apply(self.records(batch, from: offset))
                            offset += Int64(batch.count)
                        }
                    }
                }
                try await group.waitForAll()
            }
            for run in 0..<20 {
                let details = try #require(try await a.run(id: "r\(run)"))
                #expect(details.status == .completed && details.output == .int(Int64(run)))
                #expect(details.tasks.map(\.key) == (0..<5).map { "k\($0)" })
            }
            #expect(try await b.consumedOffsets(topic: topic) == [0: Int64(events.count)])
        }
    }

    @Test("a duty is held by one instance at a time; its holder renews it; another takes it when the lease ends", arguments: StoreBackend.allCases)
    func duty(_ backend: StoreBackend) async throws {
        try await withTwoTaskResultStores(backend) { (a: any TaskResultBackend, b: any TaskResultBackend) async throws in
            let now = Date()
            #expect(try await a.acquireDuty("reaper", owner: "a", now: now, lease: .seconds(30)))
            #expect(try await !b.acquireDuty("reaper", owner: "b", now: now.addingTimeInterval(10), lease: .seconds(30)))
            #expect(try await a.acquireDuty("reaper", owner: "a", now: now.addingTimeInterval(20), lease: .seconds(30)), "renewed to 50 s")
            #expect(try await !b.acquireDuty("reaper", owner: "b", now: now.addingTimeInterval(40), lease: .seconds(30)))
            #expect(try await b.acquireDuty("reaper", owner: "b", now: now.addingTimeInterval(51), lease: .seconds(30)))
            #expect(try await !a.acquireDuty("reaper", owner: "a", now: now.addingTimeInterval(52), lease: .seconds(30)))
            #expect(try await a.acquireDuty("other", owner: "a", now: now, lease: .seconds(30)), "duties are independent")
        }
    }

    @Test("listing runs: one tenant's, filtered by job, statuses, creation time and event, newest first; paging while runs are created skips and repeats none",
          arguments: StoreBackend.allCases)
    func listing(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let beta = try Tenant(project: "beta", environment: "prod")
            let start = Date(millisecondsSince1970: 1_790_000_000_000)
            func created(_ run: String, job: String, tenant: Tenant = .default, minute: Int) -> RunEvent {
                RunEvent(runId: run, occurredAt: start.addingTimeInterval(Double(minute) * 60),
                         body: .runCreated(.init(jobSlug: job, jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(run)", name: "n", tenant: tenant))))
            }
            var events: [RunEvent] = []
            for index in 0..<25 { events.append(created("a\(index)", job: index.isMultiple(of: 2) ? "even" : "odd", minute: index)) }
            events.append(created("b0", job: "even", tenant: beta, minute: 3))
            events.append(RunEvent(runId: "a4", body: .runCompleted(.init(output: 1))))
            events.append(RunEvent(runId: "a5", body: .runFailed(.init(status: .failed, error: "x"))))
            _ = try await store.apply(records(events))

            // Paging through the default tenant's runs, 7 at a time, while new ones are created.
            var seen: [String] = []
            var cursor: RunCursor?
            var pages = 0
            repeat {
                let page = try await store.listRuns(RunQuery(tenant: .default, after: cursor, limit: 7))
                seen += page.ids
                cursor = page.next
                pages += 1
                _ = try await store.apply(records([created("new\(pages)", job: "even", minute: 100 + pages)], from: Int64(100 + pages)))
            } while cursor != nil && pages < 10
            #expect(pages == 4, "25 runs in pages of 7")
            #expect(seen == (0..<25).reversed().map { "a\($0)" }, "newest first, none skipped or repeated")
            let fresh = try await store.listRuns(RunQuery(tenant: .default, limit: 3))
            #expect(fresh.ids == ["new4", "new3", "new2"], "runs created meanwhile come first")

            #expect(try await store.listRuns(RunQuery(tenant: beta)).ids == ["b0"], "another tenant sees only its own")
            #expect(try await store.listRuns(RunQuery(tenant: .default, jobSlug: "odd", limit: 100)).ids.count == 12)
            #expect(try await store.listRuns(RunQuery(tenant: .default, statuses: [.completed, .failed])).ids == ["a5", "a4"])
            let window = RunQuery(tenant: .default, createdFrom: start.addingTimeInterval(10 * 60), createdTo: start.addingTimeInterval(13 * 60))
            #expect(try await store.listRuns(window).ids == ["a12", "a11", "a10"], "from inclusive, to exclusive")
            #expect(try await store.listRuns(RunQuery(tenant: beta, eventId: "e-a1")).ids.isEmpty)
            #expect(try await store.listRuns(RunQuery(tenant: .default, eventId: "e-a1")).ids == ["a1"])
            // Counted per job, version and status: "even" has 13 original runs (2 ended) and 4 created while paging.
            let counts = try await store.runCounts(tenant: .default, jobSlug: "even")
            #expect(counts.map(\.count).reduce(0, +) == 13 + 4)
            #expect(counts.first { $0.status == .completed }?.count == 1 && counts.allSatisfy { $0.jobVersion == "1.0.0" })
            #expect(try await store.runCounts(tenant: beta, jobSlug: "odd").isEmpty)
            let cursorText = try #require(try await store.listRuns(RunQuery(tenant: .default, limit: 1)).next).encoded
            #expect(RunCursor(encoded: cursorText) != nil && RunCursor(encoded: "bm90IGEgY3Vyc29y") == nil && RunCursor(encoded: "%%%") == nil
                    && RunCursor(encoded: "r") == nil && RunCursor(encoded: "r01") == nil && RunCursor(encoded: "r1234567890123456789") == nil
                    && RunCursor(encoded: "r0")?.sequence == 0 && RunCursor(encoded: "r42")?.sequence == 42)
        }
    }
}
