import BatonProtocol
import BatonTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOHTTP1
import Synchronization
import Testing

/// Keys for three tenants, written the way `baton-keys` writes them (hashes only).
struct TestKeys {
    let file: URL
    let alphaProd = APIKey.generate(environment: "prod")
    let alphaDev = APIKey.generate(environment: "dev")
    let betaProd = APIKey.generate(environment: "prod")

    init(directory: URL) throws {
        file = directory.appendingPathComponent("keys-\(UUID().uuidString.prefix(6)).json")
        let records = [("alpha-prod", "alpha", "prod", alphaProd), ("alpha-dev", "alpha", "dev", alphaDev), ("beta-prod", "beta", "prod", betaProd)]
            .map { APIKey.Record(id: $0.0, project: $0.1, environment: $0.2, sha256: APIKey.hash($0.3)) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try JSONEncoder().encode(APIKey.File(keys: records)).write(to: file)
        #expect(!(try String(contentsOf: file, encoding: .utf8)).contains(alphaProd), "the file holds hashes, not keys")
    }
}

@Suite("API keys and tenant isolation over a real broker", .tags(.integration), .serialized)
struct SecurityTests {
    @Test("a key revoked with baton-keys gets 401 on every service within 5 s, without a restart; the other keys keep working; a broken keys file changes nothing")
    func revocationWithoutRestart() async throws {
        let keys = try TestKeys(directory: FileManager.default.temporaryDirectory.appendingPathComponent("baton-keys"))
        let stack = try await BatonStack.start(label: "revoke", environment: ["AUTH_KEYS_FILE": keys.file.path])
        let user = #""payload":{"id":"rv","email":"rv@example.org","name":"Rv"}"#
        /// The statuses `key` gets from the runs API, the jobs API and the events API.
        func statuses(_ key: String) async throws -> [UInt] {
            [try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?status=COMPLETED", apiKey: key).status,
             try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs", apiKey: key).status,
             try await stack.sendEvent(#"{"name":"user.created",\#(user)}"#, apiKey: key).status]
        }
        #expect(try await statuses(keys.betaProd) == [200, 200, 202])

        // A keys file that does not parse is refused; the keys in use stay.
        let good = try Data(contentsOf: keys.file)
        try Data("{not json".utf8).write(to: keys.file)
        _ = try await eventually("the broken file to be refused", deadline: .seconds(10)) {
            stack.process(.taskResults).output().contains("API keys not reloaded") ? true : nil
        }
        #expect(try await statuses(keys.betaProd) == [200, 200, 202])
        try good.write(to: keys.file)

        let tool = try ChildProcess(name: "baton-keys", executable: TestEnvironment.executable("baton-keys"),
                                    arguments: ["revoke", "--file", keys.file.path, "--id", "beta-prod"], logDirectory: stack.logs)
        _ = try await eventually("baton-keys to finish", deadline: .seconds(20)) { tool.isRunning ? nil : true }
        #expect(tool.terminationStatus == 0, "\(tool.output())")
        let revokedAt = ContinuousClock.now
        _ = try await eventually("the revoked key to get 401 everywhere", deadline: .seconds(5), every: .milliseconds(100)) {
            try await statuses(keys.betaProd) == [401, 401, 401] ? true : nil
        }
        let took = ContinuousClock.now - revokedAt
        #expect(took < .seconds(5), "revoked in \(took)")
        #expect(try await statuses(keys.alphaProd) == [200, 200, 202], "the other keys keep working")
        try await stack.stop()
    }

    @Test("a key sees and starts only its own project's and environment's jobs, events and runs; no key or a wrong key gets 401")
    func isolation() async throws {
        let keys = try TestKeys(directory: FileManager.default.temporaryDirectory.appendingPathComponent("baton-keys"))
        let stack = try await BatonStack.start(label: "isolation", environment: ["AUTH_KEYS_FILE": keys.file.path])
        // The example jobs belong to alpha/prod and authenticate with its key.
        try await stack.startExampleJobs(environment: ["BATON_PROJECT": "alpha", "BATON_ENVIRONMENT": "prod", "BATON_API_KEY": keys.alphaProd])
        let user = #""payload":{"id":"iso","email":"iso@example.org","name":"Iso"}"#

        // No key, a malformed header, an unknown key: 401 on every public API, with the error shape.
        for (port, path) in [(stack.taskResultsPort, "/api/v1/runs?status=COMPLETED"), (stack.dispatcherPort, "/api/v1/jobs")] {
            let anonymous = try await stack.get(port: port, path)
            #expect(anonymous.status == 401 && anonymous.body.contains(#""code":"unauthenticated""#), "\(path): \(anonymous)")
        }
        #expect(try await stack.sendEvent(#"{"name":"user.created",\#(user)}"#).status == 401)
        let wrong = try await stack.sendEvent(#"{"name":"user.created",\#(user)}"#, apiKey: "bk_prod_" + String(repeating: "0", count: 64))
        #expect(wrong.status == 401 && wrong.body.contains(#""code":"unauthenticated""#), "\(wrong)")
        #expect(!wrong.body.contains("bk_prod_000"), "the answer never echoes the key")
        #expect(try await stack.request(port: stack.ingesterPort, "/api/v1/events", method: .POST, body: "{}",
                                         apiKey: nil).status == 401)

        // alpha/prod starts a run of its job and sees it.
        let alphaEvent = "evt_iso_a_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(alphaEvent)","name":"user.created",\#(user)}"#, apiKey: keys.alphaProd).status == 202)
        let alphaRun = Identifiers.runID(eventID: alphaEvent, jobSlug: "new-user-welcome")
        let finished = try await stack.finishedRun(alphaRun, apiKey: keys.alphaProd)
        #expect(finished.status == .completed, "\(finished.error ?? "")")
        #expect(finished.project == "alpha" && finished.environment == "prod")

        // beta/prod and alpha/dev cannot read, list or cancel it.
        for other in [keys.betaProd, keys.alphaDev] {
            #expect(try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(alphaRun)", apiKey: other).status == 404)
            #expect(try await stack.runs(event: alphaEvent, apiKey: other).isEmpty)
            let completed = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs?status=COMPLETED", apiKey: other).body
            #expect(!completed.contains(alphaRun))
            #expect(try await stack.post(port: stack.taskResultsPort, "/api/v1/runs/\(alphaRun)/cancel", apiKey: other).status == 404)
            #expect(try await stack.get(port: stack.taskResultsPort, "/internal/v1/runs/\(alphaRun)/checkpoint", apiKey: other).status == 404)
            let jobs = try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs", apiKey: other)
            #expect(jobs.status == 200 && !jobs.body.contains("new-user-welcome"), "\(jobs.body)")
        }
        #expect(try await stack.runs(event: alphaEvent, apiKey: keys.alphaProd).map(\.id) == [alphaRun])

        // beta/prod cannot start alpha's jobs: its events match nothing, its invoke finds no job,
        // and a registration under alpha's job id is refused.
        let betaEvent = "evt_iso_b_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(betaEvent)","name":"user.created",\#(user)}"#, apiKey: keys.betaProd).status == 202)
        let invoke = try await stack.post(port: stack.ingesterPort, "/api/v1/jobs/new-user-welcome/invoke", body: #"{\#(user)}"#, apiKey: keys.betaProd)
        #expect(invoke.status == 404 && invoke.body.contains("job_not_found"), "\(invoke)")
        let takeover = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/new-user-welcome", method: .PUT,
                                               body: #"{"name":"Mine","version":"9.0.0","trigger":{"type":"event","eventName":"user.created"}}"#,
                                               apiKey: keys.betaProd)
        #expect(takeover.status == 409 && takeover.body.contains("job_owned_elsewhere"), "\(takeover)")
        // The same event id from two tenants is two events: alpha's run of the beta id is started
        // only by alpha's own event.
        #expect(try await stack.sendEvent(#"{"id":"\#(betaEvent)","name":"user.created",\#(user)}"#, apiKey: keys.alphaProd).status == 202)
        let alphaOfBetaId = try await stack.finishedRun(Identifiers.runID(eventID: betaEvent, jobSlug: "new-user-welcome"), apiKey: keys.alphaProd)
        #expect(alphaOfBetaId.status == .completed)
        #expect(try await stack.runs(event: betaEvent, apiKey: keys.betaProd).isEmpty, "beta's event started no run of alpha's job")
        #expect(try await stack.runs(event: betaEvent, apiKey: keys.alphaProd).count == 1, "one run: alpha's event, not beta's")
        #expect(stack.outboxLines().filter { $0.hasPrefix("welcome iso@") }.count == 2, "two alpha events, two welcomes")

        // beta/prod may register its own job (another id) and sees only that one.
        let own = try await stack.request(port: stack.ingesterPort, "/api/v1/jobs/beta-sync", method: .PUT,
                                          body: #"{"name":"Beta sync","version":"1.0.0","trigger":{"type":"event","eventName":"user.created"}}"#,
                                          apiKey: keys.betaProd)
        #expect(own.status == 200, "\(own)")
        _ = try await eventually("beta's job to be known", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs/beta-sync", apiKey: keys.betaProd).status == 200 ? true : nil
        }
        let betaJobs = try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs", apiKey: keys.betaProd).body
        #expect(betaJobs.contains("beta-sync") && !betaJobs.contains("new-user-welcome"))
        #expect(!(try await stack.get(port: stack.dispatcherPort, "/api/v1/jobs", apiKey: keys.alphaProd).body.contains("beta-sync")))

        // Delayed events are per tenant too: alpha cannot see or cancel beta's.
        let delayed = "evt_iso_d_\(UUID().uuidString.prefix(6))"
        #expect(try await stack.sendEvent(#"{"id":"\#(delayed)","name":"nothing.matches","deliverAfter":600}"#, apiKey: keys.betaProd).status == 202)
        _ = try await eventually("beta's delayed event to be held", deadline: .seconds(30)) {
            try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(delayed)", apiKey: keys.betaProd).body.contains("PENDING") ? true : nil
        }
        #expect(try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(delayed)", apiKey: keys.alphaProd).status == 404)
        _ = try await stack.delete(port: stack.ingesterPort, "/api/v1/events/\(delayed)", apiKey: keys.alphaProd)
        #expect(try await stack.get(port: stack.dispatcherPort, "/api/v1/events/\(delayed)", apiKey: keys.betaProd).body.contains("PENDING"),
                "alpha's cancel did not touch beta's event")
        try await stack.stop()
    }

