import BatonKafka
import NIOHTTP1
import BatonProtocol
import BatonTesting
import Foundation
import Logging
import Testing

@Suite("Bad records and graceful shutdown", .tags(.integration), .serialized)
struct BadRecordsAndShutdownTests {
    let logger = Logger(label: "test")

    func completedRun(_ stack: BatonStack, _ runId: String) async throws -> RunDetails {
        try await stack.finishedRun(runId, deadline: .seconds(90))
    }

    @Test("garbage on every consumed topic is dead-lettered with a reason; events published straight to Kafka around it still run")
    func deadLetters() async throws {
        let stack = try await BatonStack.start(label: "dlq")
        try await stack.startExampleJobs(waitSeconds: 0.2)
        let kafka = try stack.kafkaProducer()
        let topics = Topics()
        let garbage: [(topic: String, value: [UInt8])] = [
            (topics.events, Array("not json".utf8)),
            (topics.events, Array(#"{"id":"e","name":""}"#.utf8)),
            (topics.events, [0xff, 0xfe, 0x00, 0x01]),
            (topics.jobs, Array(#"{"id":"x","slug":"x","name":"X","version":"1.0","trigger":{"type":"event","eventName":"x"}}"#.utf8)),
            (topics.taskResults, Array(#"{"schemaVersion":1,"runId":"r","occurredAt":"2026-01-01T00:00:00Z","type":"nope","data":{}}"#.utf8)),
            (topics.runs(jobSlug: "new-user-welcome"), Array("{}".utf8)),
        ]
        var runIds: [String] = []
        for (index, bad) in garbage.enumerated() {
            try await kafka.send(topic: bad.topic, key: "bad-\(index)", value: bad.value)
            runIds.append(try await sendUserCreated(kafka, id: "evt_direct_\(index)", user: "d\(index)"))
        }
        try await expectCompleted(stack, runIds)

        let letters = try await collectDeadLetters(bootstrapServers: stack.broker.bootstrapServers,
                                                   keys: Set((0..<garbage.count).map { "bad-\($0)" }))
        for letter in letters.values { #expect(letter.origin?.isEmpty == false) }
        let reasons = letters.compactMapValues(\.reason)
        #expect(Set(reasons.keys) == Set((0..<garbage.count).map { "bad-\($0)" }))
        #expect(reasons["bad-0"]?.contains("EventEnvelope") == true)
        #expect(reasons["bad-1"]?.contains("$.name") == true)
        #expect(reasons["bad-3"]?.contains("'1.0'") == true)
        #expect(reasons["bad-4"]?.contains("nope") == true)
        #expect(reasons["bad-5"]?.contains("RunCommand") == true)
        await kafka.shutdown()
        try await stack.stop()
    }

    /// Publishes a valid `user.created` envelope straight to Kafka, as a producer in any
    /// language would; returns the id of the `new-user-welcome` run it starts.
    func sendUserCreated(_ kafka: KafkaProducer, id: String, user: String) async throws -> String {
        let envelope = EventEnvelope(id: "\(id)_\(UUID().uuidString.prefix(6))", name: "user.created",
                                     payload: ["id": .string(user), "email": .string("\(user)@example.com"), "name": "U"])
        try await kafka.send(topic: Topics().events, key: envelope.id, value: Array(try BatonJSON.encoder.encode(envelope)))
        return Identifiers.runID(eventID: envelope.id, jobSlug: "new-user-welcome")
    }

    /// Expects each run to complete.
    func expectCompleted(_ stack: BatonStack, _ runIds: [String]) async throws {
        for runId in runIds {
            let run = try await completedRun(stack, runId)
            #expect(run.status == .completed, "\(run.error ?? "")")
        }
    }

    @Test("poison records (0 bytes to the broker's size limit, binary and JSON-shaped, a thousand headers) on every consumed topic are dead-lettered, trimmed when too large; valid records behind them run and every process keeps serving")
    func poisonRecords() async throws {
        let stack = try await BatonStack.start(label: "poison")
        try await stack.startExampleJobs(waitSeconds: 0.2, jobs: ["new-user-welcome"])
        let kafka = try stack.kafkaProducer()
        let topics = Topics()
        var random = SeededGenerator(seed: 20261129)
        let big = (0..<999_900).map { _ in UInt8.random(in: 0...255, using: &random) }
        let headers = (0..<1000).map { KafkaHeader(name: "h\($0)", string: "value \($0)") }
        let consumed = [topics.events, topics.jobs, topics.taskResults, topics.runs(jobSlug: "new-user-welcome")]
        var keys: [String] = []
        var runIds: [String] = []
        // Sizes from 0 to the broker's limit, binary and JSON-shaped (an array: no consumer's
        // record type), and many headers.
        let jsonBig = Array(("[" + String(repeating: "1,", count: 499_000) + "1]").utf8)
        let poisons: [(name: String, value: [UInt8], headers: [KafkaHeader])] = [
            ("empty", [], []),
            ("one-byte", [0xff], []),
            ("binary-64k", Array(big.prefix(65_536)), []),
            ("json-512k", Array(jsonBig.prefix(262_144)) + Array("1]".utf8), []),
            ("big", big, []),
            ("json-big", jsonBig, []),
            ("headers", Array("{}".utf8), headers),
            ("big-headers", Array(big.prefix(500_000)), Array(headers.prefix(200))),
        ]
        for (index, topic) in consumed.enumerated() {
            for poison in poisons {
                try await kafka.send(topic: topic, key: "poison-\(poison.name)-\(index)", value: poison.value, headers: poison.headers)
                keys.append("poison-\(poison.name)-\(index)")
            }
            runIds.append(try await sendUserCreated(kafka, id: "evt_after_poison_\(index)", user: "p\(index)"))
        }
        try await expectCompleted(stack, runIds)
        for port in [stack.ingesterPort, stack.dispatcherPort, stack.taskResultsPort] {
            #expect(try await stack.get(port: port, "/health").status == 200)
        }
        let letters = try await collectDeadLetters(bootstrapServers: stack.broker.bootstrapServers, keys: Set(keys))
        #expect(Set(letters.keys) == Set(keys), "dead letters: \(letters.keys.sorted())\n\(stack.allOutput())")
        // Over 900,000 bytes: trimmed; the others are sent whole.
        for (key, letter) in letters {
            let trimmed = key.range(of: #"^poison-(json-)?big-\d+$"#, options: .regularExpression) != nil
            #expect((letter.reason?.contains("trimmed") == true) == trimmed, "\(key): \(letter.reason ?? "")")
        }
        for (key, letter) in letters where key.range(of: #"^poison-(json-)?big-\d+$"#, options: .regularExpression) != nil {
            #expect(letter.reason?.contains("trimmed") == true && letter.reason?.contains("SHA-256") == true, "\(key): \(letter.reason ?? "")")
        }
        await kafka.shutdown()
        try await stack.stop()
    }

    @Test("SIGTERM: a job service finishes its in-flight slice and exits 0, the run completes once, every service exits 0", .tags(.fault))
    func gracefulShutdown() async throws {
        let stack = try await BatonStack.start(label: "sigterm")
        let worker = try await stack.startExampleJobs()
        let eventId = "evt_term_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":60,"stepMilliseconds":20}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        // Terminate the job service once the run is under way.
        _ = try await eventually("the run to get going", deadline: .seconds(60)) {
            stack.outboxLines().filter { $0.hasPrefix("step \(runId) ") }.count >= 5 ? true : nil
        }
        #expect(try await worker.terminate() == 0, "\(worker.output().suffix(2000))")
        try await stack.startExampleJobs()
        let run = try await completedRun(stack, runId)
        #expect(run.status == .completed)
        let audit = StepAudit(runId: runId, steps: 60, outbox: stack.outboxLines(), run: run)
        #expect(audit.reexecutedAcknowledged.isEmpty)
        #expect(audit.missing.isEmpty)

        for process in stack.jobServices.filter(\.isRunning) + [stack.ingester, stack.dispatcher, stack.taskResults] {
            let status = try await process.terminate()
            #expect(status == 0, "\(process.name) exited \(status): \(process.output().suffix(1500))")
        }
        try await stack.stop()
    }
}

extension BadRecordsAndShutdownTests {
    @Test("SIGTERM with a slice longer than the shutdown deadline: the worker gives up at the deadline and exits 1; nothing is recorded as failed and the run completes after the restart", .tags(.fault))
    func shutdownDeadline() async throws {
        let stack = try await BatonStack.start(label: "deadline")
        let settings = ["SHUTDOWN_DEADLINE_MS": "1000"]
        let worker = try await stack.startExampleJobs(environment: settings)
        let eventId = "evt_deadline_\(UUID().uuidString.prefix(8))"
        // Three steps of 4 s each: the slice in flight cannot finish within the 1 s deadline.
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":3,"stepMilliseconds":4000}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        _ = try await eventually("the first step to start", deadline: .seconds(60)) {
            try await stack.run(runId)?.tasks.isEmpty == false ? true : nil
        }
        let clock = ContinuousClock()
        let signalled = clock.now
        let status = try await worker.terminate(deadline: .seconds(30))
        let took = clock.now - signalled
        #expect(status == 1, "exit status \(status): \(worker.output().suffix(1500))")
        #expect(took < .seconds(10), "gave up at the deadline (1 s) plus the cancellation limit, not after the slice: \(took)")
        #expect(worker.output().contains("stopped"), "the reason is on its output")

        try await stack.startExampleJobs(environment: settings)
        let run = try await completedRun(stack, runId)
        #expect(run.status == .completed, "\(run.error ?? "")")
        #expect(run.tasks.allSatisfy { $0.error == nil }, "the cancelled step was not recorded as a failure: \(run.tasks.map(\.error))")
        let audit = StepAudit(runId: runId, steps: 3, outbox: stack.outboxLines(), run: run)
        #expect(audit.reexecutedAcknowledged.isEmpty && audit.missing.isEmpty)
        try await stack.stop()
    }
}

@Suite("Auto-yield and cancel over a real broker", .tags(.integration), .serialized)
struct YieldAndCancelTests {
    func run(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    @Test("a run longer than the slice budget yields and resumes until done, each step once")
    func autoYield() async throws {
        let stack = try await BatonStack.start(label: "yield")
        let worker = try await stack.startExampleJobs(environment: ["WORKER_SLICE_BUDGET_MS": "150"])
        let eventId = "evt_yield_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":40,"stepMilliseconds":15}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        let finished = try await eventually("run to finish", deadline: .seconds(90), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await run(stack, runId), run.status.isTerminal else { return nil }
            return run
        }
        #expect(finished.status == .completed)
        let audit = StepAudit(runId: runId, steps: 40, outbox: stack.outboxLines(), run: finished)
        #expect(audit.executions == 40)
        #expect(audit.reexecutedAcknowledged.isEmpty && audit.missing.isEmpty)
        // 40 × 15 ms of work against a 150 ms budget: at least three yields, each resumed.
        let yields = worker.output().components(separatedBy: "slice time budget used").count - 1
        let resumes = stack.taskResults.output().components(separatedBy: "run resumed").count - 1
        #expect(yields >= 3, "yields: \(yields)")
        #expect(resumes >= yields)
        try await stack.stop()
    }

    @Test("canceling a run in its wait drops the wait: the run is never resumed")
    func cancelDuringWait() async throws {
        let stack = try await BatonStack.start(label: "cancel-wait")
        try await stack.startExampleJobs(waitSeconds: 1.5)
        let eventId = "evt_cancel_wait_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"user.created","payload":{"id":"cw","email":"cw@example.org","name":"C"}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "new-user-welcome")
        _ = try await eventually("the run to wait", deadline: .seconds(60), every: .milliseconds(50)) {
            try await run(stack, runId)?.status == .waiting ? true : nil
        }
        #expect(try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(runId)/cancel").body.contains(#""canceled":true"#))
        // The wait was due 1.5 s after it started: wait past it, then nothing may have happened.
        try await Task.sleep(for: .seconds(2.5))
        #expect(try await run(stack, runId)?.status == .canceled)
        #expect(!stack.outboxLines().contains { $0.hasPrefix("welcome cw@") }, "the task after the wait never ran")
        let resumed = stack.taskResults.output().split(separator: "\n").filter { $0.contains("run resumed") && $0.contains(runId) }
        #expect(resumed.isEmpty, "the dropped wait resumed the run: \(resumed)")
        try await stack.stop()
    }

    @Test("a canceled run stops at its next slice and stays CANCELED; canceling again reports the final status")
    func cancel() async throws {
        let stack = try await BatonStack.start(label: "cancel")
        try await stack.startExampleJobs(environment: ["WORKER_SLICE_BUDGET_MS": "200"])
        let eventId = "evt_cancel_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":300,"stepMilliseconds":20}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        func steps() -> Int { stack.outboxLines().filter { $0.hasPrefix("step \(runId) ") }.count }
        _ = try await eventually("the run to get going", deadline: .seconds(60)) { steps() >= 10 ? true : nil }

        let canceled = try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(runId)/cancel")
        #expect(canceled.status == 200)
        #expect(canceled.body.contains(#""canceled":true"#))
        // The slice in flight ends within its budget; no later slice starts: the count settles.
        var last = steps()
        _ = try await eventually("steps to stop", deadline: .seconds(30), every: .milliseconds(600)) { () -> Bool? in
            let now = steps()
            defer { last = now }
            return now == last ? true : nil
        }
        #expect(steps() < 300)
        #expect(try await run(stack, runId)?.status == .canceled)
        let again = try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(runId)/cancel")
        #expect(again.body.contains(#""canceled":false"#) && again.body.contains("CANCELED"))
        #expect(try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/run_nope/cancel").status == 404)
        try await stack.stop()
    }
}

@Suite("Delayed events over a real broker", .tags(.integration, .fault), .serialized)
struct DelayedEventTests {
    func runIfAny(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    @Test("a delayed event survives a dispatcher SIGKILL and is delivered once, at or after its time")
    func delayedAcrossRestart() async throws {
        let stack = try await BatonStack.start(label: "delay")
        try await stack.startExampleJobs()
        let eventId = "evt_delay_\(UUID().uuidString.prefix(6))"
        let sentAt = Date()
        // Due in 8 s: time for the dispatcher to hold it and be restarted before it is due, also on a busy machine.
        let accepted = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","deliverAfter":8,"payload":{"steps":1}}"#)
        #expect(accepted.status == 202)
        _ = try await eventually("the dispatcher to hold the event", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(eventId)").body.contains("PENDING") ? true : nil
        }
        try await stack.restartDispatcher()
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "many-steps")
        let run = try await eventually("the delayed run to finish", deadline: .seconds(60), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await runIfAny(stack, runId), run.status.isTerminal else { return nil }
            return run
        }
        #expect(run.status == .completed)
        #expect(run.createdAt.timeIntervalSince(sentAt) >= 7.9, "delivered \(run.createdAt.timeIntervalSince(sentAt)) s after sending")
        #expect(try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(eventId)").body.contains("DELIVERED"))
        struct RunList: Decodable { var runs: [RunDetails] }
        let list = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?eventId=\(eventId)").body.utf8))
        #expect(list.runs.count == 1)
        // Too late to cancel now: the answer says so.
        let late = try await stack.delete(port: stack.ingesterPort, "/api/v1/events/\(eventId)")
        #expect(late.status == 200 && late.body.contains(#""canceled":false"#) && late.body.contains("DELIVERED"))
        try await stack.stop()
    }

    @Test("a delayed event canceled in time starts no run")
    func cancelInTime() async throws {
        let stack = try await BatonStack.start(label: "delay-cancel")
        try await stack.startExampleJobs()
        let eventId = "evt_delay_cancel_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","deliverAfter":1.5,"payload":{"steps":1}}"#).status == 202)
        let canceled = try await stack.delete(port: stack.ingesterPort, "/api/v1/events/\(eventId)")
        #expect(canceled.status == 200 && canceled.body.contains(#""canceled":true"#), "\(canceled.body)")
        // A negative can only be shown by waiting past the due time (plus the delivery loop's period).
        try await Task.sleep(for: .seconds(3))
        #expect(try await runIfAny(stack, Identifiers.runID(eventID: eventId, jobSlug: "many-steps")) == nil)
        #expect(try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(eventId)").body.contains("CANCELED"))
        try await stack.stop()
    }
}

@Suite("Matching and starting runs over a real broker", .tags(.integration), .serialized)
struct MatchingTests {
    struct RunList: Decodable { var runs: [RunDetails] }

    func runs(_ stack: BatonStack, event: String) async throws -> [RunDetails] {
        try await stack.runs(event: event)
    }

    @Test("a filter that does not pass starts no run of that job; a payload that does not decode ends its run as INVALID_PAYLOAD")
    func filtersAndInvalidPayloads() async throws {
        let stack = try await BatonStack.start(label: "matching")
        let worker = try await stack.startExampleJobs(waitSeconds: 0.1)
        let other = "evt_other_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(other)","name":"user.created","payload":{"id":"o1","email":"o1@elsewhere.org","name":"O"}}"#).status == 202)
        let finished = try await eventually("the welcome run", deadline: .seconds(60), every: .milliseconds(100)) { () -> [RunDetails]? in
            let current = try await runs(stack, event: other)
            return current.count == 1 && current[0].status.isTerminal ? current : nil
        }
        #expect(finished.map(\.jobId) == ["new-user-welcome"], "the audit filter ($endsWith @example.com) does not pass")

        let invalid = "evt_invalid_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(invalid)","name":"user.created","payload":{"id":7,"email":"x@example.com"}}"#).status == 202)
        let run = try await eventually("the invalid run to end", deadline: .seconds(60), every: .milliseconds(100)) { () -> RunDetails? in
            try await runs(stack, event: invalid).first { $0.jobId == "new-user-welcome" && $0.status.isTerminal }
        }
        #expect(run.status == .invalidPayload)
        #expect(run.error?.contains("$.id") == true, "\(run.error ?? "")")
        #expect(worker.isRunning, "a bad payload fails its run, not the worker")
        try await stack.stop()
    }

    @Test("exactly one run per event and matching job, also when the dispatcher is SIGKILLed mid-batch", .tags(.fault))
    func exactlyOnceUnderDispatcherKill() async throws {
        let stack = try await BatonStack.start(label: "dispatch-kill")
        try await stack.startExampleJobs(waitSeconds: 0.1)
        let ids = (0..<40).map { "evt_batch_\($0)_\(UUID().uuidString.prefix(6))" }
        let events = ids.enumerated().map { index, id in
            #"{"id":"\#(id)","name":"user.created","payload":{"id":"b\#(index)","email":"b\#(index)@example.com","name":"B"}}"#
        }
        let answer = try await stack.post(port: stack.ingesterPort, "/api/v1/events/batch", body: #"{"events":[\#(events.joined(separator: ","))]}"#)
        #expect(answer.status == 200 && !answer.body.contains(#""status":5"#), "\(answer.body.prefix(500))")
        // Kill the dispatcher while it is working through the batch.
        _ = try await eventually("the dispatcher to start some runs", deadline: .seconds(60), every: .milliseconds(20)) {
            stack.dispatcher.output().components(separatedBy: "run started").count > 6 ? true : nil
        }
        try await stack.restartDispatcher()
        for (index, id) in ids.enumerated() {
            let found = try await eventually("both runs of \(id) to finish", deadline: .seconds(120), every: .milliseconds(200)) { () -> [RunDetails]? in
                let current = try await runs(stack, event: id)
                return current.count >= 2 && current.allSatisfy(\.status.isTerminal) ? current : nil
            }
            #expect(found.count == 2)
            #expect(Set(found.map(\.jobId)) == ["new-user-welcome", "user-audit"])
            #expect(found.allSatisfy { $0.status == .completed })
            let lines = stack.outboxLines()
            #expect(lines.filter { $0.hasPrefix("lookup b\(index) ") }.count == 1)
            #expect(lines.filter { $0.hasPrefix("audit b\(index) ") }.count == 1)
        }
        try await stack.stop()
    }
}

@Suite("Jobs registered and invoked over HTTP", .tags(.integration))
struct JobRegistrationTests {
    func run(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    @Test("PUT /api/v1/jobs validates; runs keep the version they were created with; invoke starts a run directly")
    func registerAndInvoke() async throws {
        let stack = try await BatonStack.start(label: "jobs")
        try await stack.startExampleJobs()
        let bad = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/Sync%20CRM", method: .PUT,
                                          body: #"{"name":"Sync","version":"1.0","trigger":{"type":"event","eventName":"crm.changed"}}"#)
        #expect(bad.status == 422 && bad.body.contains("'1.0'") && bad.body.contains("$.version"), "\(bad.body)")

        func register(_ version: String) async throws {
            let answer = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/Sync%20CRM", method: .PUT,
                                                 body: #"{"name":"Sync","version":"\#(version)","trigger":{"type":"event","eventName":"crm.changed"}}"#)
            #expect(answer.status == 200 && answer.body.contains(#""slug":"sync-crm""#), "\(answer.body)")
            _ = try await eventually("the dispatcher to know sync-crm \(version)", deadline: .seconds(30)) {
                // This job's own record: the example jobs are at 1.0.0 too.
                try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/sync-crm").body.contains(#""version":"\#(version)""#) ? true : nil
            }
        }
        func start(_ eventId: String) async throws -> RunDetails {
            #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"crm.changed"}"#).status == 202)
            return try await eventually("run of \(eventId)", deadline: .seconds(30)) {
                try await run(stack, Identifiers.runID(eventID: eventId, jobSlug: "sync-crm"))
            }
        }
        try await register("1.0.0")
        let first = try await start("evt_crm_1_\(UUID().uuidString.prefix(6))")
        #expect(first.jobVersion == "1.0.0")
        try await register("1.1.0")
        let second = try await start("evt_crm_2_\(UUID().uuidString.prefix(6))")
        #expect(second.jobVersion == "1.1.0")
        #expect(try await run(stack, first.id)?.jobVersion == "1.0.0", "a run keeps the version it was created with")

        let invoked = try await stack.post(port: stack.ingesterPort, "/api/v1/jobs/many-steps/invoke", body: #"{"payload":{"steps":2}}"#)
        #expect(invoked.status == 202, "\(invoked.body)")
        struct Invoked: Decodable { var runId: String }
        let runId = try BatonJSON.decoder.decode(Invoked.self, from: Data(invoked.body.utf8)).runId
        let done = try await eventually("the invoked run to finish", deadline: .seconds(60), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await run(stack, runId), run.status.isTerminal else { return nil }
            return run
        }
        #expect(done.status == .completed && done.output == 2)
        try await stack.stop()
    }
}

@Suite("Scheduled triggers over a real broker", .tags(.integration, .fault))
struct ScheduleTests {
    func ticks(_ stack: BatonStack) -> [(ms: Int64, run: String)] {
        stack.outboxLines().compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "tick", let ms = Int64(parts[1]) else { return nil }
            return (ms, String(parts[2]))
        }
    }

    @Test("an interval trigger runs once per tick, across a dispatcher SIGKILL; after downtime one tick catches up, no storm")
    func intervalAcrossRestart() async throws {
        let stack = try await BatonStack.start(label: "schedule")
        try await stack.startExampleJobs(environment: ["EXAMPLE_TICK_SECONDS": "1"])
        _ = try await eventually("three ticks", deadline: .seconds(60), every: .milliseconds(100)) { ticks(stack).count >= 3 ? true : nil }

        // Downtime of more than three intervals.
        try await stack.dispatcher.kill9()
        let down = Date()
        try await Task.sleep(for: .milliseconds(3500))  // the outage itself: time must pass
        // The outage ends when the new process starts: it may fire its catch-up tick and the
        // next regular ones before it answers /health (seconds, on a busy machine).
        let up = Date()
        try await stack.restartDispatcher()
        let before = ticks(stack).count
        _ = try await eventually("ticks after the restart", deadline: .seconds(60), every: .milliseconds(100)) {
            ticks(stack).count >= before + 3 ? true : nil
        }

        let all = ticks(stack)
        #expect(Set(all.map(\.ms)).count == all.count, "no tick ran twice: \(all.map(\.ms))")
        #expect(Set(all.map(\.run)).count == all.count)
        let sorted = all.map(\.ms).sorted()
        for (earlier, later) in zip(sorted, sorted.dropFirst()) {
            #expect(later - earlier >= 1000, "ticks at least the interval apart: \(earlier) → \(later)")
        }
        let downMs = Int64(down.timeIntervalSince1970 * 1000) + 1000
        let upMs = Int64(up.timeIntervalSince1970 * 1000)
        let inOutage = sorted.filter { $0 > downMs && $0 < upMs }
        #expect(inOutage.count <= 1, "at most one catch-up tick for the outage: \(inOutage)")
        try await stack.stop()
    }
}

@Suite("Cron triggers over a real broker", .tags(.integration))
struct CronTests {
    @Test("a cron trigger ('* * * * *', UTC) starts a run at the next whole minute, not before")
    func everyMinute() async throws {
        let stack = try await BatonStack.start(label: "cron")
        let registered = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/minutely", method: .PUT,
                                                 body: #"{"name":"Minutely","version":"1.0.0","trigger":{"type":"cron","eventName":"baton.scheduled","cron":"* * * * *"}}"#)
        #expect(registered.status == 200, "\(registered.body)")
        // The dispatcher schedules from when it reads the registration: the next whole minute,
        // or the one after when that read falls just past a minute's turn.
        let now = Date().timeIntervalSince1970
        let ticks = [60.0, 120.0].map { (($0 + now) / 60).rounded(.down) * 60 }
        let runIds = ticks.map { Identifiers.runID(eventID: "sched_minutely_\(Int64($0 * 1000))", jobSlug: "minutely") }
        let run = try await eventually("the run of the next minute's tick", deadline: .seconds(150), every: .milliseconds(250)) { () -> RunDetails? in
            for id in runIds { if let run = try await stack.run(id) { return run } }
            return nil
        }
        let tick = run.event.timestamp.timeIntervalSince1970
        #expect(ticks.contains(tick), "tick \(run.event.timestamp) is a whole minute after registration")
        #expect(run.createdAt.timeIntervalSince1970 >= tick, "not before its time")
        #expect(run.createdAt.timeIntervalSince1970 - tick < 5, "started \(run.createdAt.timeIntervalSince1970 - tick) s after its tick")
        #expect(run.event.name == JobTrigger.scheduledEventName)
        try await stack.stop()
    }

    @Test("a cron trigger with a time zone fires at the zone's wall-clock time (Asia/Kolkata, +05:30); the same expression in UTC does not")
    func timeZone() async throws {
        let stack = try await BatonStack.start(label: "cron-zone")
        // A wall-clock minute in Kolkata one to two minutes from now: it is 05:30 earlier in UTC.
        let tick = ((Date().timeIntervalSince1970 + 75) / 60).rounded(.up) * 60
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Kolkata")!
        let local = calendar.dateComponents([.hour, .minute], from: Date(timeIntervalSince1970: tick))
        let expression = "\(local.minute!) \(local.hour!) * * *"
        for (slug, zone) in [("kolkata", #","timeZone":"Asia/Kolkata""#), ("utc-twin", "")] {
            let registered = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/\(slug)", method: .PUT,
                                                     body: #"{"name":"\#(slug)","version":"1.0.0","trigger":{"type":"cron","eventName":"baton.scheduled","cron":"\#(expression)"\#(zone)}}"#)
            #expect(registered.status == 200, "\(registered.body)")
        }
        let refused = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/nowhere", method: .PUT,
                                              body: #"{"name":"Nowhere","version":"1.0.0","trigger":{"type":"cron","eventName":"baton.scheduled","cron":"0 9 * * *","timeZone":"Mars/Olympus_Mons"}}"#)
        #expect(refused.status == 422 && refused.body.contains("$.trigger.timeZone") && refused.body.contains("not a time zone name"), "\(refused.status) \(refused.body)")
        let runId = Identifiers.runID(eventID: "sched_kolkata_\(Int64(tick * 1000))", jobSlug: "kolkata")
        let run = try await eventually("the Kolkata job's run at \(Date(timeIntervalSince1970: tick))", deadline: .seconds(200), every: .milliseconds(250)) {
            try await stack.run(runId)
        }
        #expect(run.event.timestamp.timeIntervalSince1970 == tick)
        #expect(run.createdAt.timeIntervalSince1970 >= tick, "not before its time")
        // The same wall-clock expression read as UTC is 5.5 hours away: no run of the twin.
        struct RunList: Decodable { var runs: [RunDetails] }
        let twin = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/jobs/utc-twin/runs").body.utf8))
        #expect(twin.runs.isEmpty, "the UTC twin ran: \(twin.runs.map(\.id))")
        // The job listing shows the zone.
        let jobs = try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs").body.replacingOccurrences(of: "\\/", with: "/")
        #expect(jobs.contains(#""timeZone":"Asia/Kolkata""#), "\(jobs)")
        try await stack.stop()
    }
}

@Suite("Several dispatchers over a real broker", .tags(.integration))
struct SeveralDispatchersTests {
    @Test("two dispatchers: every event gets exactly its runs, every tick is fired by one of them and runs once")
    func twoDispatchers() async throws {
        let stack = try await BatonStack.start(label: "two-dispatchers")
        let extra = try await stack.startExtraDispatcher()
        try await stack.startExampleJobs(waitSeconds: 0.1, environment: ["EXAMPLE_TICK_SECONDS": "1"])
        // Both instances know every job, wherever its registration was stored.
        _ = try await eventually("the second dispatcher to know every job", deadline: .seconds(60)) {
            let jobs = try await stack.get(port: extra.port, "/api/v1/jobs").body
            return (BatonStack.exampleJobSlugs + ["ticker"]).allSatisfy { jobs.contains("\"\($0)\"") } ? true : nil
        }
        struct RunList: Decodable { var runs: [RunDetails] }
        var ids: [String] = []
        for index in 0..<10 {
            let id = "evt_two_\(index)_\(UUID().uuidString.prefix(6))"
            ids.append(id)
            #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"user.created","payload":{"id":"t\#(index)","email":"t\#(index)@example.com","name":"T"}}"#).status == 202)
        }
        for id in ids {
            let runs = try await eventually("runs of \(id)", deadline: .seconds(60), every: .milliseconds(100)) { () -> [RunDetails]? in
                let list = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?eventId=\(id)").body.utf8))
                return list.runs.count >= 2 && list.runs.allSatisfy(\.status.isTerminal) ? list.runs : nil
            }
            #expect(runs.count == 2 && runs.allSatisfy { $0.status == .completed })
        }
        _ = try await eventually("four ticks", deadline: .seconds(60), every: .milliseconds(100)) {
            stack.outboxLines().filter { $0.hasPrefix("tick ") }.count >= 4 ? true : nil
        }
        let ticks = stack.outboxLines().filter { $0.hasPrefix("tick ") }.compactMap { Int64($0.split(separator: " ")[1]) }
        #expect(Set(ticks).count == ticks.count, "each tick ran once: \(ticks)")
        // Each tick's run was started by one dispatcher only: the one consuming the job's partition.
        let started = [stack.process(.dispatcher), extra.process].flatMap { $0.output().split(separator: "\n") }
            .filter { $0.contains("run started") && $0.contains("job.slug=ticker") }
            .compactMap { line in line.firstMatch(of: /run\.id=(run_[0-9a-f]+)/).map { String($0.1) } }
        #expect(started.count >= 4 && Set(started).count == started.count, "tick runs started, by run id: \(started)")
        let sorted = ticks.sorted()
        for (earlier, later) in zip(sorted, sorted.dropFirst()) {
            #expect(later - earlier >= 1000, "one run per interval, not one per dispatcher: \(earlier) → \(later)")
        }
        try await stack.stop()
    }
}

@Suite("No stuck runs", .tags(.integration, .fault))
struct StuckRunTests {
    func run(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    @Test("a run whose command was dropped is resumed by the reaper; one no job service runs ends TIMED_OUT with the reason, listed by status")
    func droppedCommands() async throws {
        let stack = try await BatonStack.start(label: "reaper", environment: [
            "RUNS_PROGRESS_TIMEOUT_MS": "3000", "RUNS_PROGRESS_REISSUES": "3", "REAPER_INTERVAL_MS": "200",
        ])
        try await stack.startExampleJobs()
        let producer = try stack.kafkaProducer()
        // Create runs as the dispatcher would, but drop their execute commands on purpose.
        func createRun(job: String, version: String, payload: JSONValue) async throws -> String {
            let event = EventEnvelope(id: "evt_dropped_\(UUID().uuidString.prefix(6))", name: "steps.start", payload: payload)
            let runId = Identifiers.runID(eventID: event.id, jobSlug: job)
            let created = RunEvent(runId: runId, body: .runCreated(.init(jobSlug: job, jobVersion: version, event: event)))
            try await producer.send(topic: Topics().taskResults, key: runId, value: Array(try BatonJSON.encoder.encode(created)))
            return runId
        }
        let recoverable = try await createRun(job: "many-steps", version: "1.0.0", payload: ["steps": 2])
        let orphan = try await createRun(job: "ghost-job", version: "2.0.0", payload: .null)

        let recovered = try await eventually("the reaper to resume the dropped run", deadline: .seconds(60), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await run(stack, recoverable), run.status.isTerminal else { return nil }
            return run
        }
        #expect(recovered.status == .completed)
        #expect(recovered.output == 2)

        let timedOut = try await eventually("the orphan to time out", deadline: .seconds(60), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await run(stack, orphan), run.status.isTerminal else { return nil }
            return run
        }
        #expect(timedOut.status == .timedOut)
        #expect(timedOut.error?.contains("ghost-job") == true && timedOut.error?.contains("2.0.0") == true, "\(timedOut.error ?? "")")
        struct RunList: Decodable { var runs: [RunDetails] }
        let listed = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?status=TIMED_OUT").body.utf8))
        #expect(listed.runs.map(\.id) == [orphan])
        await producer.shutdown()
        try await stack.stop()
    }
}
