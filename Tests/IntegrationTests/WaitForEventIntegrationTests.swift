import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("io.waitForEvent over a real broker", .tags(.integration))
struct WaitForEventIntegrationTests {
    private func submit(_ stack: BatonStack, _ eventId: String, expense: String, extra: String = "") async throws -> String {
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"expense.submitted","payload":{"expenseId":"\#(expense)","cents":100\#(extra)}}"#).status == 202)
        return Identifiers.runID(eventID: eventId, jobSlug: "expense-approval")
    }

    @discardableResult
    private func approve(_ stack: BatonStack, expense: String, by approver: String) async throws -> String {
        let id = "evt_approval_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"expense.approved","payload":{"expenseId":"\#(expense)","approver":"\#(approver)"}}"#).status == 202)
        return id
    }

    private func waiting(_ stack: BatonStack, _ runs: [String]) async throws {
        _ = try await eventually("\(runs.count) runs to wait for their event", deadline: .seconds(60), every: .milliseconds(100)) { () -> Bool? in
            for id in runs {
                guard let run = try await stack.run(id), run.status == .waiting, run.tasks.contains(where: { $0.key == "approval" }) else { return nil }
            }
            return true
        }
    }

    @Test("the race: 20 runs each send their approval just before they wait (it reaches the dispatcher before the wait does); every run gets its own event, once")
    func race() async throws {
        let stack = try await BatonStack.start(label: "wait-race")
        try await stack.startExampleJobs(jobs: ["expense-approval"])
        let suffix = UUID().uuidString.prefix(6)
        var runs: [String: String] = [:]
        for index in 0..<20 {
            runs["race-\(suffix)-\(index)"] = try await submit(stack, "evt_race_\(suffix)_\(index)", expense: "race-\(suffix)-\(index)", extra: #","autoApprove":true"#)
        }
        for (expense, id) in runs {
            let run = try await stack.finishedRun(id, deadline: .seconds(90))
            #expect(run.status == .completed && run.output == .string("expense \(expense) approved by auto"), "\(expense): \(run.status) \(String(describing: run.output))")
        }
        let lines = stack.outboxLines()
        for (expense, id) in runs {
            #expect(lines.filter { $0 == "approved \(expense) by auto run=\(id)" }.count == 1)
        }
        try await stack.stop()
    }

    @Test("three runs wait for one expense's approval: an approval of another expense resumes none; the right one resumes each, once; a fourth times out")
    func manyWaitersAndTimeout() async throws {
        let stack = try await BatonStack.start(label: "wait-many")
        try await stack.startExampleJobs(jobs: ["expense-approval"])
        let suffix = UUID().uuidString.prefix(6)
        let expense = "shared-\(suffix)"
        var runs: [String] = []
        for index in 0..<3 { runs.append(try await submit(stack, "evt_many_\(suffix)_\(index)", expense: expense)) }
        let lonely = try await submit(stack, "evt_lonely_\(suffix)", expense: "lonely-\(suffix)", extra: #","timeoutSeconds":10"#)
        try await waiting(stack, runs + [lonely])
        let waitStarted = ContinuousClock.now
        // An approval of another expense first, handled by the dispatcher before the right one is
        // sent: had it matched, the runs would say "approved by nobody".
        let wrong = try await approve(stack, expense: "other-\(suffix)", by: "nobody")
        _ = try await eventually("the dispatcher to handle the other expense's approval", deadline: .seconds(30)) { () -> Bool? in
            let list = try BatonJSON.decoder.decode(EventListResponse.self, from: Data(try await stack.get(port: stack.dispatcherPort, "/api/v1/events").body.utf8))
            return list.events.contains { $0.id == wrong && $0.dispatched } ? true : nil
        }
        try await approve(stack, expense: expense, by: "ada")
        for id in runs {
            let run = try await stack.finishedRun(id, deadline: .seconds(60))
            #expect(run.output == .string("expense \(expense) approved by ada"), "\(String(describing: run.output))")
            #expect(stack.outboxLines().filter { $0 == "approved \(expense) by ada run=\(id)" }.count == 1)
        }
        let timedOut = try await stack.finishedRun(lonely, deadline: .seconds(60))
        #expect(timedOut.status == .completed && timedOut.output == .string("expense lonely-\(suffix): no decision"), "\(String(describing: timedOut.output))")
        #expect(ContinuousClock.now - waitStarted >= .seconds(8), "the timeout is 10 s from the wait")
        #expect(timedOut.logs.contains { $0.level == "WARN" && $0.message.contains("no 'expense.approved' event arrived for wait 'approval'") })
        try await stack.stop()
    }

    @Test("SIGKILL of every service while five runs wait: after the restarts each run gets its event, once")
    func killEverythingWhileWaiting() async throws {
        let stack = try await BatonStack.start(label: "wait-kill")
        var jobService = try await stack.startExampleJobs(jobs: ["expense-approval"])
        let suffix = UUID().uuidString.prefix(6)
        var runs: [String: String] = [:]
        for index in 0..<5 { runs["kill-\(suffix)-\(index)"] = try await submit(stack, "evt_kill_\(suffix)_\(index)", expense: "kill-\(suffix)-\(index)") }
        try await waiting(stack, Array(runs.values))
        try await stack.restart(.dispatcher, with: .kill)
        try await stack.restart(.taskResults, with: .kill)
        try await stack.restart(.ingester, with: .kill)
        jobService = try await stack.restartJobService(jobService, with: .kill).process
        for expense in runs.keys.sorted() { try await approve(stack, expense: expense, by: "grace") }
        for (expense, id) in runs {
            let run = try await stack.finishedRun(id, deadline: .seconds(120))
            #expect(run.status == .completed && run.output == .string("expense \(expense) approved by grace"), "\(expense): \(String(describing: run.output))")
        }
        let lines = stack.outboxLines()
        for (expense, id) in runs { #expect(lines.filter { $0 == "approved \(expense) by grace run=\(id)" }.count == 1) }
        _ = jobService
        try await stack.stop()
    }
}
