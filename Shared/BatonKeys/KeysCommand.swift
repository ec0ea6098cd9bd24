import ArgumentParser
import BatonProtocol
import Foundation

/// `baton keys` (and `baton-keys`): creates, lists and revokes API keys in a keys file.
///
/// The file holds only SHA-256 hashes of the keys; a new key is printed once, on creation, and
/// cannot be shown again. Services read the file (`AUTH_KEYS_FILE`) when they start, and again
/// when it changes.
public struct KeysCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage Baton API keys (stored hashed in a keys file).",
        subcommands: [Create.self, List.self, Revoke.self])

    public init() {}

    public struct FileOption: ParsableArguments {
        public init() {}
        @Option(name: .long, help: "The keys file (created when missing).")
        var file: String = "keys.json"

        func read() throws -> APIKey.File {
            guard FileManager.default.fileExists(atPath: file) else { return APIKey.File(keys: []) }
            do {
                return try APIKey.File.decode(from: try Data(contentsOf: URL(fileURLWithPath: file)))
            } catch let error as BatonProtocol.ValidationError {
                throw ArgumentParser.ValidationError("keys file '\(file)': \(error)")
            }
        }

        /// Writes atomically, readable by the owner only.
        func write(_ keys: APIKey.File) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(keys).write(to: URL(fileURLWithPath: file), options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
    }

    public struct Create: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(abstract: "Create a key for a project and environment; prints the key once.")
        @OptionGroup var file: FileOption
        @Option(help: "The project slug.") var project: String
        @Option(help: "The environment slug (dev, prod, …).") var environment: String
        @Option(help: "A name for the key (default: generated).") var id: String?

        public func run() throws {
            do {
                _ = try Tenant(project: project, environment: environment)
            } catch {
                throw ArgumentParser.ValidationError("--\(error.path): \(error.message)")
            }
            var keys = try file.read()
            let name = id ?? "key_\(Identifiers.digest([project, environment, UUID().uuidString], length: 8))"
            guard !keys.keys.contains(where: { $0.id == name }) else {
                throw ArgumentParser.ValidationError("a key named '\(name)' exists already in '\(file.file)'")
            }
            let key = APIKey.generate(environment: environment)
            keys.keys.append(.init(id: name, project: project, environment: environment, sha256: APIKey.hash(key)))
            try file.write(keys)
            print(key)
            FileHandle.standardError.write(Data("created \(name) for \(project)/\(environment) in \(file.file); the key above is shown only now: store it in a secret manager\n".utf8))
        }
    }

    public struct List: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(abstract: "List the keys (names and tenants; never the keys).")
        @OptionGroup var file: FileOption

        public func run() throws {
            for record in try file.read().keys {
                print("\(record.id)\t\(record.project)\t\(record.environment)")
            }
        }
    }

    public struct Revoke: ParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(abstract: "Remove a key; running services stop accepting it within seconds (they reload the file).")
        @OptionGroup var file: FileOption
        @Option(help: "The key's name.") var id: String

        public func run() throws {
            var keys = try file.read()
            guard keys.keys.contains(where: { $0.id == id }) else {
                throw ArgumentParser.ValidationError("no key named '\(id)' in '\(file.file)'")
            }
            keys.keys.removeAll { $0.id == id }
            try file.write(keys)
            FileHandle.standardError.write(Data("revoked \(id)\n".utf8))
        }
    }
}
