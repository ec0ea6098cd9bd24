import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("Trigger flow control (rateLimit, throttle) over a real broker", .tags(.integration))
struct FlowControlIntegrationTests {
    private func runs(of slug: String, _ stack: BatonStack) async throws -> [RunDetails] {
        try BatonJSON.decoder.decode(RunListResponse.self, from: Data(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?job=\(slug)&limit=100").body.utf8)).runs
    }

    @Test("rateLimit 3 a minute per user: 6 events of one user and 2 of another start 3 and 2 runs; the rest are dropped once the dispatcher handled them")
    func rateLimit() async throws {
        let stack = try await BatonStack.start(label: "rate-limit")
        try await stack.startExampleJobs(jobs: ["rate-limited-ping"])
        let suffix = UUID().uuidString.prefix(6)
        var ids: [String] = []
        for (user, count) in [("a", 6), ("b", 2)] {
            for n in 0..<count {
                let id = "evt_limited_\(suffix)_\(user)\(n)"
                ids.append(id)
                #expect(try await stack.sendEvent(#"{"id":"\#(id)","name":"ping.limited","payload":{"user":"\#(user)-\#(suffix)","n":\#(n)}}"#).status == 202)
            }
        }
        _ = try await eventually("the dispatcher to handle all 8 events", deadline: .seconds(60)) { () -> Bool? in
            let list = try BatonJSON.decoder.decode(EventListResponse.self, from: Data(try await stack.get(port: stack.dispatcherPort, "/api/v1/events?limit=100").body.utf8))
            return ids.allSatisfy { id in list.events.contains { $0.id == id && $0.dispatched } } ? true : nil
        }
        let started = try await eventually("5 runs to complete", deadline: .seconds(60), every: .milliseconds(200)) { () -> [RunDetails]? in
            let runs = try await runs(of: "rate-limited-ping", stack)
            return runs.count >= 5 && runs.allSatisfy({ $0.status == .completed }) ? runs : nil
        }
        let byUser = Dictionary(grouping: started) { run -> String in
            guard case .string(let output)? = run.output else { return "?" }
            return output.contains("pinged a-") ? "a" : "b"
        }
        #expect(started.count == 5 && byUser["a"]?.count == 3 && byUser["b"]?.count == 2, "\(started.map { String(describing: $0.output) })")
        try await stack.stop()
    }

    @Test("debounce 10 s per user: a burst of 5 events of one user starts one run, with the last payload; another user's event its own; a later event after the window another")
    func debounce() async throws {
        let stack = try await BatonStack.start(label: "debounce")
        try await stack.startExampleJobs(jobs: ["debounced-ping"])
        let suffix = UUID().uuidString.prefix(6)
        // 300 ms apart, well inside the 10 s window even when a loaded machine stalls the sender
        // for seconds (a 3 s window was not: a CI run saw a 4 s gap between two sends).
        for n in 0..<5 {
            #expect(try await stack.sendEvent(#"{"id":"evt_debounced_\#(suffix)_a\#(n)","name":"ping.debounced","payload":{"user":"a-\#(suffix)","n":\#(n)}}"#).status == 202)
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(try await stack.sendEvent(#"{"id":"evt_debounced_\#(suffix)_b0","name":"ping.debounced","payload":{"user":"b-\#(suffix)","n":0}}"#).status == 202)
        let first = try await eventually("the burst's run and the other user's to complete", deadline: .seconds(90), every: .milliseconds(200)) { () -> [RunDetails]? in
            let runs = try await runs(of: "debounced-ping", stack)
            return runs.count >= 2 && runs.allSatisfy({ $0.status == .completed }) ? runs : nil
        }
        // The earlier events' held copies were due before the last one's, which started the
        // run: they were all delivered (in order of their time) and replaced, none ran.
        #expect(try await runs(of: "debounced-ping", stack).count == 2, "one run per user for the burst")
        #expect(Set(first.compactMap { run -> String? in if case .string(let text)? = run.output { text } else { nil } })
                    == ["pinged a-\(suffix) 4", "pinged b-\(suffix) 0"], "the burst ran with its last payload")
        #expect(try await stack.sendEvent(#"{"id":"evt_debounced_\#(suffix)_a9","name":"ping.debounced","payload":{"user":"a-\#(suffix)","n":9}}"#).status == 202)
        _ = try await eventually("a later event's own run", deadline: .seconds(90), every: .milliseconds(200)) { () -> Bool? in
            try await runs(of: "debounced-ping", stack).contains { $0.output == .string("pinged a-\(suffix) 9") && $0.status == .completed } ? true : nil
        }
        try await stack.stop()
    }

    @Test("throttle 2 per 4 s per user: 6 events at once all run, never more than 2 started in any 4 s")
    func throttle() async throws {
        let stack = try await BatonStack.start(label: "throttle")
        try await stack.startExampleJobs(jobs: ["throttled-ping"])
        let suffix = UUID().uuidString.prefix(6)
        for n in 0..<6 {
            #expect(try await stack.sendEvent(#"{"id":"evt_throttled_\#(suffix)_\#(n)","name":"ping.throttled","payload":{"user":"t-\#(suffix)","n":\#(n)}}"#).status == 202)
        }
        let done = try await eventually("all 6 runs to complete", deadline: .seconds(90), every: .milliseconds(200)) { () -> [RunDetails]? in
            let runs = try await runs(of: "throttled-ping", stack)
            return runs.count == 6 && runs.allSatisfy({ $0.status == .completed }) ? runs : nil
        }
        // Counted from outside: the runs' creation times, in order.
        let created = done.map(\.createdAt).sorted()
        for index in 0..<(created.count - 2) {
            let gap = created[index + 2].timeIntervalSince(created[index])
            #expect(gap >= 3.75, "runs \(index) and \(index + 2) started \(gap) s apart: 3 in one 4 s window")
        }
        #expect(created.last!.timeIntervalSince(created.first!) >= 7.75, "6 runs at 2 per 4 s take at least 8 s")
        #expect(Set(stack.outboxLines().filter { $0.hasPrefix("throttled ping t-\(suffix)") }.map { $0.split(separator: " ")[3] }).count == 6, "every event ran")
        try await stack.stop()
    }
}
