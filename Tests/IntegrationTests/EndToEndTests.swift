import BatonProtocol
import BatonTesting
import Foundation
import Testing

extension Tag {
    @Tag static var integration: Self
    @Tag static var fault: Self
}

/// The whole system as real processes over a real Tansu broker.
@Suite("End to end over a real broker", .tags(.integration), .serialized)
struct EndToEndTests {
    func runDocument(_ stack: BatonStack, _ runId: String) async throws -> RunDetails? {
        try await stack.run(runId)
    }

    func awaitStatus(_ stack: BatonStack, _ runId: String, _ expected: RunStatus, deadline: Duration = .seconds(60)) async throws -> RunDetails {
        do {
            return try await eventually("run \(runId) to be \(expected)", deadline: deadline, every: .milliseconds(100)) {
                let run = try await runDocument(stack, runId)
                if let run, run.status.isTerminal, run.status != expected {
                    Issue.record("run ended as \(run.status): \(run.error ?? "")")
                    return run
                }
                return run?.status == expected ? run : nil
            }
        } catch {
            Issue.record("\(error)\n\(stack.allOutput())")
            throw error
        }
    }

    func userEvent(id: String, user: String) -> String {
        #"{"id":"\#(id)","name":"user.created","payload":{"id":"\#(user)","email":"\#(user)@example.com","name":"User \#(user)"}}"#
    }

    @Test("an event sent over HTTP runs the job to COMPLETED, each task once")
    func eventToCompletedRun() async throws {
        let stack = try await BatonStack.start(label: "e2e")
        try await stack.startExampleJobs(waitSeconds: 1)

        let eventId = "evt_e2e_\(UUID().uuidString.prefix(8))"
        let (status, body) = try await stack.sendEvent(userEvent(id: eventId, user: "u1"))
        #expect(status == 202, "\(body)")
        #expect(body.contains(eventId))

        let runId = Identifiers.runID(eventID: eventId, jobSlug: "new-user-welcome")
        let run = try await awaitStatus(stack, runId, .completed)
        #expect(run.jobVersion == "1.0.0")
        #expect(run.output == ["userId": "u1", "emailedTo": "u1@example.com", "message": "Welcome aboard, User u1!"])
        #expect(run.tasks.map(\.key) == ["look up user", "give them a moment", "send welcome e-mail"])
        #expect(run.tasks.allSatisfy { $0.status == .completed && $0.attempts == 1 })
        #expect(run.logs.map(\.message) == ["Welcoming User u1", "Welcome e-mail sent"])
        // ctx.attempt counts slices: the first line was logged in slice 1, the second after the wait.
        #expect(run.logs.map { $0.properties?["slice"] } == [1, 2])
        #expect(run.logs.first?.properties?["project"] == "default")

        // Side effects, counted outside the job process: exactly one of each.
        let lines = stack.outboxLines().filter { $0.hasSuffix("run=\(runId)") }
        #expect(lines.filter { $0.hasPrefix("lookup u1") }.count == 1)
        #expect(lines.filter { $0.hasPrefix("welcome u1@example.com") }.count == 1)

        // Sending the same event id again starts no second run.
        #expect(try await stack.sendEvent(userEvent(id: eventId, user: "u1")).status == 202)
        let other = "evt_e2e_other_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(userEvent(id: other, user: "u2")).status == 202)
        _ = try await awaitStatus(stack, Identifiers.runID(eventID: other, jobSlug: "new-user-welcome"), .completed)
        #expect(stack.outboxLines().filter { $0.hasSuffix("run=\(runId)") }.count == 2)

        // The event started exactly one run, with the derived id.
        struct RunList: Decodable { var runs: [RunDetails] }
        let listed = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?eventId=\(eventId)")
        #expect(listed.status == 200)
        let list = try BatonJSON.decoder.decode(RunList.self, from: Data(listed.body.utf8))
        // Fan-out: the event started one run of each matching job (user-audit's filter passes).
        #expect(Set(list.runs.map(\.id)) == [runId, Identifiers.runID(eventID: eventId, jobSlug: "user-audit")])
        #expect(Set(list.runs.map(\.jobId)) == ["new-user-welcome", "user-audit"])
        // Without a filter: every run of the caller, newest first (both are on the first page).
        let everything = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs").body.utf8))
        #expect(Set(list.runs.map(\.id)).isSubset(of: Set(everything.runs.map(\.id))))
        try await stack.stop()
    }

