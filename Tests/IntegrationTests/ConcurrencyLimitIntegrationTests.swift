import BatonProtocol
import BatonTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("Concurrency limits and keys over a real broker", .tags(.integration))
struct ConcurrencyLimitIntegrationTests {
    private func runs(of slug: String, status: RunStatus? = nil, _ stack: BatonStack) async throws -> [RunDetails] {
        let filter = status.map { "&status=\($0.rawValue)" } ?? ""
        return try BatonJSON.decoder.decode(RunListResponse.self, from: Data(try await stack.get(port: stack.taskResultsPort,
                                                                                                "/api/v1/runs?job=\(slug)&limit=100\(filter)").body.utf8)).runs
    }

    /// The runs of `slugs` once there are `count`, all completed.
    private func completed(_ count: Int, of slugs: [String], _ stack: BatonStack, _ what: String, deadline: Duration) async throws -> [RunDetails] {
        try await eventually(what, deadline: deadline, every: .milliseconds(500)) { () -> [RunDetails]? in
            var all: [RunDetails] = []
            for slug in slugs { all += try await runs(of: slug, stack) }
            return all.count == count && all.allSatisfy({ $0.status == .completed }) ? all : nil
        }
    }

    /// The most intervals open at one instant (an end at the same millisecond as a start closes first).
    private func peak(_ intervals: [(start: Date, end: Date)]) -> Int {
        var points: [(time: Date, change: Int)] = []
        for interval in intervals {
            points.append((interval.start, 1))
            points.append((interval.end, -1))
        }
        points.sort { left, right in left.time == right.time ? left.change < right.change : left.time < right.time }
        var open = 0, most = 0
        for (_, change) in points {
            open += change
            most = max(most, open)
        }
        return most
    }

    /// The executions of the runs' tasks named `keys`, from their recorded start and completion.
    private func intervals(_ runs: [RunDetails], keys: Set<String> = ["work", "after"]) -> [(start: Date, end: Date)] {
        var result: [(start: Date, end: Date)] = []
        for task in runs.flatMap(\.tasks) where keys.contains(task.key) {
            if let start = task.startedAt, let end = task.completedAt { result.append((start, end)) }
        }
        return result
    }

