import BatonDomain
import BatonProtocol
import Foundation
import Testing

@Suite("Run rules: what each run event, wait end, cancel and time-out writes (pure)")
struct RunRulesTests {
    let now = Date(millisecondsSince1970: 1_790_000_000_000)

    func event(_ body: RunEvent.Body) -> RunEvent { RunEvent(runId: "r", occurredAt: now, body: body) }

    @Test("a run is created whatever the store knows; events of an unknown run are ignored")
    func creation() {
        let created = RunEvent.RunCreated(jobSlug: "j", jobVersion: "1.0.0", event: EventEnvelope(id: "e", name: "n"))
        #expect(RunRules.apply(event(.runCreated(created)), status: nil, traceParent: "tp") == [.createRun(created, traceParent: "tp", at: now)])
        #expect(RunRules.status(after: [.createRun(created, traceParent: nil, at: now)], from: nil) == .queued)
        #expect(RunRules.status(after: [.createRun(created, traceParent: nil, at: now)], from: .executing) == .executing, "a replay changes nothing")
        #expect(RunRules.apply(event(.runCompleted(.init(output: 1))), status: nil) == nil)
    }

    @Test("task events move a live run (executing, waiting) and are recorded without a status change once it ended")
    func taskEvents() {
        let completed = event(.taskCompleted(.init(taskId: "t", key: "k", parentTaskId: nil, output: 1, deduplicationKey: "proj:o/p:k")))
        let live = RunRules.apply(completed, status: .queued)
        #expect(live?.last == .setStatus(.executing, at: now))
        #expect(live?.contains(.deduplicationCompleted(scopedKey: "proj:o/p:k", output: 1, at: now)) == true)
        let ended = RunRules.apply(completed, status: .canceled)
        #expect(ended?.contains { if case .setStatus = $0 { true } else { false } } == false)
        #expect(ended?.contains(.completeTask(taskId: "t", output: 1, attempts: .atLeast(1), at: now)) == true)
        let wait = RunRules.apply(event(.waitRequested(.init(taskId: "w", key: "nap", parentTaskId: nil, until: now.addingTimeInterval(5)))), status: .executing)
        #expect(wait?.contains(.scheduleTimer(taskId: "w", dueAt: now.addingTimeInterval(5))) == true)
        #expect(RunRules.status(after: wait ?? [], from: .executing) == .waiting)
    }