    @Test("the job service is SIGKILLed during io.wait; a new one completes the run without redoing the first task", .tags(.fault))
    func killDuringWait() async throws {
        let stack = try await BatonStack.start(label: "kill")
        let first = try await stack.startExampleJobs(waitSeconds: 5)
        let eventId = "evt_kill_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(userEvent(id: eventId, user: "k1")).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "new-user-welcome")

        // The first task completed and the run sleeps in its wait: kill the job service now.
        let waiting = try await awaitStatus(stack, runId, .waiting)
        #expect(waiting.tasks.first?.status == .completed)
        try await first.kill9()
        #expect(stack.outboxLines().filter { $0.hasPrefix("lookup k1") }.count == 1)

        try await stack.startExampleJobs(waitSeconds: 5)
        let run = try await awaitStatus(stack, runId, .completed, deadline: .seconds(90))
        #expect(run.output?["emailedTo"] == "k1@example.com")
        let lines = stack.outboxLines().filter { $0.hasSuffix("run=\(runId)") }
        #expect(lines.filter { $0.hasPrefix("lookup k1") }.count == 1, "the completed task ran again: \(lines)")
        #expect(lines.filter { $0.hasPrefix("welcome k1@example.com") }.count == 1)
        try await stack.stop()
    }

    @Test("the ingester answers 400 to bad JSON and 503, never 2xx, when the broker is gone")
    func ingesterRefusesWhatItCannotDeliver() async throws {
        let stack = try await BatonStack.start(label: "ingest", environment: ["KAFKA_DELIVERY_TIMEOUT_MS": "2000"])
        let bad = try await stack.sendEvent(#"{"name": "user.created", "payload": "#)
        #expect(bad.status == 400)
        let error = try BatonJSON.decoder.decode(APIErrorDocument.self, from: Data(bad.body.utf8))
        #expect(error.error.code == "malformed_json")
        #expect(!error.error.message.isEmpty)

        // Take the broker away: the ingester must not accept what it cannot deliver.
        try await stack.broker.stop()
        let refused = try await stack.sendEvent(userEvent(id: "evt_lost", user: "x"))
        #expect(refused.status == 503, "\(refused.body)")
        #expect(refused.body.contains("broker_unavailable"))
        try await stack.stop()
    }
}

/// `{"error": {"code", "message", "path"}}`.
struct APIErrorDocument: Decodable {
    struct Detail: Decodable {
        var code: String
        var message: String
        var path: String?
    }
    var error: Detail
}

@Suite("Retries over a real broker", .tags(.integration))
struct RetryIntegrationTests {
    @Test("a flaky task is retried after durable back-offs until it succeeds; one that keeps failing fails the run")
    func retries() async throws {
        let stack = try await BatonStack.start(label: "retry")
        try await stack.startExampleJobs()
        let succeeding = "evt_flaky_ok_\(UUID().uuidString.prefix(6))"
        let failing = "evt_flaky_ko_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(succeeding)","name":"flaky.start","payload":{"failures":2,"limit":4}}"#).status == 202)
        #expect(try await stack.sendEvent(#"{"id":"\#(failing)","name":"flaky.start","payload":{"failures":9,"limit":3}}"#).status == 202)
        func finished(_ eventId: String) async throws -> RunDetails {
            try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "flaky"))
    }
        let ok = try await finished(succeeding)
        let ko = try await finished(failing)
        // An attempt cut short by a rebalance (its slice fenced and cancelled before the
        // failure was recorded: at least once) runs again; with none, exactly the policy's.
        let fenced = stack.jobServices.map { $0.output().components(separatedBy: "fenced slice").count - 1 }.reduce(0, +)
        func attempts(_ run: RunDetails) -> Int { stack.outboxLines().filter { $0.hasPrefix("attempt \(run.id) ") }.count }
        #expect(ok.status == .completed)
        #expect((3...3 + fenced).contains(attempts(ok)) && ok.output == .string("succeeded on attempt \(attempts(ok))"),
                "\(ok.output.map { "\($0)" } ?? "") after \(fenced) fenced slices")
        #expect(ok.tasks.first?.attempts == attempts(ok))

        #expect(ko.status == .failed)
        #expect((3...3 + fenced).contains(attempts(ko)) && ko.error?.contains("flaky service failed (attempt \(attempts(ko)))") == true,
                "\(ko.error ?? "") after \(fenced) fenced slices")
        #expect(ko.tasks.first?.status == .errored)
        #expect(ko.tasks.first?.attempts == attempts(ko))
        try await stack.stop()
    }
}

