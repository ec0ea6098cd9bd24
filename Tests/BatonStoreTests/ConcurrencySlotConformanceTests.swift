import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Testing

@Suite("Concurrency slots in the run store: grants in order, release on wait and end, queue again after a wait, never over the limit across instances; SQLite and PostgreSQL", .serialized)
struct ConcurrencySlotConformanceTests {
    let topic = "baton.task-results"
    let slot = ConcurrencySlot(queue: "job:export", limit: 2)

    func created(_ id: String, limited: Bool = true) -> RunEvent {
        RunEvent(runId: id, body: .runCreated(.init(jobSlug: "export", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(id)", name: "n"),
                                                    concurrency: limited ? slot : nil)))
    }

    /// Applies `events` as one poll's records (the tests do not replay: offsets start at 0 each time).
    func apply(_ events: [RunEvent], _ store: any TaskResultBackend) async throws {
        _ = try await store.apply(events.enumerated().map { ConsumedRunEvent(event: $1, topic: topic, partition: 0, offset: Int64($0)) })
    }

    @Test("runs get slots oldest first; waiting and ending give them back; a wait's end queues the run at the back; a canceled queued run leaves the queue",
          arguments: StoreBackend.allCases)
    func lifecycle(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            try await apply(["r1", "r2", "r3", "r4", "r5"].map { created($0) } + [created("u", limited: false)], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["r1", "r2"])
            #expect(try await store.grantSlots(now: Date()).isEmpty, "both slots are held")
            #expect(try await store.slotCounts() == SlotCounts(waiting: 3, holding: 2))

            // Waiting for a slot is not stuck; holding one is, once the grant is old enough.
            let stuck = try await store.stuckRuns(before: Date().addingTimeInterval(3600), limit: 100).map(\.runId)
            #expect(Set(stuck) == ["r1", "r2", "u"], "\(stuck)")

            // Each grant is a timer: firing it sends the run's command.
            let grants = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(1), lease: .seconds(30), limit: 10)
            #expect(Set(grants.map(\.runId)) == ["r1", "r2"] && grants.allSatisfy { ConcurrencyRules.isGrant($0.taskId) })
            let r1Grant = try #require(grants.first { $0.runId == "r1" })
            #expect(try await store.resumeCommand(runId: "r1", counting: r1Grant.taskId) != nil)
            try await store.markFired(grants, owner: "a")

            // r1 waits (slot back: r3 gets it), r2 ends (r4 gets it).
            try await apply([RunEvent(runId: "r1", body: .waitRequested(.init(taskId: "w", key: "pause", parentTaskId: nil, until: Date())))], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["r3"])
            try await apply([RunEvent(runId: "r2", body: .runCompleted(.init(output: 2)))], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["r4"])