    private func send(_ stack: BatonStack, name: String, id: String, payload: String) async throws {
        let answer = try await stack.sendEvent(#"{"id":"\#(id)","name":"\#(name)","payload":\#(payload)}"#)
        #expect(answer.status == 202, "\(answer.body)")
    }

    @Test("concurrencyLimit 3: 50 runs never have more than 3 executing (task timestamps), wait QUEUED meanwhile, and all complete")
    func fiftyRunsLimitThree() async throws {
        let stack = try await BatonStack.start(label: "concurrency-50")
        try await stack.startExampleJobs(jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<50 {
            try await send(stack, name: "work.limited", id: "evt_lim_\(suffix)_\(n)", payload: #"{"n":\#(n),"workMs":150}"#)
        }
        // Visible while they wait for a slot: most of the 50 are QUEUED at some point.
        let queued = try await eventually("runs waiting QUEUED for a slot", deadline: .seconds(60), every: .milliseconds(100)) { () -> Int? in
            let queued = try await runs(of: "limited-work", status: .queued, stack).count
            return queued >= 20 ? queued : nil
        }
        let done = try await completed(50, of: ["limited-work"], stack, "all 50 runs to complete", deadline: .seconds(180))
        let executions = intervals(done)
        #expect(executions.count == 50)
        let most = peak(executions)
        #expect(most <= 3, "\(most) runs executed at once with a limit of 3")
        #expect(most >= 2, "the runs never ran side by side (peak \(most))")
        print("concurrency-50: \(queued) QUEUED seen at once; peak \(most) executing; first start to last end \(String(format: "%.1f", executions.map(\.end).max()!.timeIntervalSince(executions.map(\.start).min()!))) s")
        try await stack.stop()
    }

    @Test("a run that waits gives its slot back: 6 runs with limit 3 that each wait 4 s all do their first task before any run's wait ends")
    func waitingRunsReleaseSlots() async throws {
        let stack = try await BatonStack.start(label: "concurrency-wait")
        try await stack.startExampleJobs(jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<6 {
            try await send(stack, name: "work.limited", id: "evt_limw_\(suffix)_\(n)", payload: #"{"n":\#(n),"workMs":200,"pauseSeconds":4}"#)
        }
        let done = try await completed(6, of: ["limited-work"], stack, "all 6 runs to complete", deadline: .seconds(120))
        let firstAfter = try #require(done.flatMap(\.tasks).filter { $0.key == "after" }.compactMap(\.startedAt).min())
        let lastWork = try #require(done.flatMap(\.tasks).filter { $0.key == "work" }.compactMap(\.startedAt).max())
        // Holding their slots through the wait, runs 4 to 6 could only start after runs 1 to 3 ended.
        #expect(lastWork < firstAfter, "the last run started its work \(lastWork.timeIntervalSince(firstAfter)) s after the first wait ended")
        let most = peak(intervals(done))
        #expect(most <= 3, "\(most) runs executed at once with a limit of 3")
        try await stack.stop()
    }

    @Test("a job service SIGKILLed while its runs hold every slot leaks none: after a restart all 9 runs complete, never more than 3 at once")
    func killedJobServiceLeaksNoSlot() async throws {
        let stack = try await BatonStack.start(label: "concurrency-kill")
        let jobService = try await stack.startExampleJobs(jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<9 {
            try await send(stack, name: "work.limited", id: "evt_limk_\(suffix)_\(n)", payload: #"{"n":\#(n),"workMs":2000}"#)
        }
        _ = try await eventually("3 runs to hold the slots, in their work", deadline: .seconds(60), every: .milliseconds(100)) { () -> Bool? in
            let running = try await runs(of: "limited-work", stack).filter { run in run.tasks.contains { $0.key == "work" && $0.status == .running } }
            return running.count == 3 ? true : nil
        }
        _ = try await stack.restartJobService(jobService, with: .kill)
        let done = try await completed(9, of: ["limited-work"], stack, "all 9 runs to complete after the SIGKILL", deadline: .seconds(180))
        let most = peak(intervals(done))
        #expect(most <= 3, "\(most) runs executed at once with a limit of 3")
        try await stack.stop()
    }

    @Test("SIGKILL of the task-result service and the dispatcher while slots change hands: after the restarts all 12 runs (that each wait once) complete, never more than 3 at once")
    func killedTaskResultsLeaksNoSlot() async throws {
        let stack = try await BatonStack.start(label: "concurrency-kill-tr")
        try await stack.startExampleJobs(jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<12 {
            try await send(stack, name: "work.limited", id: "evt_limtr_\(suffix)_\(n)", payload: #"{"n":\#(n),"workMs":400,"pauseSeconds":1}"#)
        }
        _ = try await eventually("runs to wait, others to hold slots", deadline: .seconds(60), every: .milliseconds(100)) { () -> Bool? in
            let runs = try await runs(of: "limited-work", stack)
            return runs.contains { $0.status == .waiting } && runs.contains { $0.status == .executing } ? true : nil
        }
        _ = try await stack.restart(.taskResults)
        _ = try await stack.restart(.dispatcher)
        let done = try await completed(12, of: ["limited-work"], stack, "all 12 runs to complete after the SIGKILLs", deadline: .seconds(180))
        let most = peak(intervals(done))
        #expect(most <= 3, "\(most) tasks executed at once with a limit of 3")
        try await stack.stop()
    }

    @Test("on one PostgreSQL with two task-result instances and two job services: 30 runs (that each wait once) never have more than 3 executing, and all complete")
    func severalInstances() async throws {
        let store = try await PostgresServer.freshDatabase()
        let settings = ["STORE_URL": store, "TASK_RESULTS_INSTANCE": "tr-0"]
        let stack = try await BatonStack.start(label: "concurrency-pg", roleEnvironment: [.taskResults: settings])
        let second = try await stack.startExtraTaskResults(name: "task-results-1", extra: ["TASK_RESULTS_INSTANCE": "tr-1"])
        try await stack.startExampleJobs(jobs: ["limited-work"])
        // The second job service asks the second task-result instance for its checkpoints.
        try await stack.startExampleJobs(environment: ["TASK_RESULTS_URL": "http://127.0.0.1:\(second.port)"], jobs: ["limited-work"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<30 {
            try await send(stack, name: "work.limited", id: "evt_limpg_\(suffix)_\(n)", payload: #"{"n":\#(n),"workMs":200,"pauseSeconds":1}"#)
        }
        let done = try await completed(30, of: ["limited-work"], stack, "all 30 runs to complete", deadline: .seconds(240))
        let executions = intervals(done)
        #expect(executions.count == 60)
        let most = peak(executions)
        #expect(most <= 3, "\(most) tasks executed at once with a limit of 3")
        #expect(most >= 2, "the runs never ran side by side (peak \(most))")
        print("concurrency-pg: peak \(most) executing over 2 task-result instances and 2 job services")
        try await stack.stop()
    }

    @Test("PUT /api/v1/jobs registers a concurrency limit and flow control (the dispatcher holds them); a bad limit, or flow control on a schedule, is refused with 422 and the field")
    func httpRegistration() async throws {
        let stack = try await BatonStack.start(label: "concurrency-http")
        let body = #"{"name":"Imports","version":"1.0.0","trigger":{"type":"event","eventName":"imports.run"},"concurrencyLimit":{"limit":2,"id":"imports","key":"account.id"},"flowControl":{"kind":"debounce","limit":1,"periodSeconds":5,"key":"account.id"}}"#
        let answer = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/imports", method: .PUT, body: body)
        #expect(answer.status == 200, "\(answer.body)")
        let job = try await eventually("the dispatcher to hold the registration", deadline: .seconds(30)) { () -> JobRegistration? in
            let job = try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/imports")
            return job.status == 200 ? try BatonJSON.decoder.decode(JobRegistration.self, from: Data(job.body.utf8)) : nil
        }
        #expect(job.concurrencyLimit == .shared("imports", limit: 2, key: "account.id"))
        #expect(job.flowControl == .debounce(.seconds(5), key: "account.id"))
        let scheduled = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/nightly", method: .PUT,
                                                body: #"{"name":"Nightly","version":"1.0.0","trigger":{"type":"interval","eventName":"baton.scheduled","intervalSeconds":60},"flowControl":{"kind":"throttle","limit":1,"periodSeconds":5}}"#)
        #expect(scheduled.status == 422 && scheduled.body.contains("$.flowControl"), "\(scheduled.status) \(scheduled.body)")
        let bad = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/imports", method: .PUT,
                                          body: #"{"name":"Imports","version":"1.0.0","trigger":{"type":"event","eventName":"imports.run"},"concurrencyLimit":{"limit":0}}"#)
        #expect(bad.status == 422 && bad.body.contains("$.concurrencyLimit.limit"), "\(bad.status) \(bad.body)")
        try await stack.stop()
    }

    @Test("a shared limit with a key: one run per user across per-user-sync and per-user-export, two users side by side")
    func sharedLimitPerKey() async throws {
        let stack = try await BatonStack.start(label: "concurrency-keys")
        try await stack.startExampleJobs(jobs: ["per-user-sync", "per-user-export"])
        let suffix = UUID().uuidString.prefix(6)
        for user in ["a", "b"] {
            for n in 0..<2 {
                try await send(stack, name: "user.sync", id: "evt_sync_\(suffix)_\(user)\(n)", payload: #"{"user":"\#(user)-\#(suffix)","n":\#(n),"workMs":400}"#)
                try await send(stack, name: "user.export", id: "evt_export_\(suffix)_\(user)\(n)", payload: #"{"user":"\#(user)-\#(suffix)","n":\#(n),"workMs":400}"#)
            }
        }
        let done = try await completed(8, of: ["per-user-sync", "per-user-export"], stack, "all 8 runs to complete", deadline: .seconds(120))
        // The user is the event id's last letter but the digit: evt_sync_<suffix>_a0.
        func user(_ run: RunDetails) -> String { String(run.event.id.dropLast().suffix(1)) }
        let byUser = Dictionary(grouping: done, by: user)
        #expect(Set(byUser.keys) == ["a", "b"])
        for (name, runs) in byUser {
            #expect(runs.count == 4)
            let most = peak(intervals(runs))
            #expect(most == 1, "user \(name): \(most) runs at once across both jobs with a shared limit of 1")
        }
        let most = peak(intervals(done))
        #expect(most == 2, "the two users' runs never ran side by side (peak \(most))")
        try await stack.stop()
    }
}