@Suite("io.sendEvent over a real broker", .tags(.integration))
struct SendEventIntegrationTests {
    @Test("events sent from a run start their own runs, once each")
    func fanOut() async throws {
        let stack = try await BatonStack.start(label: "fanout")
        try await stack.startExampleJobs()
        let eventId = "evt_fanout_\(UUID().uuidString.prefix(6))"
        let sentAt = Date()
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"fanout.start","payload":{"count":5,"delaySeconds":1}}"#).status == 202)
        func finished(_ runId: String) async throws -> RunDetails {
            try await stack.finishedRun(runId)
    }
        let parent = try await finished(Identifiers.runID(eventID: eventId, jobSlug: "fan-out"))
        #expect(parent.status == .completed)
        let sent = try #require(parent.output.map { try $0.decode(as: [String].self) })
        #expect(sent.count == 5 && Set(sent).count == 5)
        for child in sent {
            #expect(child == Identifiers.eventID(runID: parent.id, taskID: Identifiers.taskID(runID: parent.id, parentTaskID: nil, key: "send \(sent.firstIndex(of: child)!)")))
            let run = try await finished(Identifiers.runID(eventID: child, jobSlug: "many-steps"))
            #expect(run.status == .completed)
            #expect(run.createdAt.timeIntervalSince(sentAt) >= 0.95, "sent with a 1 s delay")
            struct RunList: Decodable { var runs: [RunDetails] }
            let list = try BatonJSON.decoder.decode(RunList.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?eventId=\(child)").body.utf8))
            #expect(list.runs.count == 1)
        }
        try await stack.stop()
    }
}

@Suite("Parallel tasks over a real broker", .tags(.integration))
struct ParallelIntegrationTests {
    @Test("async let branches with their own waits and a task group complete, each task once")
    func parallelBranches() async throws {
        let stack = try await BatonStack.start(label: "parallel")
        try await stack.startExampleJobs()
        let eventId = "evt_parallel_\(UUID().uuidString.prefix(6))"
        let started = Date()
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"parallel.start","payload":{"waitA":0.5,"waitB":1.5}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "parallel")
        let run = try await stack.finishedRun(runId, deadline: .seconds(60))
        #expect(run.status == .completed, "\(run.error ?? "")")
        #expect(run.output == "aA-bB-30")
        #expect(Date().timeIntervalSince(started) >= 1.5, "the longer wait was honoured")
        let lines = stack.outboxLines().filter { $0.hasPrefix("parallel \(runId) ") }
        let keys = ["a first", "a second", "b first", "b second"] + (0..<5).map { "square \($0)" }
        for key in keys {
            #expect(lines.filter { $0 == "parallel \(runId) \(key)" }.count == 1, "\(key): \(lines)")
        }
        #expect(run.tasks.filter { $0.status == .completed }.count == keys.count + 2)  // + the two waits
        try await stack.stop()
    }
}

