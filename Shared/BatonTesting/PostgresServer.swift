import Foundation
import Synchronization

/// A real PostgreSQL server for tests: `initdb` into a temporary folder and `postgres` on a free
/// loopback port, as the `postgres` user when the tests run as root (PostgreSQL refuses root).
/// Binaries: `BATON_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else the `PATH`
/// (`deploy/local/setup` installs them from apt).
public final class PostgresServer: Sendable {
    public let port: Int
    public let directory: URL
    private let current: Mutex<ChildProcess>
    /// The running server process.
    var process: ChildProcess { current.withLock { $0 } }
    let binaries: URL
    let logDirectory: URL

    /// The superuser tests connect as (trust authentication on loopback).
    public static let user = "baton"

    /// `postgres://baton@127.0.0.1:<port>/<database>`.
    public func url(database: String) -> String { "postgres://\(Self.user)@127.0.0.1:\(port)/\(database)" }

    private init(port: Int, directory: URL, process: ChildProcess, binaries: URL, logDirectory: URL) {
        self.port = port
        self.directory = directory
        self.current = Mutex(process)
        self.binaries = binaries
        self.logDirectory = logDirectory
    }

    /// The folder holding `initdb` and `postgres`, or `nil` when PostgreSQL is not installed.
    public static var binaryDirectory: URL? {
        let fileManager = FileManager.default
        if let configured = ProcessInfo.processInfo.environment["BATON_PG_BIN"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        for version in versions where fileManager.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return URL(fileURLWithPath: "\(root)/\(version)/bin")
        }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        where fileManager.isExecutableFile(atPath: "\(directory)/initdb") {
            return URL(fileURLWithPath: String(directory))
        }
        return nil
    }

    /// Runs `tool` (from the binaries folder) as the server's user; waits for it to exit 0.
    private static func run(_ tool: String, _ arguments: [String], binaries: URL, logDirectory: URL) async throws {
        let process = try launch(tool, arguments, binaries: binaries, logDirectory: logDirectory)
        let status = try await eventually("\(tool) to finish", deadline: .seconds(120)) { process.isRunning ? nil : process.terminationStatus }
        guard status == 0 else {
            throw ProcessExited(name: tool, status: status, outputTail: String(process.output().suffix(4_000)))
        }
    }

    private static func launch(_ tool: String, _ arguments: [String], binaries: URL, logDirectory: URL) throws -> ChildProcess {
        let executable = binaries.appendingPathComponent(tool)
        if getuid() == 0 {
            // setpriv execs the tool in place (no intermediate process), so signals reach it.
            return try ChildProcess(name: tool, executable: URL(fileURLWithPath: "/usr/bin/setpriv"),
                                    arguments: ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", executable.path] + arguments,
                                    logDirectory: logDirectory)
        }
        return try ChildProcess(name: tool, executable: executable, arguments: arguments, logDirectory: logDirectory)
    }

    /// Creates a cluster and starts the server; returns once it accepts connections.
    public static func start(logDirectory: URL) async throws -> PostgresServer {
        guard let binaries = binaryDirectory else {
            throw DeadlineExceeded(what: "PostgreSQL's initdb (run deploy/local/setup, or set BATON_PG_BIN)", deadline: .zero)
        }
        let directory = try TestEnvironment.temporaryDirectory("postgres")
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        if getuid() == 0 {
            for url in [directory, data] {
                try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: url.path)
            }
        }
        try await run("initdb", ["-D", data.path, "-U", user, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                      binaries: binaries, logDirectory: logDirectory)
        let port = try freeLoopbackPort()
        let process = try await serve(directory: directory, port: port, binaries: binaries, logDirectory: logDirectory)
        return PostgresServer(port: port, directory: directory, process: process, binaries: binaries, logDirectory: logDirectory)
    }

    /// Starts `postgres` on the cluster in `directory`; returns once it accepts connections.
    private static func serve(directory: URL, port: Int, binaries: URL, logDirectory: URL) async throws -> ChildProcess {
        let process = try launch("postgres", ["-D", directory.appendingPathComponent("data").path, "-p", "\(port)", "-k", directory.path,
                                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                              "-c", "full_page_writes=off", "-c", "max_connections=200"],
                                 binaries: binaries, logDirectory: logDirectory)
        _ = try await eventually("PostgreSQL to listen on \(port)", deadline: .seconds(60)) { () -> Bool? in
            try process.requireRunning()
            return isListening(port: port) ? true : nil
        }
        return process
    }

    /// Restarts the server as an operator would: a fast shutdown (SIGINT: every session is cut,
    /// in-flight transactions roll back), then the same cluster on the same port again.
    /// Returns once it accepts connections again.
    public func restart() async throws {
        let old = process
        kill(old.pid, SIGINT)
        _ = try await eventually("PostgreSQL to shut down", deadline: .seconds(30)) { () -> Bool? in old.isRunning ? nil : true }
        let next = try await Self.serve(directory: directory, port: port, binaries: binaries, logDirectory: logDirectory)
        current.withLock { $0 = next }
    }

    private static let sharedServer = Mutex<Task<PostgresServer, any Error>?>(nil)
    private static let sharedPID = Atomic<Int32>(0)

    /// One server for the whole test process, started on first use and killed when the
    /// process exits; each test takes a database of its own (``createDatabase(_:)``).
    public static func shared() async throws -> PostgresServer {
        let task = sharedServer.withLock { task in
            if let task { return task }
            let started = Task { () throws -> PostgresServer in
                let server = try await start(logDirectory: try TestEnvironment.temporaryDirectory("postgres-logs"))
                sharedPID.store(server.process.pid, ordering: .relaxed)
                atexit {
                    let pid = PostgresServer.sharedPID.load(ordering: .relaxed)
                    if pid > 0 { kill(pid, SIGKILL) }
                }
                return server
            }
            task = started
            return started
        }
        return try await task.value
    }

    /// A new empty database on the shared server; returns its URL. Databases are created one
    /// at a time: concurrent `CREATE DATABASE`s copying `template1` fail ("being accessed by
    /// other users").
    public static func freshDatabase() async throws -> String {
        let server = try await shared()
        let name = "t_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try await DatabaseCreation.shared.run { try await server.createDatabase(name) }
        return server.url(database: name)
    }

    /// Creates database `name` (empty).
    /// A server that has just started may still refuse connections ("the database system is
    /// starting up") although it listens: tried again, for up to 10 s.
    public func createDatabase(_ name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                try await Self.run("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, name], binaries: binaries, logDirectory: logDirectory)
                return
            } catch where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Stops the server at once (SIGKILL: its data is throwaway).
    public func stop() async throws {
        guard process.isRunning else { return }
        try await process.kill9()
    }
}

/// Runs database creations one at a time, in the order they were asked for.
actor DatabaseCreation {
    static let shared = DatabaseCreation()
    private var tail: Task<Void, Never>?

    func run(_ body: @escaping @Sendable () async throws -> Void) async throws {
        let previous = tail
        let next = Task { () async throws -> Void in
            await previous?.value
            try await body()
        }
        tail = Task { _ = try? await next.value }
        try await next.value
    }
}
