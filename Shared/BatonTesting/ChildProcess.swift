import Foundation
import Synchronization

/// A child process started by a test, with its output captured in a log file.
///
/// `deinit` kills the process (SIGKILL), so a failing test never leaves children behind.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is a Foundation `Process` configured once in `init` and
    // afterwards only signalled (`terminate`, `kill`) and read (`isRunning`,
    // `terminationStatus`), which Foundation makes thread-safe.
    public let name: String
    public let logFile: URL
    private let process: Process

    /// Starts `executable` with `arguments` and `environment` added to the current environment.
    public init(name: String, executable: URL, arguments: [String] = [], environment: [String: String] = [:], logDirectory: URL) throws {
        self.name = name
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        self.logFile = logDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// The exit status (or terminating signal) once the process has exited.
    public var terminationStatus: Int32 { process.terminationStatus }

    /// Sends SIGKILL and waits until the process is gone.
    public func kill9() async throws {
        let pid = process.processIdentifier
        kill(pid, SIGKILL)
        // Dead once the kernel says so (a zombie waiting to be reaped counts): Foundation's own
        // bookkeeping of `isRunning` can lag under load.
        _ = try await eventually("\(name) to exit after SIGKILL", deadline: .seconds(30)) {
            !process.isRunning || Self.isDead(pid) ? true : nil
        }
    }

    /// Whether process `pid` is gone or a zombie, as /proc tells.
    static func isDead(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // "pid (name) S …": the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "Z"
    }

    /// Sends SIGTERM and waits (up to `deadline`) for the exit status.
    @discardableResult
    public func terminate(deadline: Duration = .seconds(20)) async throws -> Int32 {
        process.terminate()
        return try await eventually("\(name) to exit after SIGTERM", deadline: deadline) {
            process.isRunning ? nil : process.terminationStatus
        }
    }

    /// Throws ``ProcessExited`` (with the end of the output) when the process is no longer running.
    public func requireRunning() throws {
        guard !process.isRunning else { return }
        throw ProcessExited(name: name, status: process.terminationStatus, outputTail: String(output().suffix(4_000)))
    }

    /// The captured output so far.
    public func output() -> String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }
}

/// Hands out loopback ports for test processes, each at most once per test process.
///
/// Ports come from below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`),
/// so an outgoing connection (librdkafka opens many) can never take a port between the moment
/// it is handed out and the moment the child binds it, and two stacks started in parallel never
/// get the same port. Each candidate is also checked with a bind before it is handed out, so a
/// port held by an unrelated process is skipped.
private let portAllocator = Mutex<Int?>(nil)

private func ephemeralRangeStart() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
          let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first,
          let low = Int(first), low > 12_000 else { return 32_768 }
    return low
}

/// A free TCP port on 127.0.0.1 that no other caller in this process has been given.
public func freeLoopbackPort() throws -> Int {
    let upper = ephemeralRangeStart()
    let lower = 10_000
    for _ in lower..<upper {
        let candidate = portAllocator.withLock { next -> Int in
            // Start at a pid-derived offset so two test processes running at once rarely probe
            // the same ports; the bind check below settles the rest.
            let current = next ?? lower + Int(getpid()) % (upper - lower)
            next = current + 1 >= upper ? lower : current + 1
            return current
        }
        if reserveAcrossProcesses(port: candidate), canBind(port: candidate) { return candidate }
    }
    throw POSIXError(.EADDRINUSE)
}

/// Claims `port` for this process in a directory every Baton test process shares (a file made
/// with `O_EXCL`), so that two processes allocating at once (the test runner and a `baton dev`
/// it started, each with its own allocator) never hand out the same port before either binds
/// it. A claim older than 10 minutes is stale (its process bound the port long ago, or died).
private func reserveAcrossProcesses(port: Int) -> Bool {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-test-ports")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent("\(port)").path
    for _ in 0..<2 {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
        if fd >= 0 {
            close(fd)
            return true
        }
        guard errno == EEXIST, let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let modified = attributes[.modificationDate] as? Date, Date().timeIntervalSince(modified) > 600 else { return false }
        unlink(path)
    }
    return false
}

private func canBind(port: Int) -> Bool {
    withLoopbackSocket(port: port) { fd, address, length in bind(fd, address, length) == 0 }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func isListening(port: Int) -> Bool {
    withLoopbackSocket(port: port) { fd, address, length in connect(fd, address, length) == 0 }
}

/// Calls `body` with a new TCP socket and the address 127.0.0.1:`port`; closes the socket after.
private func withLoopbackSocket(port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