@Suite("Deduplication keys over a real broker", .tags(.integration))
struct DeduplicationIntegrationTests {
    func finished(_ stack: BatonStack, _ eventId: String) async throws -> RunDetails {
        try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "welcome-once"))
    }

    func send(_ stack: BatonStack, _ payload: String) async throws -> String {
        let eventId = "evt_once_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"welcome.once","payload":\#(payload)}"#).status == 202)
        return eventId
    }

    @Test("racing runs execute a deduplicated task once; a failure is executed again, or returned with skipFailure")
    func deduplication() async throws {
        let stack = try await BatonStack.start(label: "dedupe")
        // Two job services, so racing runs can execute at the same time.
        try await stack.startExampleJobs()
        try await stack.startExampleJobs()
        func executions(_ user: String) -> Int { stack.outboxLines().filter { $0.hasPrefix("once \(user) ") }.count }

        // Racing: three runs for one user at once.
        var racing: [String] = []
        for _ in 0..<3 { racing.append(try await send(stack, #"{"userId":"u1"}"#)) }
        var outputs: Set<JSONValue?> = []
        for eventId in racing {
            let run = try await finished(stack, eventId)
            #expect(run.status == .completed, "\(run.error ?? "")")
            outputs.insert(run.output)
        }
        #expect(executions("u1") == 1)
        #expect(outputs.count == 1, "every run returns the one stored output: \(outputs)")

        // A failure under the key: the next run executes the task again.
        let failed = try await finished(stack, try await send(stack, #"{"userId":"u2","fail":true}"#))
        #expect(failed.status == .failed)
        let retried = try await finished(stack, try await send(stack, #"{"userId":"u2"}"#))
        #expect(retried.status == .completed)
        #expect(executions("u2") == 2)

        // skipFailure: the stored failure is returned and the run goes on, without executing.
        _ = try await finished(stack, try await send(stack, #"{"userId":"u3","fail":true}"#))
        let skipping = try await finished(stack, try await send(stack, #"{"userId":"u3","skipFailure":true}"#))
        #expect(skipping.status == .completed)
        #expect(skipping.output == "skipped: sending failed before")
        #expect(executions("u3") == 1)
        try await stack.stop()
    }
}

@Suite("The seeds' keys guide over a real broker", .tags(.integration))
struct SeedsExampleTests {
    @Test("'⭐️ New Star' twice runs once; the Wait i / ⭐️ New Star i loop runs each step once; subtask keys are scoped by parent")
    func starsLoop() async throws {
        let stack = try await BatonStack.start(label: "stars")
        try await stack.startExampleJobs()
        let eventId = "evt_star_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"github.star","payload":{"starredBy":"ada","repoName":"baton","waitSeconds":0.05}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "github-stars")
        let run = try await stack.finishedRun(runId, deadline: .seconds(90))
        #expect(run.status == .completed, "\(run.error ?? "")")
        let lines = stack.outboxLines().filter { $0.hasPrefix("slack \(runId) ") }
        #expect(lines.filter { $0.hasSuffix("just starred baton!") }.count == 1, "'⭐️ New Star' twice is one task")
        for index in 0..<10 {
            #expect(lines.filter { $0 == "slack \(runId) github-stars star \(index)" }.count == 1)
        }
        #expect(lines.contains("slack \(runId) digest @ada") && lines.contains("slack \(runId) archive @ada"))
        #expect(lines.count == 13)
        // The same key under two parents: two tasks with different parents, plus the top one.
        let stars = run.tasks.filter { $0.key == "⭐️ New Star" }
        #expect(stars.count == 3)
        #expect(Set(stars.map(\.parentId)).count == 3)
        #expect(stars.first?.properties?["channel"] == "github-stars")
        #expect(stars.first?.name == "slack.postMessage")
        #expect(run.tasks.filter { $0.key.hasPrefix("Wait ") }.count == 10)
        try await stack.stop()
    }
}
