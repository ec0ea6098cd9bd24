import BatonTesting
import Foundation
import Testing

/// Runs `python3` with `arguments` and the validators of `tool` (`k8s`, `compose`) on its path;
/// returns the exit status and the output.
func runValidator(_ tool: String, _ arguments: [String], in directory: URL) throws -> (status: Int32, output: String) {
    let tools = ProcessInfo.processInfo.environment["BATON_DEPLOY_TOOLS"]
        ?? TestEnvironment.repositoryRoot.appendingPathComponent(".local/deploy-tools").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    process.currentDirectoryURL = directory
    process.environment = ProcessInfo.processInfo.environment.merging(["PYTHONPATH": "\(tools)/\(tool)"]) { _, new in new }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

@Suite("Deployment files pass their validators (there is no container engine here)")
struct DeploymentFilesTests {
    let root = TestEnvironment.repositoryRoot

    func kubernetesValidate(_ files: [String], in directory: URL) throws -> (status: Int32, output: String) {
        try runValidator("k8s", ["-m", "kubernetes_validate", "--strict", "-k", "1.33.0"] + files, in: directory)
    }

    func composeConfig(_ file: String, in directory: URL) throws -> (status: Int32, output: String) {
        try runValidator("compose", ["-c", "import sys; from compose.cli.main import main; sys.argv = ['docker-compose', '-f', sys.argv[1], 'config', '-q']; main()", file],
                         in: directory)
    }

    @Test("every Kubernetes manifest is valid for Kubernetes 1.33 (strict: no unknown fields); a broken one is refused")
    func kubernetesManifests() throws {
        let directory = root.appendingPathComponent("deploy/k8s")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files == ["config.yaml", "dashboard.yaml", "dispatcher.yaml", "example-jobs.yaml", "ingester.yaml", "task-results.yaml"])
        let result = try kubernetesValidate(files, in: directory)
        #expect(result.status == 0, "\(result.output)")
        // Each service: a Deployment with probes, a Service, a PodDisruptionBudget, an autoscaler.
        for service in ["ingester", "dispatcher", "task-results", "example-jobs"] {
            for kind in ["deployment", "service", "poddisruptionbudget", "horizontalpodautoscaler"] {
                #expect(result.output.contains("passed for resource \(kind)/baton-\(service)"), "\(kind)/baton-\(service)")
            }
        }
        for kind in ["deployment", "service", "poddisruptionbudget"] {
            #expect(result.output.contains("passed for resource \(kind)/baton-dashboard"), "\(kind)/baton-dashboard")
        }
        // The validator can fail: a field the schema does not know.
        let broken = try TestEnvironment.temporaryDirectory("k8s-broken")
        let text = try String(contentsOf: directory.appendingPathComponent("ingester.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "terminationGracePeriodSeconds: 45", with: "terminationGraceSeconds: 45")
        try text.write(to: broken.appendingPathComponent("ingester.yaml"), atomically: true, encoding: .utf8)
        #expect(try kubernetesValidate(["ingester.yaml"], in: broken).status != 0)
    }

    @Test("the compose file is valid (docker-compose config); a broken one is refused")
    func composeFile() throws {
        let directory = root.appendingPathComponent("deploy/compose")
        let result = try composeConfig("compose.yaml", in: directory)
        #expect(result.status == 0, "\(result.output)")
        let text = try String(contentsOf: directory.appendingPathComponent("compose.yaml"), encoding: .utf8)
        for service in ["kafka:", "postgres:", "ingester:", "dispatcher:", "task-results:", "example-jobs:"] {
            #expect(text.contains("\n  \(service)"), "service \(service)")
        }
        #expect(text.components(separatedBy: "replicas: 2").count - 1 == 4, "two instances of each Baton service")
        let broken = try TestEnvironment.temporaryDirectory("compose-broken")
        try text.replacingOccurrences(of: "restart: unless-stopped", with: "restart: [unless-stopped]")
            .write(to: broken.appendingPathComponent("compose.yaml"), atomically: true, encoding: .utf8)
        #expect(try composeConfig("compose.yaml", in: broken).status != 0)
    }
}
