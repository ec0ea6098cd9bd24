import Foundation

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
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
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
        kill(process.processIdentifier, SIGKILL)
        _ = try await eventually("\(name) to exit after SIGKILL", deadline: .seconds(10)) { process.isRunning ? nil : true }
    }

    /// Sends SIGTERM and waits (up to `deadline`) for the exit status.
    @discardableResult
    public func terminate(deadline: Duration = .seconds(20)) async throws -> Int32 {
        process.terminate()
        return try await eventually("\(name) to exit after SIGTERM", deadline: deadline) {
            process.isRunning ? nil : process.terminationStatus
        }
    }

    /// The captured output so far.
    public func output() -> String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func isListening(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