    @Test("a failure with a retry schedules one timer per attempt and waits; a final failure releases its deduplication key")
    func failures() {
        let retry = RunRules.apply(event(.taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "boom", attempt: 2,
                                                          retryAt: now.addingTimeInterval(1), deduplicationKey: "proj:o/p:k"))), status: .executing)
        #expect(retry?.contains(.scheduleTimer(taskId: "t#retry2", dueAt: now.addingTimeInterval(1))) == true)
        #expect(retry?.contains { if case .deduplicationFailed = $0 { true } else { false } } == false, "a retry is pending: the key stays held")
        #expect(retry?.last == .setStatus(.waiting, at: now))
        let final = RunRules.apply(event(.taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "boom", attempt: 3,
                                                          deduplicationKey: "proj:o/p:k"))), status: .executing)
        #expect(final?.last == .deduplicationFailed(scopedKey: "proj:o/p:k", taskId: "t", error: "boom", at: now))
    }

    @Test("the first end of a run counts; later ones change nothing")
    func runEnd() {
        #expect(RunRules.apply(event(.runCompleted(.init(output: 7))), status: .executing)
            == [.finish(.completed, output: 7, error: nil, at: now), .leaveQueue, .makeTimerDue(taskId: RunRules.parentNoticeTimerID, at: now)])
        #expect(RunRules.apply(event(.runCompleted(.init(output: 7))), status: .failed) == [])
        #expect(RunRules.apply(event(.runFailed(.init(status: .failed, error: "x"))), status: .completed) == [])
    }

    @Test("a wait that ends completes its task and queues a waiting run, but no other")
    func waitEnded() {
        #expect(RunRules.waitEnded(taskId: "w", output: .null, attempts: .atLeast(1), status: .waiting, at: now).last == .setStatus(.queued, at: now))
        #expect(RunRules.waitEnded(taskId: "w", output: .null, attempts: .atLeast(1), status: .canceled, at: now).count == 1)
        #expect(RunRules.waitEnded(taskId: "w", output: .null, attempts: .atLeast(1), status: .executing, at: now).count == 1)
    }

    @Test("cancel ends a live run and drops its timers; an ended run stays as it is; an unknown one is nil")
    func cancel() {
        #expect(RunRules.cancel(status: nil, at: now) == nil)
        let ended = RunRules.cancel(status: .completed, at: now)
        #expect(ended?.status == .completed && ended?.canceled == false && ended?.writes == [])
        #expect(RunRules.cancel(status: .waiting, at: now)?.writes
            == [.dropTimers, .finish(.canceled, output: nil, error: nil, at: now), .leaveQueue, .makeTimerDue(taskId: RunRules.parentNoticeTimerID, at: now)])
    }

    @Test("a stuck run times out only with the progress it was seen with, and only while queued or executing")
    func timeOut() {
        let seen = now.addingTimeInterval(-600)
        #expect(RunRules.isStuck(RunState(status: .queued, lastProgress: seen), cutoff: now))
        #expect(!RunRules.isStuck(RunState(status: .waiting, lastProgress: seen), cutoff: now), "a wait is progress")
        #expect(RunRules.timeOut(RunState(status: .executing, lastProgress: seen), seenWithProgress: seen, reason: "r", at: now)
            == [.dropTimers, .finish(.timedOut, output: nil, error: "r", at: now), .leaveQueue, .makeTimerDue(taskId: RunRules.parentNoticeTimerID, at: now)])
        #expect(RunRules.timeOut(RunState(status: .executing, lastProgress: now), seenWithProgress: seen, reason: "r", at: now) == [])
        #expect(RunRules.timeOut(RunState(status: .completed, lastProgress: seen), seenWithProgress: seen, reason: "r", at: now) == [])
        #expect(RunRules.timeOut(nil, seenWithProgress: seen, reason: "r", at: now) == [])
    }

    @Test("a wait for an event: its timeout is a timer of its own; the match and the timeout both end it on the run's partition, the first outcome staying (completeTask keeps it), and resume it by a timer")
    func eventWaits() throws {
        let until = now.addingTimeInterval(60)
        let requested = try #require(RunRules.apply(event(.eventWaitRequested(.init(taskId: "t", key: "approval", parentTaskId: nil, name: "ok", timeoutAt: until))),
                                                    status: .executing))
        #expect(requested.contains(.scheduleTimer(taskId: RunRules.eventWaitTimeoutTimerID(taskId: "t"), dueAt: until)))
        #expect(requested.last == .setStatus(.waiting, at: now))
        #expect(RunRules.eventWaitTask(ofTimeoutTimer: RunRules.eventWaitTimeoutTimerID(taskId: "t")) == "t")
        #expect(RunRules.eventWaitTask(ofTimeoutTimer: "t") == nil && RunRules.eventWaitTask(ofTimeoutTimer: RunRules.parentNoticeTimerID) == nil)
        let timedOut = try #require(RunRules.apply(event(.eventWaitTimedOut(.init(taskId: "t"))), status: .waiting))
        #expect(timedOut.contains(.completeTask(taskId: "t", output: .null, attempts: .atLeast(1), at: now)))
        #expect(timedOut.contains(.dropTimer(taskId: RunRules.eventWaitTimeoutTimerID(taskId: "t"))))
        #expect(timedOut.contains(.scheduleTimer(taskId: RunRules.eventTimerID(taskId: "t"), dueAt: now)))
        let matched = try #require(RunRules.apply(event(.eventWaitMatched(.init(taskId: "t", event: WaitedEvent(EventEnvelope(id: "e", name: "ok"))))), status: .waiting))
        #expect(matched.contains { if case .completeTask(taskId: "t", let output, _, _) = $0 { output != .null } else { false } })
        #expect(!(timedOut + matched).contains { if case .setStatus = $0 { true } else { false } }, "the resume timer's end queues the run")
    }

    @Test("child runs: created with a dormant parent notice, which every end makes due (completed, failed, canceled, timed out) and a cancel's timer drop keeps")
    func childRunNotice() {
        let parent = ParentRun(runId: "p", taskId: "t")
        let invoking = EventEnvelope(id: "e", name: JobTrigger.invokedEventName, invoke: "child", parent: parent)
        let created = RunEvent.RunCreated(jobSlug: "child", jobVersion: "1.0.0", event: invoking)
        #expect(RunRules.apply(event(.runCreated(created)), status: nil)
            == [.createRun(created, traceParent: nil, at: now), .scheduleTimer(taskId: RunRules.parentNoticeTimerID, dueAt: RunRules.dormant)])
        let notice = RunWrite.makeTimerDue(taskId: RunRules.parentNoticeTimerID, at: now)
        #expect(RunRules.apply(event(.runCompleted(.init(output: 1))), status: .executing)?.last == notice)
        #expect(RunRules.apply(event(.runFailed(.init(error: "x"))), status: .executing)?.last == notice)
        #expect(RunRules.apply(event(.runCompleted(.init(output: 1))), status: .completed) == [], "an ended run does not end again")
        let cancel = try? #require(RunRules.cancel(status: .waiting, at: now)?.writes)
        #expect(cancel?.first == .dropTimers && cancel?.last == notice, "the notice is made due after the drop, so it still fires")
        #expect(RunRules.dormant > Date().addingTimeInterval(86_400 * 365 * 1000))
    }

    @Test("a parent's childInvoked makes a waiting task marked with the child; childRunFinished completes it with the outcome and resumes a waiting parent by a timer due now")
    func childInvokedAndFinished() throws {
        let invoked = RunEvent.ChildInvoked(taskId: "t", key: "charge", parentTaskId: nil, childRunId: "run_c", jobId: "charge-card")
        #expect(RunRules.apply(event(.childInvoked(invoked)), status: .executing) == [
            .addTask(taskId: "t", key: "charge", parentTaskId: nil, name: "invoke charge-card", status: .waiting, at: now),
            .setTaskProperties(taskId: "t", properties: ChildRunOutcome.taskProperties(runId: "run_c", jobId: "charge-card")),
            .releaseSlot, .setStatus(.waiting, at: now)])
        #expect(ChildRunOutcome.childRunIds([ChildRunOutcome.taskProperties(runId: "run_c", jobId: "j"), nil, ["baton.kind": "status"]]) == ["run_c"])
        let outcome = ChildRunOutcome(runId: "run_c", jobId: "charge-card", status: .failed, error: "declined")
        let finished = RunEvent.ChildRunFinished(taskId: "t", outcome: outcome)
        let writes = try #require(RunRules.apply(event(.childRunFinished(finished)), status: .waiting))
        #expect(writes.contains(.completeTask(taskId: "t", output: try JSONValue(encoding: outcome), attempts: .atLeast(1), at: now)))
        #expect(writes.contains(.scheduleTimer(taskId: RunRules.childTimerID(taskId: "t"), dueAt: now)))
        // The status is the resume timer's to change (its end queues a waiting run): a second
        // notice, whose timer exists already, changes nothing at all.
        for status in [RunStatus.waiting, .executing, .canceled] {
            #expect(RunRules.apply(event(.childRunFinished(finished)), status: status)?.contains { if case .setStatus = $0 { true } else { false } } == false)
        }
    }
}

