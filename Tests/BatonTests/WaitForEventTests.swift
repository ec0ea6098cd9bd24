@testable import Baton
import BatonProtocol
import Foundation
import Synchronization
import Testing

@Suite("io.waitForEvent (JobHarness)")
struct WaitForEventTests {
    struct Payload: Codable, Sendable { var id: String }
    struct Approval: Codable, Sendable { var id: String; var approver: String }

    func job(timeout: Duration = .seconds(60)) -> Job<Payload, String> {
        Job(id: "approve", name: "Approve", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            do {
                let event = try await io.waitForEvent("approval", name: "approved", filter: ["id": [.string(payload.id)]], timeout: timeout)
                return "approved by \(try event.payload(as: Approval.self).approver)"
            } catch let timedOut as EventWaitTimedOut {
                return "timed out: \(timedOut.name)"
            }
        }
    }

    @Test("the run pauses with a registration for the dispatcher (name, filter, since and timeout), then returns the event it got; replays return the same event")
    func waits() async throws {
        let requests = RequestLog()
        let result = try await JobHarness(job: job(), payload: ["id": "x1"], eventWaits: { request in
            requests.add(request)
            return EventEnvelope(id: "evt_ok", name: "approved", payload: ["id": "x1", "approver": "ada"])
        }).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: "approved by ada")))
        #expect(result.slices == 2)
        let request = try #require(requests.all.first)
        #expect(requests.all.count == 1 && request.name == "approved" && request.filter?.definition == ["id": ["x1"]])
        #expect(request.timeoutAt.timeIntervalSince(request.since) == 60)
        #expect(result.events.contains { if case .eventWaitRequested(let wait) = $0 { wait.key == "approval" && wait.timeoutAt == request.timeoutAt } else { false } })
    }

    @Test("no event before the timeout: a typed EventWaitTimedOut the job can catch")
    func timeout() async throws {
        let result = try await JobHarness(job: job(), payload: ["id": "x1"], eventWaits: { _ in nil }).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: "timed out: approved")))
    }

    @Test("timeouts outside 10 s to 365 days and invalid filters are clear errors before anything is recorded")
    func bounds() async throws {
        for timeout in [Duration.seconds(9), .seconds(366 * 86_400)] {
            let result = try await JobHarness(job: job(timeout: timeout), payload: ["id": "x"], eventWaits: { _ in nil }).runToCompletion()
            guard case .runFailed(let failure) = result.outcome else { Issue.record("\(result.outcome)"); continue }
            #expect(failure.error.contains("outside 10 s to 365 days"), "\(failure.error)")
        }
        let badFilter = Job(id: "bad", name: "Bad", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { _, io, _ in
            _ = try await io.waitForEvent("w", name: "n", filter: ["id": "not an array"])
            return "?"
        }
        let result = try await JobHarness(job: badFilter, payload: ["id": "x"], eventWaits: { _ in nil }).runToCompletion()
        guard case .runFailed(let failure) = result.outcome else { Issue.record("\(result.outcome)"); return }
        #expect(failure.error.contains("wait for event 'w'"), "\(failure.error)")
    }
}

/// The wait requests a harness was given.
final class RequestLog: Sendable {
    private let requests = Mutex<[EventWaitRequest]>([])
    func add(_ request: EventWaitRequest) { requests.withLock { $0.append(request) } }
    var all: [EventWaitRequest] { requests.withLock { $0 } }
}

@Suite("Version pinning: consumer groups")
struct VersionPinningUnitTests {
    @Test("pinned workers form one group per job version; with runsOtherVersions, one group per job")
    func groups() throws {
        let v1 = try JobRegistration(id: "greeter", name: "G", version: "1.0.0", trigger: .event(name: "g"))
        let v2 = try JobRegistration(id: "greeter", name: "G", version: "2.0.0", trigger: .event(name: "g"))
        let topics = Topics(prefix: "baton")
        #expect(JobWorker.groupID(v1, topics: topics, runsOtherVersions: false) == "baton.worker.greeter@1.0.0")
        #expect(JobWorker.groupID(v1, topics: topics, runsOtherVersions: false) != JobWorker.groupID(v2, topics: topics, runsOtherVersions: false))
        #expect(JobWorker.groupID(v1, topics: topics, runsOtherVersions: true) == JobWorker.groupID(v2, topics: topics, runsOtherVersions: true))
    }
}
