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

@Suite("io.waitForRequest (JobHarness) and its rules")
struct WaitForRequestTests {
    struct Payload: Codable, Sendable { var id: String }

    func job(_ urls: URLLog) -> Job<Payload, String> {
        Job(id: "callback", name: "Callback", version: "1.0.0", trigger: .event(name: "go", payload: Payload.self)) { payload, io, _ in
            do {
                let request = try await io.waitForRequest("done", timeout: .seconds(60)) { url in urls.add(url) }
                return "\(payload.id): \(request.body)"
            } catch is RequestWaitTimedOut {
                return "\(payload.id): timed out"
            }
        }
    }

    @Test("the callback gets one URL under the callback base, once, however often the run replays; the run returns the POSTed body; no request: a typed timeout")
    func waits() async throws {
        let urls = URLLog()
        let result = try await JobHarness(job: job(urls), payload: ["id": "x"], requests: { key in key == "done" ? ["status": "ok"] : nil }).runToCompletion()
        #expect(result.outcome == .runCompleted(.init(output: .string("x: \(JSONValue.object(["status": "ok"]))"))))
        #expect(urls.all.count == 1 && urls.all[0].hasPrefix("https://baton.invalid/api/v1/callbacks/"), "\(urls.all)")
        let token = try #require(urls.all.first?.split(separator: "/").last.map(String.init))
        #expect(CallbackToken.isWellFormed(token))
        let requested = result.events.compactMap { if case .requestWaitRequested(let wait) = $0 { wait } else { nil } }
        // Recorded before the URL is handed out and again after the callback (the run ends its slice WAITING).
        #expect(requested.count == 2 && requested.allSatisfy { $0.tokenHash == CallbackToken.hash(token) }, "only the hash travels: \(requested.count)")
        let timedOut = try await JobHarness(job: job(URLLog()), payload: ["id": "y"]).runToCompletion()
        #expect(timedOut.outcome == .runCompleted(.init(output: "y: timed out")))
    }
}

/// The callback URLs a job handed out.
final class URLLog: Sendable {
    private let urls = Mutex<[String]>([])
    func add(_ url: String) { urls.withLock { $0.append(url) } }
    var all: [String] { urls.withLock { $0 } }
}
