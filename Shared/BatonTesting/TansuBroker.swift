import Foundation

/// A real Tansu broker on a free loopback port, for tests. Memory storage: topics vanish on stop.
public final class TansuBroker: Sendable {
    public let port: Int
    public let process: ChildProcess

    /// `host:port` for `bootstrap.servers`.
    public var bootstrapServers: String { "127.0.0.1:\(port)" }

    private init(port: Int, process: ChildProcess) {
        self.port = port
        self.process = process
    }

    /// Starts Tansu (on `port`, or a free one) and waits until it accepts connections.
    public static func start(logDirectory: URL, port: Int? = nil) async throws -> TansuBroker {
        let binary = TestEnvironment.tansu
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw DeadlineExceeded(what: "Tansu at \(binary.path) (run deploy/local/setup first)", deadline: .zero)
        }
        let port = try port ?? freeLoopbackPort()
        let process = try ChildProcess(
            name: "tansu", executable: binary,
            arguments: ["broker", "--listener-url", "tcp://127.0.0.1:\(port)",
                        "--advertised-listener-url", "tcp://127.0.0.1:\(port)",
                        "--storage-engine", "memory://tansu/"],
            logDirectory: logDirectory)
        _ = try await eventually("Tansu to listen on \(port)", deadline: .seconds(20)) { isListening(port: port) ? true : nil }
        return TansuBroker(port: port, process: process)
    }

    /// Stops the broker (SIGKILL: Tansu keeps nothing on disk here, and SIGTERM takes ~2 s).
    public func stop() async throws {
        guard process.isRunning else { return }
        try await process.kill9()
    }
}
