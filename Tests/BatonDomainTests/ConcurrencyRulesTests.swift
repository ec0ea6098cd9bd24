import BatonDomain
import BatonProtocol
import Foundation
import Testing

@Suite("Concurrency rules: who gets a slot, when a run gives it back and when it queues again")
struct ConcurrencyRulesTests {
    let slot = ConcurrencySlot(queue: "job:export", limit: 2)
    let now = Date(millisecondsSince1970: 1_780_000_000_000)

    @Test("the oldest waiting runs get the free slots; none while a lowered limit is still exceeded")
    func grants() {
        #expect(ConcurrencyRules.granted(limit: 3, holding: 1, queued: ["a", "b", "c"]) == ["a", "b"])
        #expect(ConcurrencyRules.granted(limit: 3, holding: 0, queued: ["a"]) == ["a"])
        #expect(ConcurrencyRules.granted(limit: 3, holding: 3, queued: ["a"]).isEmpty)
        #expect(ConcurrencyRules.granted(limit: 2, holding: 5, queued: ["a"]).isEmpty)
    }

    @Test("a wait, a retry back-off, a child or an event queue a limited run again; a grant, a yield and the reaper go on with its slot")
    func whichTimersQueue() {
        #expect(ConcurrencyRules.queues(resumingWith: "t-wait"))
        #expect(ConcurrencyRules.queues(resumingWith: RunRules.retryTimerID(taskId: "t", attempt: 2)))
        #expect(ConcurrencyRules.queues(resumingWith: RunRules.childTimerID(taskId: "t")))
        #expect(!ConcurrencyRules.queues(resumingWith: nil), "the reaper re-issues a run that holds its slot")
        #expect(!ConcurrencyRules.queues(resumingWith: ConcurrencyRules.grantTimerID(sequence: 7)))
        #expect(!ConcurrencyRules.queues(resumingWith: "yield#1"))
        #expect(!ConcurrencyRules.queues(resumingWith: RunRules.parentNoticeTimerID))
        #expect(!ConcurrencyRules.queues(resumingWith: RunRules.eventWaitTimeoutTimerID(taskId: "t")))
        #expect(ConcurrencyRules.isGrant(ConcurrencyRules.grantTimerID(sequence: 7)) && !ConcurrencyRules.isGrant("t-wait"))
    }

    @Test("a grant resumes its holder only (not after the run waited and was granted again); other timers resume a run that holds its slot")
    func whoResumes() {
        let grant7 = ConcurrencyRules.grantTimerID(sequence: 7)
        #expect(ConcurrencyRules.grantSequence(ofTimer: grant7) == 7 && ConcurrencyRules.grantSequence(ofTimer: "yield#1") == nil)
        #expect(ConcurrencyRules.resumes(timer: grant7, holdingSequence: 7))
        #expect(!ConcurrencyRules.resumes(timer: grant7, holdingSequence: 9), "a late second firing of an older grant")
        #expect(!ConcurrencyRules.resumes(timer: grant7, holdingSequence: nil))
        #expect(ConcurrencyRules.resumes(timer: "yield#1", holdingSequence: 7))
        #expect(!ConcurrencyRules.resumes(timer: "yield#1", holdingSequence: nil))
        #expect(!ConcurrencyRules.resumes(timer: "t-wait", holdingSequence: nil), "it queues for a slot first")
        #expect(ConcurrencyRules.resumes(timer: nil, holdingSequence: nil), "the reaper re-issues a stuck run")
    }

