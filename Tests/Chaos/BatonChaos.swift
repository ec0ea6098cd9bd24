import ArgumentParser
import BatonTesting
import Foundation

/// `baton-chaos`: the standalone chaos harness. Starts the embedded stack on loopback ports,
/// sends `--runs` events while SIGKILLing and restarting `--kills` random Baton processes, and
/// prints the invariant line. Exits 1 when an invariant does not hold. With `--sigterm N` the
/// processes get SIGTERM instead, with an N-second shutdown deadline: each must drain and exit 0.
/// `--instances 2 --store postgres` runs two instances of each service on one PostgreSQL (which
/// it restarts once midway) and kills any of them.
///
///     eval "$(deploy/local/setup --print-env)"
///     swift build && BATON_BIN_DIR=$(swift build --show-bin-path) .build/debug/baton-chaos --runs 1000 --kills 40
@main
struct BatonChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "baton-chaos", abstract: "Kill Baton processes under load and check its invariants.")

    @Option(help: "Events to send (each starts a run that starts another: twice as many runs).")
    var runs = 200

    @Option(help: "Processes to SIGKILL and restart while the events are sent.")
    var kills = 10

    @Option(help: "Seed of the kill schedule (replay a failing schedule with its seed).")
    var seed: UInt64 = UInt64(Date().timeIntervalSince1970)

    @Option(help: "Seconds each run waits durably.")
    var wait = 0.3

    @Option(help: "Instances of each service (more than 1 needs --store postgres for the dispatcher and the task-result service).")
    var instances = 1

    @Option(help: "Where the dispatcher and the task-result service keep their state: sqlite (a file each) or postgres (a PostgreSQL server of the harness's own, restarted once midway).")
    var store = "sqlite"

    @Option(name: .customLong("sigterm"), help: "Stop processes with SIGTERM and this shutdown deadline in seconds (they must drain and exit 0 in time) instead of SIGKILL.")
    var sigtermDeadline: Double?

    func validate() throws {
        guard runs >= 1, runs <= 100_000 else { throw ValidationError("--runs must be between 1 and 100000") }
        guard kills >= 0, kills <= 10_000 else { throw ValidationError("--kills must be between 0 and 10000") }
        guard wait >= 0, wait <= 60 else { throw ValidationError("--wait must be between 0 and 60 seconds") }
        guard ["sqlite", "postgres"].contains(store) else { throw ValidationError("--store must be sqlite or postgres, got '\(store)'") }
        guard instances >= 1, instances <= 4 else { throw ValidationError("--instances must be between 1 and 4") }
        guard instances == 1 || store == "postgres" else {
            throw ValidationError("--instances \(instances) needs --store postgres: a SQLite store serves one dispatcher and one task-result service")
        }
        if let sigtermDeadline, !(sigtermDeadline > 0 && sigtermDeadline <= 600) {
            throw ValidationError("--sigterm must be between 0 and 600 seconds")
        }
    }

    func run() async throws {
        let started = ContinuousClock.now
        let report = try await ChaosHarness(runs: runs, kills: kills, seed: seed, waitSeconds: wait,
                                            settleDeadline: .seconds(max(300, runs)),
                                            shutdownDeadline: sigtermDeadline.map { .milliseconds(Int($0 * 1000)) },
                                            instances: instances, postgres: store == "postgres", log: { print($0) }).run()
        print("killed: \(report.killed.joined(separator: ", "))")
        print(report.line)
        print("seed \(seed), \(ContinuousClock.now - started)")
        if !report.holds { throw ExitCode(1) }
    }
}