@Suite("Dispatch and duty rules (pure)")
struct DispatchRulesTests {
    let now = Date(millisecondsSince1970: 1_790_000_000_000)

    @Test("a dispatched event keeps what a resend is answered with, once")
    func dispatched() {
        let event = EventEnvelope(id: "e", name: "n", payload: ["secret": 1], context: ["c": 2])
        let stored = DispatchRules.dispatched(SeenEvent(event: event, dispatched: false))
        #expect(stored?.payload == .null && stored?.context == nil && stored?.id == "e")
        #expect(DispatchRules.dispatched(SeenEvent(event: event, dispatched: true)) == nil)
    }

    @Test("a job id belongs to the tenant that registered it first")
    func ownership() throws {
        let job = try JobRegistration(id: "j", name: "J", version: "1.0.0", trigger: .event(name: "n"))
        var other = job
        other.tenant = try Tenant(project: "beta", environment: "prod")
        try DispatchRules.checkOwnership(job, existing: nil)
        try DispatchRules.checkOwnership(job, existing: job)
        #expect(throws: JobOwnershipConflict.self) { try DispatchRules.checkOwnership(other, existing: job) }
    }

    @Test("a schedule is set when new or changed, kept when unchanged, removed when the job is no longer scheduled")
    func schedules() throws {
        var job = try JobRegistration(id: "j", name: "J", version: "1.0.0", trigger: .interval(seconds: 60))
        let next = try #require(job.trigger.nextTick(after: now))
        #expect(DispatchRules.syncSchedule(job, current: nil, now: now) == .set(.interval(seconds: 60), next: next))
        #expect(DispatchRules.syncSchedule(job, current: .interval(seconds: 60), now: now) == .keep)
        #expect(DispatchRules.syncSchedule(job, current: .interval(seconds: 30), now: now) == .set(.interval(seconds: 60), next: next))
        job.trigger = .event(name: "n")
        #expect(DispatchRules.syncSchedule(job, current: .interval(seconds: 60), now: now) == .remove)
    }

