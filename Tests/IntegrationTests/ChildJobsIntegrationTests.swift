import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("Child jobs (invokeAndWait, batchInvokeAndWait) over a real broker", .tags(.integration))
struct ChildJobsIntegrationTests {
    /// The runs of job `slug` the runs API lists (one page is enough here).
    private func runs(of slug: String, _ stack: BatonStack) async throws -> [RunDetails] {
        try BatonJSON.decoder.decode(RunListResponse.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?job=\(slug)&limit=100").body.utf8)).runs
    }

    @Test("fulfil-order: a child's output resumes the parent; a declined child reaches it as ChildRunFailed; a batch of children, with the job service SIGKILLed while they run, starts each child once; run records link parent and children")
    func fulfilOrders() async throws {
        let stack = try await BatonStack.start(label: "child-jobs")
        var jobService = try await stack.startExampleJobs(jobs: ["fulfil-order", "charge-card", "pack-item"])
        let suffix = UUID().uuidString.prefix(6)
        let paid = "evt_order_paid_\(suffix)", declined = "evt_order_declined_\(suffix)"
        #expect(try await stack.sendEvent(#"{"id":"\#(paid)","name":"order.placed","payload":{"orderId":"A","cents":500,"skus":["s1","s2","s3"]}}"#).status == 202)
        #expect(try await stack.sendEvent(#"{"id":"\#(declined)","name":"order.placed","payload":{"orderId":"B","cents":0,"skus":["x"]}}"#).status == 202)
        let paidRun = Identifiers.runID(eventID: paid, jobSlug: "fulfil-order")
        let declinedRun = Identifiers.runID(eventID: declined, jobSlug: "fulfil-order")

        // Once the charge and the three packing children exist (packing waits 1 s), kill the job service.
        _ = try await eventually("order A's four children to be invoked", deadline: .seconds(60), every: .milliseconds(50)) { () -> Bool? in
            (try await stack.run(paidRun)?.childRuns?.count ?? 0) >= 4 ? true : nil
        }
        jobService = try await stack.restartJobService(jobService, with: .kill).process

        let parent = try await stack.finishedRun(paidRun, deadline: .seconds(90))
        #expect(parent.status == .completed, "\(parent.status) \(parent.error ?? "")")
        guard case .string(let output)? = parent.output else { Issue.record("no output: \(String(describing: parent.output))"); return }
        #expect(output.hasPrefix("order A charged (ch_") && output.hasSuffix("): packed s1, packed s2, packed s3"), "\(output)")
        let children = try #require(parent.childRuns)
        #expect(children.count == 4, "\(children)")
        for id in children {
            let child = try await stack.finishedRun(id, deadline: .seconds(30))
            #expect(child.status == .completed)
            #expect(child.parentRun?.runId == paidRun, "child \(id) links its parent")
        }
        #expect(try await stack.run(children[0])?.jobId == "charge-card")

        let rejected = try await stack.finishedRun(declinedRun, deadline: .seconds(60))
        #expect(rejected.status == .completed, "the parent caught its child's failure: \(rejected.status) \(rejected.error ?? "")")
        #expect(rejected.output == .string("order B not fulfilled: card declined: 0 cents"), "\(String(describing: rejected.output))")
        let failedChild = try await stack.finishedRun(try #require(rejected.childRuns?.first), deadline: .seconds(10))
        #expect(failedChild.status == .failed && failedChild.parentRun?.runId == declinedRun)
        #expect(stack.outboxLines().filter { $0.hasPrefix("declined B FAILED") }.count == 1)

        // Each child started once, however often its parent was replayed (after each child, and the SIGKILL).
        let packs = try await runs(of: "pack-item", stack)
        #expect(packs.count == 3 && Set(packs.map(\.id)) == Set(children.dropFirst()), "\(packs.map(\.id)) vs \(children)")
        #expect(try await runs(of: "charge-card", stack).count == 2)
        // The parent's task holds the child's outcome; the raw record names the links.
        let raw = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(children[1])").body
        #expect(raw.contains(#""parentRun""#) && raw.contains(paidRun))
        _ = jobService
        try await stack.stop()
    }

    @Test("invoking a job that is not registered fails the child at once, and the parent gets the typed failure instead of waiting")
    func unregisteredChild() async throws {
        let stack = try await BatonStack.start(label: "child-unknown")
        // Only the parent runs: charge-card is never registered.
        try await stack.startExampleJobs(jobs: ["fulfil-order"])
        let eventId = "evt_order_orphan_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"order.placed","payload":{"orderId":"C","cents":100,"skus":[]}}"#).status == 202)
        let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "fulfil-order"), deadline: .seconds(60))
        #expect(run.status == .completed, "\(run.status) \(run.error ?? "")")
        #expect(run.output == .string("order C not fulfilled: job 'charge-card' is not registered (in this project and environment): register it first"),
                "\(String(describing: run.output))")
        try await stack.stop()
    }
}