            // r1's wait ends: no command yet, it queues behind r5.
            let due = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(2), lease: .seconds(30), limit: 10)
            let wait = try #require(due.first { $0.runId == "r1" && $0.taskId == "w" })
            #expect(try await store.resumeCommand(runId: "r1", counting: wait.taskId) == nil, "a limited run queues for a slot before it resumes")
            try await store.markFired(due, owner: "a")
            #expect(try await store.run(id: "r1")?.status == .queued)
            #expect(try await store.grantSlots(now: Date()).isEmpty)

            try await apply([created("r6")], store)
            _ = try await store.cancel(runId: "r6", at: Date())
            try await apply([RunEvent(runId: "r3", body: .runCompleted(.init(output: 3)))], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["r5"])
            try await apply([RunEvent(runId: "r4", body: .runFailed(.init(error: "no")))], store)
            let regrant = try await store.grantSlots(now: Date())
            #expect(regrant.map(\.runId) == ["r1"])
            let timers = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(3), lease: .seconds(30), limit: 10)
            let r1 = try #require(timers.first { $0.runId == "r1" })
            let command = try #require(try await store.resumeCommand(runId: "r1", counting: r1.taskId))
            #expect(command.completedTasks.contains { $0.taskId == "w" }, "the resumed run replays its ended wait")
            try await apply([RunEvent(runId: "r5", body: .runCompleted(.init(output: 5))), RunEvent(runId: "r1", body: .runCompleted(.init(output: 1)))],
                            store)
            #expect(try await store.grantSlots(now: Date()).isEmpty, "the canceled r6 left the queue")
            #expect(try await store.slotCounts() == SlotCounts(waiting: 0, holding: 0), "every run ended: the queue is empty")
        }
    }

    @Test("a run alone in its queue that waits and queues again gets a new grant, which fires (grant numbers are never reused)",
          arguments: StoreBackend.allCases)
    func regrantAlone(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            try await apply([created("solo")], store)
            for round in 1...3 {
                let grant = try #require(try await store.grantSlots(now: Date()).first, "round \(round)")
                let due = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(Double(round)), lease: .seconds(30), limit: 10)
                #expect(due.map(\.taskId) == [grant.timerId], "round \(round): the grant's timer fires")
                try await store.markFired(due, owner: "a")
                // The run waits (its slot is free, the queue empty), and the wait ends: it queues again.
                try await apply([RunEvent(runId: "solo", body: .waitRequested(.init(taskId: "w\(round)", key: "w\(round)", parentTaskId: nil, until: Date())))], store)
                let wait = try await store.claimDueTimers(owner: "a", now: Date().addingTimeInterval(Double(round) + 0.5), lease: .seconds(30), limit: 10)
                #expect(wait.map(\.taskId) == ["w\(round)"])
                try await store.markFired(wait, owner: "a")
            }
        }
    }

    @Test("a repeated record of an ended run does not queue it; a replayed wait keeps a waiting run's place; a late second firing of an old grant resumes nothing",
          arguments: StoreBackend.allCases)
    func repeatsAndLateTimers(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let one = ConcurrencySlot(queue: "job:solo", limit: 1)
            func create(_ id: String) -> RunEvent {
                RunEvent(runId: id, body: .runCreated(.init(jobSlug: "solo", jobVersion: "1.0.0", event: EventEnvelope(id: "e-\(id)", name: "n"), concurrency: one)))
            }
            // An ended run's record again (a replay asked twice, a dispatcher resending) takes no slot.
            try await apply([create("done")], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["done"])
            try await apply([RunEvent(runId: "done", body: .runCompleted(.init(output: 1)))], store)
            try await apply([create("done"), create("a"), create("b")], store)
            #expect(try await store.grantSlots(now: Date()).map(\.runId) == ["a"])

            // b waits for a slot; a replayed slice of b asks for a wait: b keeps its place.
            try await apply([RunEvent(runId: "b", body: .waitRequested(.init(taskId: "w", key: "w", parentTaskId: nil, until: Date().addingTimeInterval(3600))))], store)
            try await apply([RunEvent(runId: "a", body: .runCompleted(.init(output: 2)))], store)
            let bGrant = try #require(try await store.grantSlots(now: Date()).first)
            #expect(bGrant.runId == "b")

            // b's grant fires, but is not recorded as fired (a crash); b waits, queues again and gets a new grant.
            let first = try await store.claimDueTimers(owner: "x", now: Date().addingTimeInterval(1), lease: .seconds(1), limit: 10)
            #expect(first.map(\.taskId).contains(bGrant.timerId))
            #expect(try await store.resumeCommand(runId: "b", counting: bGrant.timerId) != nil)
            try await apply([RunEvent(runId: "b", body: .waitRequested(.init(taskId: "w2", key: "w2", parentTaskId: nil, until: Date())))], store)
            let wait = try await store.claimDueTimers(owner: "y", now: Date().addingTimeInterval(2), lease: .seconds(30), limit: 10).filter { $0.taskId == "w2" }
            try await store.markFired(wait, owner: "y")
            let second = try #require(try await store.grantSlots(now: Date()).first)
            #expect(second.runId == "b" && second.timerId != bGrant.timerId)
            #expect(try await store.resumeCommand(runId: "b", counting: bGrant.timerId) == nil, "the old grant fires again late: nothing")
            #expect(try await store.resumeCommand(runId: "b", counting: second.timerId) != nil)
        }
    }

    @Test("two instances granting at once never hand out more slots than the limit", arguments: StoreBackend.allCases)
    func twoInstances(_ backend: StoreBackend) async throws {
        try await withTwoTaskResultStores(backend) { (first: any TaskResultBackend, second: any TaskResultBackend) async throws in
            let limited = ConcurrencySlot(queue: "shared:exports", limit: 3)
            let records = (0..<30).map { n in
                ConsumedRunEvent(event: RunEvent(runId: "run-\(n)", body: .runCreated(.init(jobSlug: "export", jobVersion: "1.0.0",
                                                                                            event: EventEnvelope(id: "e\(n)", name: "n"), concurrency: limited))),
                                 topic: topic, partition: 0, offset: Int64(n))
            }
            _ = try await first.apply(records)
            let granted = try await withThrowingTaskGroup(of: [SlotGrant].self) { group in
                for store in [first, second, first, second] {
                    group.addTask {
                        var all: [SlotGrant] = []
                        for _ in 0..<10 { all += try await store.grantSlots(now: Date()) }
                        return all
                    }
                }
                return try await group.reduce(into: [SlotGrant]()) { $0 += $1 }
            }
            #expect(granted.count == 3 && Set(granted.map(\.runId)) == ["run-0", "run-1", "run-2"], "\(granted.map(\.runId))")
        }
    }
}