    @Test("a disabled job: no schedule, no event matches; enabled again, its schedule starts from now (missed ticks are not replayed)")
    func disabledJobs() throws {
        var job = try JobRegistration(id: "j", name: "J", version: "1.0.0", trigger: .interval(seconds: 60), enabled: false)
        #expect(DispatchRules.syncSchedule(job, current: .interval(seconds: 60), now: now) == .remove)
        job.enabled = true
        let later = now.addingTimeInterval(3_600)
        #expect(DispatchRules.syncSchedule(job, current: nil, now: later) == .set(.interval(seconds: 60), next: try #require(job.trigger.nextTick(after: later))))
        var listener = try JobRegistration(id: "l", name: "L", version: "1.0.0", trigger: .event(name: "ping"))
        let ping = EventEnvelope(id: "e1", name: "ping", payload: .null)
        #expect(listener.matches(ping))
        listener.enabled = false
        #expect(!listener.matches(ping))
        // Registrations that predate the option are enabled and keep every log line.
        let old = try BatonJSON.decoder.decode(JobRegistration.self, from: Data(#"{"id":"l","slug":"l","name":"L","version":"1.0.0","trigger":{"type":"event","eventName":"ping"}}"#.utf8))
        #expect(old.isEnabled && old.logLevel == nil && old.matches(ping))
        #expect(JobLogLevel.debug < .log && JobLogLevel.log < .info && JobLogLevel.info < .warn && JobLogLevel.warn < .error)
        #expect(JobLogLevel(lineLevel: "WARN") == .warn && JobLogLevel(lineLevel: "NOTICE") == nil)
    }

    @Test("a duty is taken when free, renewed by its holder, refused while another holds it, taken over once the lease ended")
    func duties() {
        let held = DutyLeaseRules.acquire(nil, name: "reaper", by: "a", now: now, lease: .seconds(30))
        #expect(held == DutyLease(name: "reaper", owner: "a", until: now.addingTimeInterval(30)))
        #expect(DutyLeaseRules.acquire(held, name: "reaper", by: "b", now: now.addingTimeInterval(29), lease: .seconds(30)) == nil)
        #expect(DutyLeaseRules.acquire(held, name: "reaper", by: "a", now: now.addingTimeInterval(29), lease: .seconds(30))?.until == now.addingTimeInterval(59))
        #expect(DutyLeaseRules.acquire(held, name: "reaper", by: "b", now: now.addingTimeInterval(31), lease: .seconds(30))?.owner == "b")
        // Answered by a read: its own lease with more than a third left; another's valid lease.
        #expect(DutyLeaseRules.answerWithoutWriting(held, by: "a", now: now.addingTimeInterval(5), lease: .seconds(30)) == true)
        #expect(DutyLeaseRules.answerWithoutWriting(held, by: "a", now: now.addingTimeInterval(25), lease: .seconds(30)) == nil, "renewal due")
        #expect(DutyLeaseRules.answerWithoutWriting(held, by: "b", now: now.addingTimeInterval(5), lease: .seconds(30)) == false)
        #expect(DutyLeaseRules.answerWithoutWriting(held, by: "b", now: now.addingTimeInterval(31), lease: .seconds(30)) == nil, "ended: a write takes it")
        #expect(DutyLeaseRules.answerWithoutWriting(nil, by: "a", now: now, lease: .seconds(30)) == nil)
    }
}
