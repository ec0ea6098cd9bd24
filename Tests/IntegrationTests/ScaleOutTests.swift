import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// The resume commands sent for each run on a runs topic, read from the start as a new consumer
/// group for `window` (every command of a finished run is on the topic by then; the window
/// catches any extra one sent late).
func resumeCommands(bootstrapServers: String, topic: String, runIds: Set<String>, window: Duration) async throws -> [String: Int] {
    let counts = Mutex<[String: Int]>([:])
    _ = try await readTopic(bootstrapServers: bootstrapServers, topic: topic, deadline: window) { record -> Bool? in
        if let command = try? RunCommand.decode(from: record.value), command.kind == .resume, runIds.contains(command.runId) {
            counts.withLock { $0[command.runId, default: 0] += 1 }
        }
        return nil
    }
    return counts.withLock { $0 }
}

@Suite("Scale-out: several task-result instances on one PostgreSQL", .tags(.integration), .serialized)
struct ScaleOutTests {
    @Test("three task-result instances on one PostgreSQL: a due timer, a background fetch and a stuck-run re-issue each happen exactly once, counted from outside")
    func threeTaskResultInstances() async throws {
        let fetchCalls = Mutex(0)
        let router = Router()
        router.get("/once") { _, _ -> Response in
            fetchCalls.withLock { $0 += 1 }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "fetched")))
        }
        let server = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let store = try await PostgresServer.freshDatabase()
            // Short deadlines so a stuck run is re-issued within seconds; one re-issue, then TIMED_OUT.
            let settings = ["STORE_URL": store, "TIMERS_POLL_MS": "50", "REAPER_INTERVAL_MS": "200",
                            "RUNS_PROGRESS_TIMEOUT_MS": "4000", "RUNS_PROGRESS_REISSUES": "1"]
            let stack = try await BatonStack.start(label: "scale-out", roleEnvironment: [.taskResults: settings.merging(["TASK_RESULTS_INSTANCE": "tr-0"]) { _, n in n }])
            let second = try await stack.startExtraTaskResults(name: "task-results-1", extra: ["TASK_RESULTS_INSTANCE": "tr-1"])
            let third = try await stack.startExtraTaskResults(name: "task-results-2", extra: ["TASK_RESULTS_INSTANCE": "tr-2"])
            // The job service asks the second instance for its checkpoints: whichever instance
            // applies a run's partition, any instance answers for it.
            let jobs = try await stack.startExampleJobs(waitSeconds: 1, environment: ["TASK_RESULTS_URL": "http://127.0.0.1:\(second.port)"],
                                                        jobs: ["new-user-welcome", "fetch"])

            // A due timer: the run waits 1 s, and exactly one instance resumes it.
            let welcome = "evt_scale_welcome_\(UUID().uuidString.prefix(8))"
            #expect(try await stack.sendEvent(#"{"id":"\#(welcome)","name":"user.created","payload":{"id":"ada","name":"Ada","email":"ada@example.com"}}"#).status == 202)
            let welcomeRun = Identifiers.runID(eventID: welcome, jobSlug: "new-user-welcome")
            let waited = try await stack.finishedRun(welcomeRun, deadline: .seconds(60))
            #expect(waited.status == .completed, "\(waited.error ?? "")")
            let timers = waited.tasks.filter { $0.name == "wait" }.count
            #expect(timers == 1)

            // A background fetch: performed once, whichever instance claims it.
            let fetch = "evt_scale_fetch_\(UUID().uuidString.prefix(8))"
            #expect(try await stack.sendEvent(#"{"id":"\#(fetch)","name":"fetch.start","payload":{"url":"http://127.0.0.1:\#(port)/once"}}"#).status == 202)
            let fetched = try await stack.finishedRun(Identifiers.runID(eventID: fetch, jobSlug: "fetch"), deadline: .seconds(60))
            #expect(fetched.output == "200 fetched", "\(fetched.error ?? "")")
            #expect(fetchCalls.withLock { $0 } == 1, "the fetch was performed \(fetchCalls.withLock { $0 }) times")

            // Stuck runs: no job service left, so they never start; exactly one instance
            // re-issues each one's resume command, then they time out. Ten of them, so one
            // instance's round takes a while and the others look meanwhile.
            try await jobs.kill9()
            var stuckRuns: [String] = []
            for index in 0..<10 {
                let stuck = "evt_scale_stuck_\(index)_\(UUID().uuidString.prefix(8))"
                #expect(try await stack.sendEvent(#"{"id":"\#(stuck)","name":"user.created","payload":{"id":"bo","name":"Bo","email":"bo@example.com"}}"#).status == 202)
                stuckRuns.append(Identifiers.runID(eventID: stuck, jobSlug: "new-user-welcome"))
            }
            for run in stuckRuns {
                let timedOut = try await stack.finishedRun(run, deadline: .seconds(90))
                #expect(timedOut.status == .timedOut, "\(timedOut.status)")
            }

            // Counted from outside: the resume commands on the job's topic, and the instances' logs.
            let resumes = try await resumeCommands(bootstrapServers: stack.broker.bootstrapServers, topic: "baton.runs.new-user-welcome",
                                                   runIds: Set(stuckRuns + [welcomeRun]), window: .seconds(8))
            #expect(resumes[welcomeRun] == timers, "timer resumes: \(resumes[welcomeRun] ?? 0)")
            #expect(stuckRuns.map { resumes[$0] ?? 0 } == Array(repeating: 1, count: stuckRuns.count), "stuck-run re-issues per run")
            let instances = [stack.taskResults, second.process, third.process]
            let reissued = instances.map { $0.output().components(separatedBy: "stuck run: resume command re-issued").count - 1 }
            #expect(reissued.reduce(0, +) == stuckRuns.count, "re-issues logged per instance: \(reissued)")
            for instance in instances { try instance.requireRunning() }
            try await stack.stop()
        }
    }

    @Test("an event cancel sent to either of two dispatchers on one PostgreSQL stops the delayed event, whichever instance holds it")
    func cancelOnEitherDispatcher() async throws {
        let store = try await PostgresServer.freshDatabase()
        let stack = try await BatonStack.start(label: "two-dispatchers", roleEnvironment: [.dispatcher: ["STORE_URL": store, "DISPATCHER_INSTANCE": "d-0"]])
        let second = try await stack.startExtraDispatcher(extra: ["DISPATCHER_INSTANCE": "d-1"])
        try await stack.startExampleJobs(waitSeconds: 0, jobs: ["new-user-welcome"])
        // Ten delayed events over both partitions of the events topic, so each instance holds some.
        let ids = (0..<10).map { "evt_two_dispatchers_\($0)_\(UUID().uuidString.prefix(6))" }
        for id in ids {
            #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"user.created","deliverAfter":5,"payload":{"id":"u","name":"U","email":"u@example.com"}}"#).status == 202)
        }
        for id in ids {
            _ = try await eventually("event \(id) to be held", deadline: .seconds(30)) { () -> Bool? in
                try await stack.get(port: second.port, "/api/v1/events/\(id)").body.contains(#""delayedStatus":"PENDING""#) ? true : nil
            }
        }
        // Cancel five at the first dispatcher and three at the second; two are left to run.
        for (index, id) in ids.prefix(8).enumerated() {
            let port = index < 5 ? stack.dispatcherPort : second.port
            let answer = try await stack.delete(port: port, "/api/v1/events/\(id)")
            #expect(answer.status == 200 && answer.body.contains(#""canceled":true"#), "\(answer.body)")
        }
        for id in ids.suffix(2) {
            let run = try await stack.finishedRun(Identifiers.runID(eventID: id, jobSlug: "new-user-welcome"), deadline: .seconds(60))
            #expect(run.status == .completed)
        }
        // Due before the two that ran: had any been delivered, its run would exist by now.
        for id in ids.prefix(8) {
            #expect(try await stack.run(Identifiers.runID(eventID: id, jobSlug: "new-user-welcome")) == nil, "canceled event \(id) started a run")
            for port in [stack.dispatcherPort, second.port] {
                #expect(try await stack.get(port: port, "/api/v1/events/\(id)").body.contains(#""delayedStatus":"CANCELED""#))
            }
        }
        try second.process.requireRunning()
        try await stack.stop()
    }
}
