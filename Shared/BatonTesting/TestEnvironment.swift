import Foundation

/// Where tests find the things `deploy/local/setup` provisions and `swift build` produces.
public enum TestEnvironment {
    /// The repository root (found from this file's location).
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// The Tansu binary: `$BATON_TANSU`, else `.local/bin/tansu`.
    public static var tansu: URL {
        if let path = ProcessInfo.processInfo.environment["BATON_TANSU"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return repositoryRoot.appendingPathComponent(".local/bin/tansu")
    }

    /// The folder holding the built executables: `$BATON_BIN_DIR`, else the test bundle's folder.
    public static var binDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["BATON_BIN_DIR"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// A built executable of this package, e.g. `baton-ingester`.
    public static func executable(_ name: String) -> URL { binDirectory.appendingPathComponent(name) }

    /// A new empty temporary folder.
    public static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("baton-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
