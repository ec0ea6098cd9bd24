import BatonProtocol
import BatonTesting
import Foundation
import Synchronization
import Testing

/// Fail-stop from outside: a process that cannot do its work says why in one line, answers
/// `/health` with 503, and exits non-zero within its deadline, so a supervisor restarts it.
@Suite("Fail-stop: fatal consumer errors and a broker that lost everything", .tags(.integration, .fault), .serialized)
struct FailStopTests {
    /// Polls `GET /health` of `port` every 100 ms until `process` exits; returns the first
    /// unhealthy answer seen (status 503 and its body), if any.
    func watchHealth(_ stack: BatonStack, port: Int, of process: ChildProcess) -> Task<String?, Never> {
        Task {
            // A request every 100 ms, not one after the other: on a loaded machine one answer can
            // take longer than the 2 s the failed process stays up answering 503.
            let unhealthy = FirstAnswer()
            let deadline = ContinuousClock.now + .seconds(120)
            await withTaskGroup(of: Void.self) { group in
                while process.isRunning, ContinuousClock.now < deadline {
                    group.addTask {
                        if let answer = try? await stack.get(port: port, "/health"), answer.status == 503 { unhealthy.keep(answer.body) }
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            return unhealthy.value
        }
    }

    /// Waits until `process` exits; returns its status and how long that took.
    func exit(of process: ChildProcess, within deadline: Duration) async throws -> (status: Int32, after: Duration) {
        let start = ContinuousClock.now
        _ = try await eventually("\(process.name) to exit", deadline: deadline) { process.isRunning ? nil : true }
        return (process.terminationStatus, ContinuousClock.now - start)
    }

    func sendUserCreated(_ stack: BatonStack, user: String) async throws -> String {
        let id = "evt_\(user)_\(UUID().uuidString.prefix(6))"
        let answer = try await stack.sendEvent(#"{"id":"\#(id)","name":"user.created","payload":{"id":"\#(user)","email":"\#(user)@example.com","name":"U"}}"#)
        try #require(answer.status == 202, "ingester answered \(answer.status): \(answer.body)")
        return Identifiers.runID(eventID: id, jobSlug: "new-user-welcome")
    }

    @Test("a consumer that stops for good (its store locked by another process) makes the process answer /health 503 and exit 1 within its deadline; after a restart the run completes")
    func fatalConsumer() async throws {
        let stack = try await BatonStack.start(label: "fatal-consumer", environment: ["SHUTDOWN_DEADLINE_MS": "5000"])
        try await stack.startExampleJobs(waitSeconds: 0.2, jobs: ["new-user-welcome"])
        _ = try await stack.finishedRun(try await sendUserCreated(stack, user: "before"), deadline: .seconds(60))

        // Another process takes the store's write lock and keeps it (as a second instance on
        // the same file would): the service's next batch cannot be written.
        let store = stack.directory.appendingPathComponent("task-results.sqlite").path
        let locker = try ChildProcess(
            name: "store-locker", executable: URL(fileURLWithPath: "/usr/bin/env"),
            arguments: ["python3", "-c", """
                import sqlite3, sys, time
                c = sqlite3.connect(sys.argv[1], isolation_level=None)
                c.execute('BEGIN EXCLUSIVE')
                print('locked', flush=True)
                time.sleep(300)
                """, store],
            logDirectory: stack.logs)
        _ = try await eventually("the store to be locked", deadline: .seconds(20)) { locker.output().contains("locked") ? true : nil }
        let service = stack.taskResults
        let health = watchHealth(stack, port: stack.taskResultsPort, of: service)
        let runId = try await sendUserCreated(stack, user: "during")

        // The write waits out SQLite's busy timeout (10 s), fails, and the consumer stops.
        let ended = try await exit(of: service, within: .seconds(60))
        #expect(ended.status != 0, "exit status \(ended.status)")
        let output = service.output()
        let fatalLines = output.split(separator: "\n").filter { $0.contains("service stopped for good") }
        #expect(fatalLines.count == 1, "one line says what stopped and why:\n\(fatalLines.joined(separator: "\n"))")
        #expect(fatalLines.first?.contains("database is locked") == true)
        let unhealthy = await health.value
        #expect(unhealthy?.contains("unhealthy") == true, "/health answered 503 before the exit: \(unhealthy ?? "never")")
        // Within its deadline: the busy timeout, the 2 s notice and the 5 s shutdown deadline.
        #expect(ended.after < .seconds(10 + 2 + 5 + 7 + 5), "exited \(ended.after) after the event")

        try await locker.kill9()
        try await stack.restart(.taskResults)
        let run = try await stack.finishedRun(runId, deadline: .seconds(90))
        #expect(run.status == .completed, "the run behind the failure completes after the restart")
        try await stack.stop()
    }

    @Test("the embedded broker SIGKILLed and restarted empty: every process says so in one line, answers 503 and exits non-zero; restarted, the stores reset and a new event completes")
    func brokerRestart() async throws {
        let stack = try await BatonStack.start(label: "broker-restart", environment: ["SHUTDOWN_DEADLINE_MS": "5000"])
        let jobs = try await stack.startExampleJobs(waitSeconds: 0.2, jobs: ["new-user-welcome"])
        _ = try await stack.finishedRun(try await sendUserCreated(stack, user: "before"), deadline: .seconds(60))

        let services: [(role: BatonStack.Role, port: Int)] = [(.taskResults, stack.taskResultsPort), (.dispatcher, stack.dispatcherPort),
                                                               (.ingester, stack.ingesterPort)]
        let processes = services.map { stack.process($0.role) }
        let health = zip(services, processes).map { watchHealth(stack, port: $0.0.port, of: $0.1) }
        try await stack.restartBroker()

        for process in processes + [jobs] {
            let ended = try await exit(of: process, within: .seconds(45))
            #expect(ended.status != 0, "\(process.name) exit status \(ended.status)")
            let lines = process.output().split(separator: "\n").filter { $0.contains("the Kafka broker changed") && $0.contains("critical") }
            #expect(lines.count == 1, "\(process.name) says so in one line:\n\(String(process.output().suffix(3000)))")
            #expect(lines.first?.contains("no longer exists") == true, "\(lines.first ?? "")")
        }
        for (index, watch) in health.enumerated() {
            let unhealthy = await watch.value
            #expect(unhealthy?.contains("the Kafka broker changed") == true, "\(services[index].role) /health before exit: \(unhealthy ?? "never 503")")
        }

        // Under the production policy a store written against the lost broker refuses to start,
        // saying what differs and how to proceed (exit status 78: fix before restarting).
        let refusing = try stack.launch(.taskResults, extra: ["STORE_ON_BROKER_CHANGE": "refuse"])
        let refused = try await exit(of: refusing, within: .seconds(30))
        #expect(refused.status == 78)
        #expect(refusing.output().contains("marker record differs") && refusing.output().contains("STORE_ON_BROKER_CHANGE=reset"),
                "\(String(refusing.output().suffix(2000)))")

        // A supervisor restarts them: the stores were written against the lost broker, and the
        // embedded profile's policy erases them after saying so.
        for (role, _) in services { try await stack.restart(role) }
        for role in [BatonStack.Role.taskResults, .dispatcher] {
            let output = stack.process(role).output()
            #expect(output.contains("erasing the store and starting afresh"), "\(role):\n\(String(output.suffix(3000)))")
            #expect(output.contains("marker record differs"), "\(role) names what differs")
        }
        try await stack.restartJobService(jobs)
        let run = try await stack.finishedRun(try await sendUserCreated(stack, user: "after"), deadline: .seconds(60))
        #expect(run.status == .completed, "a new event completes on the reset stack")
        try await stack.stop()
    }
}

/// The first answer kept, by any of several concurrent pollers.
final class FirstAnswer: Sendable {
    private let answer = Mutex<String?>(nil)
    func keep(_ body: String) { answer.withLock { $0 = $0 ?? body } }
    var value: String? { answer.withLock { $0 } }
}
