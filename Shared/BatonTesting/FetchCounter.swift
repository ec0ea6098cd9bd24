import Foundation
import Hummingbird
import Synchronization

/// A loopback HTTP server that records the requests of each run: background fetches of chaos
/// runs call `GET /probe?run=<run id>`, and the chaos harness counts, from outside the task-result
/// service, how often and when each run's fetch was performed.
public final class FetchCounter: Sendable {
    /// When each run's requests came, shared with the request handler.
    private final class Counts: Sendable {
        let value = Mutex<[String: [ContinuousClock.Instant]]>([:])
    }

    public let port: Int
    private let counts: Counts
    private let server: Task<Void, any Error>

    private init(port: Int, counts: Counts, server: Task<Void, any Error>) {
        self.port = port
        self.counts = counts
        self.server = server
    }

    /// The URL background fetches call (the run id is added as `?run=`).
    public var url: String { "http://127.0.0.1:\(port)/probe" }

    /// Requests seen per run id.
    public var requests: [String: Int] { counts.value.withLock { $0.mapValues(\.count) } }

    /// When the requests of each run came, in order.
    public var requestTimes: [String: [ContinuousClock.Instant]] { counts.value.withLock { $0 } }

    /// Starts the server on a free loopback port; returns once it listens.
    public static func start() async throws -> FetchCounter {
        let counts = Counts()
        let router = Router()
        router.get("/probe") { request, _ -> String in
            let run = request.uri.queryParameters.get("run") ?? "?"
            counts.value.withLock { $0[run, default: []].append(.now) }
            return "probed"
        }
        let port = try freeLoopbackPort()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        let counter = FetchCounter(port: port, counts: counts, server: server)
        _ = try await eventually("the fetch counter to listen on \(port)", deadline: .seconds(30)) { () -> Bool? in
            isListening(port: port) ? true : nil
        }
        return counter
    }

    /// Stops the server.
    public func stop() async {
        server.cancel()
        _ = try? await server.value
    }
}