    @Test("planted secrets (API key, Kafka password, fetch Authorization header and URL token) never reach logs or the runs API; the fetch request is sealed on the topic and in the store")
    func secretsStayOut() async throws {
        let keys = try TestKeys(directory: FileManager.default.temporaryDirectory.appendingPathComponent("baton-keys"))
        let kafkaPassword = "kafka-pw-\(UUID().uuidString)"
        let fetchToken = "fetch-token-\(UUID().uuidString)"
        let urlToken = "url-token-\(UUID().uuidString)"
        let seenAuthorization = Mutex<[String]>([])
        let router = Router()
        router.get("/secure") { request, _ -> Response in
            seenAuthorization.withLock { $0.append(request.headers[.authorization] ?? "") }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "fine")))
        }
        let server = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            // Debug logging everywhere: the most a process ever writes.
            let stack = try await BatonStack.start(label: "secrets", environment: [
                "AUTH_KEYS_FILE": keys.file.path, "LOG_LEVEL": "trace",
                "KAFKA_PROPERTIES": "sasl.username=baton,sasl.password=\(kafkaPassword)",
                "FETCH_SECRETS_KEYS": Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(),
            ])
            try await stack.startExampleJobs(environment: ["BATON_PROJECT": "alpha", "BATON_ENVIRONMENT": "prod", "BATON_API_KEY": keys.alphaProd])
            let eventId = "evt_secret_\(UUID().uuidString.prefix(6))"
            let event = #"{"id":"\#(eventId)","name":"fetch.start","payload":{"url":"http://127.0.0.1:\#(port)/secure?token=\#(urlToken)","headers":{"authorization":"Bearer \#(fetchToken)"}}}"#
            #expect(try await stack.sendEvent(event, apiKey: keys.alphaProd).status == 202)
            let run = try await stack.finishedRun(Identifiers.runID(eventID: eventId, jobSlug: "fetch"), apiKey: keys.alphaProd)
            #expect(run.status == .completed, "\(run.error ?? "")")
            #expect(run.output == "200 fine")
            #expect(seenAuthorization.withLock { $0 } == ["Bearer \(fetchToken)"], "the header reached the server")
            // A rejected request with a key-looking header is logged without it.
            _ = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(run.id)", apiKey: keys.alphaProd + "x")
            let api = try await stack.get(port: stack.taskResultsPort, "/api/v1/runs/\(run.id)", apiKey: keys.alphaProd).body
            // At rest: the fetch request on the task-results topic and in the store is sealed.
            let record = try await firstRecordValue(bootstrapServers: stack.broker.bootstrapServers, topic: Topics().taskResults,
                                                    key: run.id, containing: "fetchRequested")
            #expect(record?.contains("\"sealed\"") == true, "the request on the topic is sealed: \(record ?? "no record")")
            let query = try ChildProcess(
                name: "store-read", executable: URL(fileURLWithPath: "/usr/bin/env"),
                arguments: ["python3", "-c", "import sqlite3, sys\nfor (r,) in sqlite3.connect(sys.argv[1]).execute('SELECT request FROM fetches'): print(r)",
                            stack.directory.appendingPathComponent("task-results.sqlite").path],
                logDirectory: stack.logs)
            _ = try await eventually("the store to be read", deadline: .seconds(20)) { query.isRunning ? nil : true }
            let stored = query.output()
            #expect(stored.contains("\"sealed\""), "the request in the store is sealed: \(stored)")
            try await stack.stop()

            let logs = stack.allOutput(full: true)
            #expect(logs.count > 10_000, "the processes logged (\(logs.count) bytes)")
            #expect(logs.contains(eventId), "the logs are about this run")
            for (name, secret) in [("API key", keys.alphaProd), ("Kafka password", kafkaPassword), ("fetch Authorization header", fetchToken),
                                   ("URL token", urlToken)] {
                #expect(!logs.contains(secret), "the \(name) is in the logs")
                #expect(!api.contains(secret), "the \(name) is in the runs API")
                #expect(record?.contains(secret) == false, "the \(name) is on the task-results topic")
                #expect(!stored.contains(secret), "the \(name) is in the store")
            }
        }
    }
}