    @Test("a limited run queues when created, gives its slot back when it waits or ends, keeps it when it yields, and queues again when its wait ends")
    func runLifecycle() throws {
        let created = RunEvent(runId: "r", body: .runCreated(.init(jobSlug: "export", jobVersion: "1.0.0", event: EventEnvelope(id: "e", name: "n"),
                                                                   concurrency: slot)))
        #expect(RunRules.apply(created, status: nil)?.contains(.queueForSlot(slot)) == true)
        let unlimited = RunEvent(runId: "u", body: .runCreated(.init(jobSlug: "export", jobVersion: "1.0.0", event: EventEnvelope(id: "e", name: "n"))))
        #expect(RunRules.apply(unlimited, status: nil)?.contains { if case .queueForSlot = $0 { true } else { false } } == false)

        let wait = RunEvent(runId: "r", body: .waitRequested(.init(taskId: "w", key: "pause", parentTaskId: nil, until: now)))
        #expect(RunRules.apply(wait, status: .executing)?.contains(.releaseSlot) == true)
        let completed = RunEvent(runId: "r", body: .runCompleted(.init(output: 1)))
        #expect(RunRules.apply(completed, status: .executing)?.contains(.leaveQueue) == true)
        #expect(RunRules.apply(wait, status: .executing)?.contains(.leaveQueue) == false, "a waiting run keeps its place in a queue")
        #expect(RunRules.apply(created, status: .completed)?.contains(.queueForSlot(slot)) == false, "a repeated record does not queue an ended run")
        #expect(RunRules.apply(created, status: .waiting)?.contains(.queueForSlot(slot)) == false, "nor a waiting one")
        #expect(RunRules.apply(created, status: .queued)?.contains(.queueForSlot(slot)) == true, "a new run (PostgreSQL creates it first)")
        #expect(RunRules.apply(completed, status: .completed)?.isEmpty == true, "an ended run changes nothing")
        let yielded = RunEvent(runId: "r", body: .yielded(.init(yieldId: "y1")))
        #expect(RunRules.apply(yielded, status: .executing)?.contains(.releaseSlot) == false)
        let task = RunEvent(runId: "r", body: .taskStarted(.init(taskId: "t", key: "work", parentTaskId: nil, name: nil, attempt: 1)))
        #expect(RunRules.apply(task, status: .executing)?.contains(.releaseSlot) == false)

        #expect(RunRules.waitEnded(taskId: "w", output: .null, attempts: .atLeast(1), status: .waiting, concurrency: slot, at: now)
                    .contains(.queueForSlot(slot)))
        #expect(!RunRules.waitEnded(taskId: "yield#y1", output: .null, attempts: .atLeast(1), status: .queued, concurrency: slot, at: now)
                    .contains(.queueForSlot(slot)))
        #expect(!RunRules.waitEnded(taskId: "w", output: .null, attempts: .atLeast(1), status: .canceled, concurrency: slot, at: now)
                    .contains(.queueForSlot(slot)), "an ended run queues for nothing")
        #expect(RunRules.cancel(status: .queued, at: now)?.writes.contains(.leaveQueue) == true, "a canceled run leaves its queue")
        #expect(RunRules.timeOut(RunState(status: .executing, lastProgress: now), seenWithProgress: now, reason: "stuck", at: now)
                    .contains(.leaveQueue))
    }

    @Test("a limit's queue: the job's own or the shared id, per key value, per tenant; bad limits say what is wrong")
    func queuesAndValidation() throws {
        let payload: JSONValue = ["user": "ada", "account": ["id": 7]]
        let tenant = Tenant.of(project: "shop", environment: "prod")
        #expect(ConcurrencyLimit(integerLiteral: 3).slot(jobSlug: "sync", payload: payload, tenant: .default) == ConcurrencySlot(queue: "job:sync", limit: 3))
        #expect(ConcurrencyLimit.limit(1, key: "user").slot(jobSlug: "sync", payload: payload, tenant: .default).queue == "job:sync|ada")
        #expect(ConcurrencyLimit.shared("user-data", limit: 2, key: "account.id").slot(jobSlug: "sync", payload: payload, tenant: tenant)
                    == ConcurrencySlot(queue: "shop/prod/shared:user-data|7", limit: 2))
        #expect(ConcurrencyLimit.shared("user-data", limit: 2).slot(jobSlug: "export", payload: payload, tenant: .default)
                    == ConcurrencyLimit.shared("user-data", limit: 2).slot(jobSlug: "sync", payload: payload, tenant: .default), "one queue for both jobs")
        #expect(throws: ValidationError.self) { try ConcurrencyLimit(limit: 0).validate() }
        #expect(throws: ValidationError.self) { try ConcurrencyLimit(limit: 10_001).validate() }
        #expect(throws: ValidationError.self) { try ConcurrencyLimit.shared("a b", limit: 1).validate() }
        #expect(throws: ValidationError.self) { try ConcurrencyLimit.limit(1, key: "a..b").validate() }
        do {
            try ConcurrencyLimit(limit: 0).validate()
        } catch {
            #expect(error.path == "$.concurrencyLimit.limit" && error.message.contains("1 to 10000"))
        }
        // Registered with the job: it round-trips through the jobs topic's JSON.
        let registration = try JobRegistration(id: "sync", name: "Sync", version: "1.0.0", trigger: .event(name: "user.sync"),
                                               concurrencyLimit: .shared("user-data", limit: 2, key: "user"))
        let decoded = try JobRegistration.decode(from: try BatonJSON.encoder.encode(registration))
        #expect(decoded.concurrencyLimit == .shared("user-data", limit: 2, key: "user"))
    }
}
