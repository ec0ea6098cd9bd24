import Baton
import BatonProtocol
import BatonTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("io.random, io.yield and io.createStatus over a real broker", .tags(.integration))
struct RunOperationsIntegrationTests {
    @Test("batch-import: a slice per batch (yield), the same random sample in every slice, each batch once, the run record's latest status the last one set")
    func batchImport() async throws {
        let stack = try await BatonStack.start(label: "run-ops")
        try await stack.startExampleJobs(jobs: ["batch-import"])
        let eventId = "evt_import_\(UUID().uuidString.prefix(8))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"import.requested","payload":{"batches":3}}"#).status == 202)
        let runId = Identifiers.runID(eventID: eventId, jobSlug: "batch-import")
        let run = try await eventually("the import run to end", deadline: .seconds(90), every: .milliseconds(100)) { () -> RunDetails? in
            guard let run = try await stack.run(runId), run.status.isTerminal else { return nil }
            return run
        }
        #expect(run.status == .completed, "\(run.status) \(run.error ?? "")")
        let lines = stack.outboxLines()
        let slices = lines.filter { $0.hasPrefix("import slice \(runId) ") }
        let samples = Set(slices.map { $0.split(separator: " ").last.map(String.init) ?? "" })
        #expect(slices.count >= 4, "a slice per batch and the last: \(slices)")
        #expect(samples.count == 1, "every slice saw the same sample: \(samples)")
        for batch in 0..<3 {
            #expect(lines.filter { $0 == "import batch \(runId) \(batch)" }.count == 1, "batch \(batch) imported once")
        }
        let sample = try #require(samples.first)
        #expect(run.output == .string("imported 3 batches, sample \(sample)"))
        #expect(run.tasks.first { $0.key == "sample" }?.name == "random")
        #expect(run.latestStatus == RunStatusUpdate(key: "progress 2", label: "Imported 3 of 3 batches", state: .success, data: ["done": 3, "total": 3]))
        // onSuccess ran once, with the run's output.
        #expect(lines.filter { $0.hasPrefix("import done \(runId)") } == ["import done \(runId): imported 3 batches, sample \(sample)"])
        // The job's log level is info: its debug lines were not stored.
        #expect(run.logs.map { "\($0.level) \($0.message)" } == (0..<3).map { "INFO batch \($0) imported" })
        // The runs API sends it as the document says.
        let raw = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(runId)").body
        #expect(raw.contains(#""latestStatus""#) && raw.contains("Imported 3 of 3 batches"))
        try await stack.stop()
    }

    @Test("a disabled job (PUT with enabled false): events start no runs and invoking it is refused with 409; enabled again, new events run and the missed one is not replayed")
    func disabledJob() async throws {
        let stack = try await BatonStack.start(label: "job-options")
        func register(enabled: Bool?) async throws {
            let option = enabled.map { #","enabled":\#($0)"# } ?? ""
            let answer = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/toggle", method: .PUT,
                                                 body: #"{"name":"Toggle","version":"1.0.0","trigger":{"type":"event","eventName":"toggle.ping"}\#(option)}"#)
            #expect(answer.status == 200, "\(answer.body)")
            _ = try await eventually("the dispatcher to hold the registration (enabled: \(String(describing: enabled)))", deadline: .seconds(30)) { () -> Bool? in
                let job = try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/toggle")
                guard job.status == 200 else { return nil }
                return job.body.contains(#""enabled":false"#) == (enabled == false) ? true : nil
            }
        }
        try await register(enabled: false)
        let invoked = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/toggle/invoke", method: .POST, body: #"{"payload":{}}"#)
        #expect(invoked.status == 409 && invoked.body.contains("job_disabled"), "\(invoked.status) \(invoked.body)")
        let missed = "evt_toggle_missed_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(missed)","name":"toggle.ping","payload":{}}"#).status == 202)
        // The dispatcher has handled it (dispatched, with no run to start) before the job is enabled again.
        _ = try await eventually("the dispatcher to handle the event sent while disabled", deadline: .seconds(30)) { () -> Bool? in
            let list = try BatonJSON.decoder.decode(EventListResponse.self, from: Data(try await stack.get(port: stack.dispatcherPort, "/api/v1/events").body.utf8))
            return list.events.contains { $0.id == missed && $0.dispatched } ? true : nil
        }
        try await register(enabled: nil)
        let sent = "evt_toggle_sent_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(sent)","name":"toggle.ping","payload":{}}"#).status == 202)
        let run = try await eventually("the run of the event sent once enabled", deadline: .seconds(30), every: .milliseconds(100)) {
            try await stack.run(Identifiers.runID(eventID: sent, jobSlug: "toggle"))
        }
        #expect(run.jobId == "toggle")
        #expect(try await stack.run(Identifiers.runID(eventID: missed, jobSlug: "toggle")) == nil, "enabling the job did not replay the event it missed")
        try await stack.stop()
    }

    @Test("a job disabled in its job service takes no replay: the replayed run ends CANCELED, saying why, and the job's code does not run")
    func replayOfDisabledJob() async throws {
        let stack = try await BatonStack.start(label: "disabled-replay")
        let enabled = try await stack.startExampleJobs(jobs: ["rate-limited-ping"])
        let suffix = UUID().uuidString.prefix(6)
        let event = "evt_disabled_replay_\(suffix)"
        #expect(try await stack.sendEvent(#"{"id":"\#(event)","name":"ping.limited","payload":{"user":"d-\#(suffix)","n":0}}"#).status == 202)
        let original = try await stack.finishedRun(Identifiers.runID(eventID: event, jobSlug: "rate-limited-ping"))
        #expect(original.status == .completed)
        let pings = { stack.outboxLines().filter { $0.hasPrefix("limited ping d-\(suffix) ") }.count }
        #expect(pings() == 1)

        // The job service is deployed again with the job disabled.
        _ = try await stack.stop(enabled, with: .terminate(deadline: .seconds(20)))
        try await stack.startExampleJobs(environment: ["EXAMPLE_DISABLED_JOBS": "rate-limited-ping"], jobs: ["rate-limited-ping"])
        _ = try await eventually("the dispatcher to hold the disabled registration", deadline: .seconds(30)) { () -> Bool? in
            try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/rate-limited-ping").body.contains(#""enabled":false"#) ? true : nil
        }
        let replay = try await RunsClient(baseURL: "http://127.0.0.1:\(stack.taskResultsPort)").replay(runId: original.id)
        let replayed = try await stack.finishedRun(replay.runId)
        #expect(replayed.status == .canceled && replayed.error?.contains("is disabled") == true, "\(replayed.status) \(replayed.error ?? "")")
        #expect(replayed.tasks.isEmpty && pings() == 1, "the job's code did not run")
        try await stack.stop()
    }
}
