import BatonProtocol
import BatonTesting
import Foundation
import Testing

@Suite("docs/openapi.yaml is the exact contract: schemathesis (every check) against each live service with API keys on",
       .tags(.integration))
struct ContractTests {
    @Test("the ingester, the dispatcher and the task-result service answer as the document says: no failure of any schemathesis check")
    func schemathesis() async throws {
        let keys = try TestKeys(directory: FileManager.default.temporaryDirectory.appendingPathComponent("baton-keys"))
        let stack = try await BatonStack.start(label: "contract", environment: ["AUTH_KEYS_FILE": keys.file.path, "LOG_LEVEL": "info"])
        try await stack.startExampleJobs(waitSeconds: 0, environment: ["BATON_PROJECT": "alpha", "BATON_ENVIRONMENT": "prod", "BATON_API_KEY": keys.alphaProd],
                                         jobs: ["many-steps"])
        // Data to find: a run, and a delayed event.
        let event = "evt_contract_\(UUID().uuidString.prefix(8).lowercased())"
        #expect(try await stack.sendEvent(#"{"id":"\#(event)","name":"steps.start","payload":{"steps":1}}"#, apiKey: keys.alphaProd).status == 202)
        _ = try await stack.finishedRun(Identifiers.runID(eventID: event, jobSlug: "many-steps"), apiKey: keys.alphaProd)
        #expect(try await stack.sendEvent(#"{"name":"steps.start","payload":{"steps":1},"deliverAfter":3600}"#, apiKey: keys.alphaProd).status == 202)

        let tools = ProcessInfo.processInfo.environment["BATON_DEPLOY_TOOLS"]
            ?? TestEnvironment.repositoryRoot.appendingPathComponent(".local/deploy-tools").path
        for (service, port) in [("ingester", stack.ingesterPort), ("dispatcher", stack.dispatcherPort), ("task-results", stack.taskResultsPort)] {
            let (status, output) = try await runPython(
                ["Tests/Contract/schemathesis_check.py", service, "http://127.0.0.1:\(port)", keys.alphaProd, "40", "7"],
                path: "\(tools)/schemathesis", deadline: .seconds(300))
            #expect(status == 0, "schemathesis found failures on the \(service):\n\(output.suffix(6000))")
            #expect(output.contains("Tested:"), "schemathesis ran against the \(service): \(output.suffix(2000))")
            print(output.split(separator: "\n").filter { $0.contains("operations") || $0.contains("Test cases") || $0.contains(" generated") }.joined(separator: "\n"))
        }
        // Every process stayed up through it.
        for process in [stack.ingester, stack.dispatcher, stack.taskResults] + stack.jobServices {
            #expect(process.isRunning, "\(process.name) stopped during the fuzzing: \(process.output().suffix(2000))")
        }
        try await stack.stop()
    }
}
