import Baton
import BatonProtocol
import Foundation

/// The payload of `transcode-video` (event `video.uploaded`).
struct Upload: Codable, Sendable {
    var videoId: String
    /// How long to wait for the transcoder's callback (10 s or more; default 1 hour).
    var timeoutSeconds: Int?
}

/// What the (pretend) transcoder POSTs to the callback URL.
struct TranscodeDone: Codable, Sendable {
    var status: String
}

/// Waits for a request to a callback URL (`io.waitForRequest`): it "submits" the video by
/// writing the URL to the outbox, where a transcoder (a test) finds it and POSTs the result.
func transcodeVideoJob(outbox: URL) -> Job<Upload, String> {
    Job(id: "transcode-video", name: "Transcode video", version: "1.0.0",
        trigger: .event(name: "video.uploaded", payload: Upload.self)) { upload, io, ctx in
        do {
            let request = try await io.waitForRequest("transcoded", timeout: .seconds(upload.timeoutSeconds ?? 3600)) { url in
                try appendLine("transcode \(upload.videoId) run=\(ctx.runId) callback=\(url)", to: outbox)
            }
            let done = try request.body(as: TranscodeDone.self)
            return "video \(upload.videoId): \(done.status)"
        } catch is RequestWaitTimedOut {
            return "video \(upload.videoId): no callback"
        }
    }
}
