import Baton
import Foundation

/// The payload of `fanout.start`.
struct FanOutRequest: Codable, Sendable {
    /// How many `steps.start` events to send.
    var count: Int
    /// Hold them this many seconds before they start runs.
    var delaySeconds: Double?
}

/// Sends `count` `steps.start` events from inside a run (each starts a `many-steps` run of 2
/// steps); returns their ids. For tests of `io.sendEvent`.
func fanOutJob() -> Job<FanOutRequest, [String]> {
    Job(id: "fan-out", name: "Fan out", version: "1.0.0", trigger: .event(name: "fanout.start", payload: FanOutRequest.self)) { request, io, _ in
        var ids: [String] = []
        for index in 0..<request.count {
            ids.append(try await io.sendEvent("send \(index)", name: "steps.start", payload: StepsRequest(steps: 2, stepMilliseconds: 1),
                                              deliverAfter: request.delaySeconds.map { .milliseconds(Int($0 * 1000)) }))
        }
        return ids
    }
}
