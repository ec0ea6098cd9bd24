import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("Prometheus metrics of every process", .tags(.integration))
struct MetricsTests {
    /// The value of the sample `name` (with its labels, as printed) in a Prometheus exposition.
    func sample(_ exposition: String, _ name: String) -> Double? {
        exposition.split(separator: "\n").lazy
            .filter { $0.hasPrefix(name + " ") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }
            .first
    }

    @Test("baton_active_runs and baton_oldest_active_run_age_seconds show a run that has not ended, and its age")
    func oldestActiveRun() async throws {
        let stack = try await BatonStack.start(label: "run-age", environment: ["RUNS_AGE_INTERVAL_MS": "300"])
        try await stack.startExampleJobs(waitSeconds: 60, jobs: ["new-user-welcome"])
        let before = try await stack.get(port: stack.taskResultsPort, "/metrics").body
        #expect(sample(before, "baton_active_runs") == 0, "\(before)")
        let eventId = "evt_age_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(eventId)","name":"user.created","payload":{"id":"a","email":"a@example.com","name":"A"}}"#).status == 202)
        // The run waits 60 s: it is active, and its age grows past 2 s.
        let age = try await eventually("the waiting run to be 2 s old in the metrics", deadline: .seconds(30)) { () -> Double? in
            let body = try await stack.get(port: stack.taskResultsPort, "/metrics").body
            guard sample(body, "baton_active_runs") == 1, let age = sample(body, "baton_oldest_active_run_age_seconds"), age >= 2 else { return nil }
            return age
        }
        #expect(age < 30)
        let run = try await stack.run(Identifiers.runID(eventID: eventId, jobSlug: "new-user-welcome"))
        #expect(run?.status.isTerminal == false)
        try await stack.stop()
    }

    @Test("baton_runs_waiting_for_slot and baton_concurrency_slots_held show a limited job's queue: 6 long runs with limit 3 are 3 waiting and 3 held")
    func concurrencyGauges() async throws {
        let stack = try await BatonStack.start(label: "slot-gauges", environment: ["RUNS_AGE_INTERVAL_MS": "300"])
        try await stack.startExampleJobs(jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<6 {
            #expect(try await stack.sendEvent(#"{"id":"evt_gauge_\#(suffix)_\#(n)","name":"work.limited","payload":{"n":\#(n),"workMs":8000}}"#).status == 202)
        }
        _ = try await eventually("3 runs waiting for a slot and 3 slots held in the metrics", deadline: .seconds(30)) { () -> Bool? in
            let body = try await stack.get(port: stack.taskResultsPort, "/metrics").body
            return sample(body, "baton_runs_waiting_for_slot") == 3 && sample(body, "baton_concurrency_slots_held") == 3 ? true : nil
        }
        try await stack.stop()
    }

    @Test("GET /metrics on each process counts what one event did: accepted, runs started, run events, timers, slices, acked sends")
    func metricsFollowARun() async throws {
        let stack = try await BatonStack.start(label: "metrics")
        let jobsPort = try freeLoopbackPort()
        try await stack.startExampleJobs(waitSeconds: 1, environment: ["HTTP_PORT": "\(jobsPort)"])
        let eventId = "evt_metrics_\(UUID().uuidString.prefix(6))"
        let sent = try await stack.sendEvent(#"{"id":"\#(eventId)","name":"user.created","payload":{"id":"u9","email":"u9@example.com","name":"U9"}}"#)
        #expect(sent.status == 202, "\(sent.body)")
        // The event fans out to new-user-welcome (task, wait, task) and user-audit.
        for job in ["new-user-welcome", "user-audit"] {
            #expect(try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: job)).status == .completed)
        }

        let ingester = try await stack.get(port: stack.ingesterPort, "/metrics")
        #expect(ingester.status == 200)
        #expect(sample(ingester.body, "baton_events_accepted_total") == 1, "\(ingester.body)")
        #expect(ingester.body.contains("hb_requests"), "HTTP request metrics are exported")
        let dispatcher = try await stack.get(port: stack.dispatcherPort, "/metrics").body
        #expect(sample(dispatcher, #"baton_runs_started_total{job="new-user-welcome"}"#) == 1, "\(dispatcher)")
        #expect(sample(dispatcher, #"baton_runs_started_total{job="user-audit"}"#) == 1)
        #expect((sample(dispatcher, "baton_kafka_produce_duration_seconds_count") ?? 0) >= 4, "run records and commands are acked sends")
        // The run events arrive just before the runs API shows them finished: wait for the counter.
        let taskResults = try await eventually("task-results to count both runs completed", deadline: .seconds(10)) { () -> String? in
            let body = try await stack.get(port: stack.taskResultsPort, "/metrics").body
            return sample(body, #"baton_run_events_total{type="runCompleted"}"#) == 2 ? body : nil
        }
        #expect(sample(taskResults, #"baton_run_events_total{type="runCreated"}"#) == 2)
        #expect(sample(taskResults, "baton_timers_fired_total") == 1)
        let jobs = try await stack.get(port: jobsPort, "/metrics").body
        #expect(sample(jobs, #"baton_slices_total{job="new-user-welcome",ending="yielded"}"#) == 1, "\(jobs)")
        #expect(sample(jobs, #"baton_slices_total{job="new-user-welcome",ending="runCompleted"}"#) == 1)
        // Every slice is timed: as many durations as slices, whatever they ended with (a command
        // delivered again after a rebalance on a busy machine runs one more, fenced, slice).
        let slices = jobs.split(separator: "\n").filter { $0.hasPrefix(#"baton_slices_total{job="new-user-welcome","#) }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        #expect(slices >= 2 && sample(jobs, #"baton_slice_duration_seconds_count{job="new-user-welcome"}"#) == slices, "\(jobs)")
        try await stack.stop()
    }
}
