import BatonProtocol
import BatonTesting
import Foundation
import NIOHTTP1
import Testing

@Suite("io.waitForRequest over a real broker", .tags(.integration))
struct WaitForRequestIntegrationTests {
    /// The callback URL run `runId` handed out (from the outbox), once it did.
    private func callback(_ stack: BatonStack, _ runId: String) async throws -> URL {
        try await eventually("run \(runId) to hand out its callback URL", deadline: .seconds(60), every: .milliseconds(100)) { () -> URL? in
            stack.outboxLines().first { $0.contains("run=\(runId) callback=") }
                .flatMap { $0.components(separatedBy: "callback=").last }.flatMap(URL.init(string:))
        }
    }

    private func post(_ stack: BatonStack, _ url: URL, _ body: String) async throws -> (status: UInt, body: String) {
        try await stack.request(port: url.port ?? 80, url.path, method: .POST, body: body)
    }

    @Test("the first POST to the callback URL resumes the run with its body (200); a second gets 409; after a timeout 410; a made-up token 404; a URL is handed out once")
    func callbacks() async throws {
        let stack = try await BatonStack.start(label: "wait-request")
        try await stack.startExampleJobs(jobs: ["transcode-video"])
        let suffix = UUID().uuidString.prefix(6)
        let sent = "evt_video_\(suffix)", late = "evt_video_late_\(suffix)"
        #expect(try await stack.sendEvent(#"{"id":"\#(sent)","name":"video.uploaded","payload":{"videoId":"v1"}}"#).status == 202)
        #expect(try await stack.sendEvent(#"{"id":"\#(late)","name":"video.uploaded","payload":{"videoId":"v2","timeoutSeconds":10}}"#).status == 202)
        let runId = Identifiers.runID(eventID: sent, jobSlug: "transcode-video")
        let lateRun = Identifiers.runID(eventID: late, jobSlug: "transcode-video")
        let url = try await callback(stack, runId)
        #expect(url.port == stack.taskResultsPort && url.path.hasPrefix("/api/v1/callbacks/"), "\(url)")
        _ = try await eventually("the run to wait", deadline: .seconds(30)) { try await stack.run(runId)?.status == .waiting ? true : nil }

        let first = try await post(stack, url, #"{"status":"ready"}"#)
        #expect(first.status == 200 && first.body.contains(runId), "\(first.status) \(first.body)")
        let second = try await post(stack, url, #"{"status":"again"}"#)
        #expect(second.status == 409 && second.body.contains("already_received"), "\(second.status) \(second.body)")
        let run = try await stack.finishedRun(runId, deadline: .seconds(60))
        #expect(run.status == .completed && run.output == .string("video v1: ready"), "\(String(describing: run.output))")
        #expect(stack.outboxLines().filter { $0.contains("run=\(runId) callback=") }.count == 1, "the callback ran once")

        let bogus = url.deletingLastPathComponent().appendingPathComponent(String(repeating: "ab", count: 32))
        #expect(try await post(stack, bogus, "{}").status == 404)
        #expect(try await post(stack, url.deletingLastPathComponent().appendingPathComponent("short"), "{}").status == 404)

        let lateURL = try await callback(stack, lateRun)
        let timedOut = try await stack.finishedRun(lateRun, deadline: .seconds(60))
        #expect(timedOut.output == .string("video v2: no callback"), "\(String(describing: timedOut.output))")
        let afterTimeout = try await post(stack, lateURL, #"{"status":"too late"}"#)
        #expect(afterTimeout.status == 410 && afterTimeout.body.contains("expired"), "\(afterTimeout.status) \(afterTimeout.body)")
        let malformed = try await post(stack, lateURL, "not json")
        #expect(malformed.status == 400, "a body that is not JSON: \(malformed.status) \(malformed.body)")
        try await stack.stop()
    }
}
