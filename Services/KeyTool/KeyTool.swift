import ArgumentParser
import BatonKeys

/// `baton-keys`: the same as `baton keys` (see ``KeysCommand``), as a program of its own.
@main
struct KeyTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-keys",
        abstract: KeysCommand.configuration.abstract,
        subcommands: [KeysCommand.Create.self, KeysCommand.List.self, KeysCommand.Revoke.self])
}
