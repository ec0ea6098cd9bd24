import Baton
import BatonKafka
import BatonProtocol
import BatonTesting
import Foundation
import Logging
import NIOHTTP1
import Testing

@Suite("Event ids and invoked jobs over a real broker", .tags(.integration))
struct EventIdentityTests {
    struct Steps: Codable, Sendable { var steps: Int }

    /// How many times the dispatcher reported a resend of `eventId`.
    func resendsReported(_ stack: BatonStack, _ eventId: String) -> Int {
        stack.process(.dispatcher).output().split(separator: "\n")
            .filter { $0.contains("event id seen before") && $0.contains(eventId) }.count
    }

    @Test("sending an event id again answers as the first time and starts nothing new: over HTTP, straight to Kafka, and after a matching job was registered")
    func resendIsIdempotent() async throws {
        let stack = try await BatonStack.start(label: "resend")
        try await stack.startExampleJobs()
        let eventId = "evt_resend_\(UUID().uuidString.prefix(6))"
        let first = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":2}}"#)
        #expect(first.status == 202, "\(first.body)")
        let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"))
        #expect(run.status == .completed && run.output == 2)

        // Over HTTP: the same answer (id, name, timestamp), though the payload differs.
        let again = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":5}}"#)
        #expect(again.status == 202)
        #expect(again.body == first.body, "first: \(first.body) again: \(again.body)")

        // A job registered since matches the event; a resend must not start it either.
        let registered = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/steps-audit", method: .PUT,
                                                 body: #"{"name":"Steps audit","version":"1.0.0","trigger":{"type":"event","eventName":"steps.start"}}"#)
        #expect(registered.status == 200, "\(registered.body)")
        _ = try await eventually("the dispatcher to know steps-audit", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/steps-audit").status == 200 ? true : nil
        }
        // Straight to Kafka (no ingester to answer from what it knows): the dispatcher keeps the first.
        let producer = try stack.kafkaProducer()
        try await BatonClient.kafka(producer: producer).sendEvent(name: "steps.start", payload: Steps(steps: 7), id: eventId)
        _ = try await eventually("the dispatcher to report the resend", deadline: .seconds(30)) {
            resendsReported(stack, eventId) >= 1 ? true : nil
        }
        let runs = try await stack.runs(event: eventId)
        #expect(runs.map(\.jobId) == ["many-steps"], "runs of the resent event: \(runs.map(\.id))")
        #expect(try await stack.run(run.id)?.output == 2)
        #expect(stack.outboxLines().filter { $0.hasPrefix("step \(run.id) ") }.count == 2)
        // A new id with the same content is a new event, and starts both jobs.
        let fresh = "evt_fresh_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(fresh)","name":"steps.start","payload":{"steps":1}}"#).status == 202)
        let freshRuns = try await eventually("the new event's two runs", deadline: .seconds(30)) { () -> [RunDetails]? in
            let runs = try await stack.runs(event: fresh)
            return runs.count == 2 ? runs : nil
        }
        #expect(Set(freshRuns.map(\.jobId)) == ["many-steps", "steps-audit"])
        await producer.shutdown()
        try await stack.stop()
    }

    @Test("a delayed event sent again without its delay is not delivered early: the first one wins")
    func delayedResendKeepsTheDelay() async throws {
        let stack = try await BatonStack.start(label: "resend-delay")
        try await stack.startExampleJobs()
        let eventId = "evt_resend_delay_\(UUID().uuidString.prefix(6))"
        let sentAt = Date()
        let first = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","deliverAfter":4,"payload":{"steps":1}}"#)
        #expect(first.status == 202, "\(first.body)")
        // Straight to Kafka at once, without the delay: the dispatcher may see it first or second.
        let producer = try stack.kafkaProducer()
        try await BatonClient.kafka(producer: producer).sendEvent(name: "steps.start", payload: Steps(steps: 3), id: eventId)
        // Held (or, on a loaded machine where this look comes late, already delivered after its delay:
        // the run's creation time below shows the delay was kept).
        _ = try await eventually("the dispatcher to hold the event", deadline: .seconds(30)) { () -> Bool? in
            let body = try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(eventId)").body
            return body.contains("PENDING") || body.contains("DELIVERED") ? true : nil
        }
        let again = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"steps.start","payload":{"steps":3}}"#)
        #expect(again.body == first.body, "first: \(first.body) again: \(again.body)")

        let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "many-steps"))
        #expect(run.status == .completed && run.output == 1)
        #expect(run.createdAt.timeIntervalSince(sentAt) >= 3.9, "started \(run.createdAt.timeIntervalSince(sentAt)) s after the first send")
        #expect(try await stack.runs(event: eventId).count == 1)
        await producer.shutdown()
        try await stack.stop()
    }

    @Test("a job with invokeTrigger runs when invoked, over HTTP and over Kafka, once per invocation id; events do not start it")
    func invokeTrigger() async throws {
        let stack = try await BatonStack.start(label: "invoke")
        try await stack.startExampleJobs()
        struct Report: Codable, Sendable { var customer: String; var month: String }
        let http = BatonClient.http(baseURL: "http://127.0.0.1:\(stack.ingesterPort)")
        let producer = try stack.kafkaProducer()
        let kafka = BatonClient.kafka(producer: producer)

        let viaHTTP = try await http.invoke(jobId: "Monthly Report", payload: Report(customer: "acme", month: "2026-10"))
        let invocation = "inv_\(UUID().uuidString.prefix(6))"
        let viaKafka = try await kafka.invoke(jobId: "monthly-report", payload: Report(customer: "globex", month: "2026-11"), id: invocation)
        #expect(try await stack.finishedRun(viaHTTP).output == "acme 2026-10: 4 invoices")
        #expect(try await stack.finishedRun(viaKafka).output == "globex 2026-11: 6 invoices")
        // The same invocation id again: the same run id, and no second run.
        #expect(try await http.invoke(jobId: "monthly-report", payload: Report(customer: "globex", month: "2026-11"), id: invocation) == viaKafka)
        _ = try await eventually("the dispatcher to report the second invocation", deadline: .seconds(30)) {
            resendsReported(stack, invocation) >= 1 ? true : nil
        }
        // An event named like invocations, without the invoke field, matches no invoke-only job.
        let lookalike = "evt_lookalike_\(UUID().uuidString.prefix(6))"
        try await kafka.sendEvent(name: JobTrigger.invokedEventName, payload: Report(customer: "initech", month: "2026-11"), id: lookalike)
        _ = try await eventually("the dispatcher to handle the look-alike event", deadline: .seconds(30)) {
            stack.process(.dispatcher).output().contains("no job matches event") && stack.process(.dispatcher).output().contains(lookalike) ? true : nil
        }
        #expect(try await stack.runs(event: lookalike).isEmpty)
        #expect(stack.outboxLines().filter { $0.hasPrefix("report ") }.count == 2, "\(stack.outboxLines())")
        // Unknown jobs are refused over HTTP.
        await #expect(throws: BatonClientError.self) {
            try await http.invoke(jobId: "no-such-report", payload: Report(customer: "x", month: "y"))
        }
        await producer.shutdown()
        try await stack.stop()
    }
}
