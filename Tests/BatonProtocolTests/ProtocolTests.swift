import BatonProtocol
import Foundation
import Testing

@Suite("Slugs")
struct SlugTests {
    @Test("job ids become slugs", arguments: [
        ("new-user-welcome", "new-user-welcome"),
        ("New User: Welcome!", "new-user-welcome"),
        ("  Café  Crème ", "cafe-creme"),
        ("a__b--c", "a-b-c"),
        ("Job 42", "job-42"),
    ])
    func slugify(_ input: String, _ expected: String) throws {
        #expect(try Slug.make(input) == expected)
        #expect(Slug.isValid(expected))
    }

    @Test("ids without letters or digits are rejected with the id in the message", arguments: ["", "!!!", "   ", "✨"])
    func rejects(_ input: String) {
        let error = #expect(throws: ValidationError.self) { try Slug.make(input) }
        #expect(error?.path == "$.id")
        #expect(error?.message.contains("'\(input)'") == true)
    }

    @Test("overlong slugs are rejected")
    func overlong() {
        #expect(throws: ValidationError.self) { try Slug.make(String(repeating: "a", count: Slug.maximumLength + 1)) }
    }
}

@Suite("Semantic versions")
struct SemanticVersionTests {
    @Test("valid versions parse and print back", arguments: ["0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85"])
    func valid(_ text: String) throws {
        #expect(try SemanticVersion(parsing: text).description == text)
    }

    @Test("invalid versions name the value", arguments: ["", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "a.b.c", "1.2.3-", "1.2.3-01", "1.2.3+", "-1.2.3", "v1.2.3"])
    func invalid(_ text: String) {
        let error = #expect(throws: ValidationError.self) { try SemanticVersion(parsing: text) }
        #expect(error?.message.contains("'\(text)'") == true)
        #expect(error?.path == "$.version")
    }

    @Test("precedence follows semver.org")
    func ordering() throws {
        let ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
        let versions = try ordered.map { try SemanticVersion(parsing: $0) }
        for (lower, higher) in zip(versions, versions.dropFirst()) {
            #expect(lower < higher, "\(lower) < \(higher)")
            #expect(!(higher < lower))
        }
    }
}

@Suite("Identifiers")
struct IdentifierTests {
    @Test("run ids are deterministic in (event id, job slug) and differ otherwise")
    func runIDs() {
        let a = Identifiers.runID(eventID: "evt_1", jobSlug: "job-a")
        #expect(a == Identifiers.runID(eventID: "evt_1", jobSlug: "job-a"))
        #expect(a != Identifiers.runID(eventID: "evt_1", jobSlug: "job-b"))
        #expect(a != Identifiers.runID(eventID: "evt_2", jobSlug: "job-a"))
        // Length-prefixing keeps concatenations apart.
        #expect(Identifiers.runID(eventID: "ab", jobSlug: "c") != Identifiers.runID(eventID: "a", jobSlug: "bc"))
        #expect(a.hasPrefix("run_") && a.count == 28)
    }

    @Test("a schedule's partition is stable, in range, and spreads jobs over the partitions")
    func schedulePartition() {
        #expect(Identifiers.schedulePartition(jobSlug: "ticker", count: 6) == Identifiers.schedulePartition(jobSlug: "ticker", count: 6))
        #expect(Identifiers.schedulePartition(jobSlug: "anything", count: 1) == 0)
        let partitions = (0..<600).map { Identifiers.schedulePartition(jobSlug: "job-\($0)", count: 6) }
        #expect(partitions.allSatisfy { (0..<6).contains($0) })
        #expect(Set(partitions).count == 6)
        #expect((0..<6).allSatisfy { p in partitions.filter { $0 == p }.count > 60 }, "roughly even: \((0..<6).map { p in partitions.filter { $0 == p }.count })")
    }

    @Test("task ids are scoped by run and parent")
    func taskIDs() {
        let top = Identifiers.taskID(runID: "r1", parentTaskID: nil, key: "k")
        #expect(top == Identifiers.taskID(runID: "r1", parentTaskID: nil, key: "k"))
        #expect(top != Identifiers.taskID(runID: "r2", parentTaskID: nil, key: "k"))
        #expect(top != Identifiers.taskID(runID: "r1", parentTaskID: "p", key: "k"))
        #expect(Identifiers.taskID(runID: "r1", parentTaskID: "p1", key: "k") != Identifiers.taskID(runID: "r1", parentTaskID: "p2", key: "k"))
    }
}

@Suite("Messages")
struct MessageTests {
    @Test("an envelope round-trips through JSON")
    func envelopeRoundTrip() throws {
        let envelope = EventEnvelope(id: "evt_1", name: "user.created", payload: ["id": 1, "tags": ["a", nil, true, 2.5]],
                                     context: ["ip": "127.0.0.1"], timestamp: Date(timeIntervalSince1970: 1_700_000_000.5))
        let data = try BatonJSON.encoder.encode(envelope)
        #expect(try EventEnvelope.decode(from: data) == envelope)
    }

    @Test("a minimal envelope from any producer gets defaults")
    func minimalEnvelope() throws {
        let envelope = try EventEnvelope.decode(from: Data(#"{"id":"e1","name":"order.paid","payload":{"total":12}}"#.utf8))
        #expect(envelope.source == "trigger")
        #expect(envelope.schemaVersion == 1)
        #expect(envelope.payload["total"] == 12)
    }

    @Test("invalid envelopes say what and where", arguments: [
        (#"{"id":"e1","name":"#, "malformed_json", "$"),
        (#"{"name":"x"}"#, "invalid_field", "$.id"),
        (#"{"id":"e1","name":42}"#, "invalid_field", "$.name"),
        (#"{"id":"e1","name":"  "}"#, "invalid_field", "$.name"),
        (#"{"id":"","name":"x"}"#, "invalid_field", "$.id"),
        (#"{"id":"e1","name":"x","timestamp":"yesterday"}"#, "invalid_field", "$.timestamp"),
        (#"{"id":"e1","name":"x","schemaVersion":99}"#, "unsupported_schema_version", "$.schemaVersion"),
    ])
    func invalidEnvelopes(_ json: String, _ code: String, _ path: String) {
        let error = #expect(throws: ValidationError.self) { try EventEnvelope.decode(from: Data(json.utf8)) }
        #expect(error?.code == code)
        #expect(error?.path == path)
        #expect(error?.message.isEmpty == false)
    }

    @Test("every run event kind round-trips through JSON")
    func runEvents() throws {
        let event = EventEnvelope(id: "e", name: "n", timestamp: Date(timeIntervalSince1970: 1))
        let bodies: [RunEvent.Body] = [
            .runCreated(.init(jobSlug: "j", jobVersion: "1.0.0", event: event)),
            .taskStarted(.init(taskId: "t", key: "k", parentTaskId: nil, name: "n", attempt: 1)),
            .taskCompleted(.init(taskId: "t", key: "k", parentTaskId: "p", output: ["x": 1])),
            .taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "boom", attempt: 2)),
            .waitRequested(.init(taskId: "t", key: "k", parentTaskId: nil, until: Date(timeIntervalSince1970: 5))),
            .logged(.init(taskId: "t", level: "INFO", message: "m", properties: nil)),
            .yielded(.init(yieldId: "y1")),
            .taskFailed(.init(taskId: "t", key: "k", parentTaskId: nil, error: "e", attempt: 1, retryAt: Date(timeIntervalSince1970: 9))),
            .runCompleted(.init(output: "done")),
            .runFailed(.init(status: .invalidPayload, error: "bad")),
        ]
        for body in bodies {
            let original = RunEvent(runId: "r", occurredAt: Date(timeIntervalSince1970: 2), body: body)
            #expect(try RunEvent.decode(from: try BatonJSON.encoder.encode(original)) == original)
        }
        let unknown = #expect(throws: ValidationError.self) {
            try RunEvent.decode(from: Data(#"{"schemaVersion":1,"runId":"r","occurredAt":"2026-01-01T00:00:00Z","type":"nope","data":{}}"#.utf8))
        }
        #expect(unknown?.message.contains("nope") == true)
    }

    @Test("job registrations validate id, name, version and trigger")
    func registrations() throws {
        let registration = try JobRegistration(id: "Send Welcome", name: "Welcome", version: "1.2.0", trigger: .event(name: "user.created"))
        #expect(registration.slug == "send-welcome")
        #expect(registration.id == "Send Welcome")
        let badVersion = #expect(throws: ValidationError.self) {
            try JobRegistration(id: "a", name: "A", version: "1.0", trigger: .event(name: "x"))
        }
        #expect(badVersion?.message.contains("'1.0'") == true)
        #expect(throws: ValidationError.self) { try JobRegistration(id: "a", name: " ", version: "1.0.0", trigger: .event(name: "x")) }
        #expect(throws: ValidationError.self) { try JobRegistration(id: "a", name: "A", version: "1.0.0", trigger: .event(name: "")) }
        var tampered = registration
        tampered.slug = "other"
        #expect(throws: ValidationError.self) { try JobRegistration.decode(from: try BatonJSON.encoder.encode(tampered)) }
    }

    @Test("a registration from other tooling may leave out schemaVersion and registeredAt")
    func minimalRegistration() throws {
        let json = #"{"id":"Sync CRM","slug":"sync-crm","name":"Sync","version":"2.1.0","trigger":{"type":"event","eventName":"crm.changed"}}"#
        let registration = try JobRegistration.decode(from: Data(json.utf8))
        #expect(registration.schemaVersion == 1)
        #expect(registration.slug == "sync-crm")
        let missingVersion = #expect(throws: ValidationError.self) {
            try JobRegistration.decode(from: Data(#"{"id":"a","slug":"a","name":"A","trigger":{"type":"event","eventName":"x"}}"#.utf8))
        }
        #expect(missingVersion?.path == "$.version")
    }

    @Test("triggers match on exact name and optional source")
    func triggerMatching() {
        let event = EventEnvelope(id: "e", name: "user.created", source: "github")
        #expect(JobTrigger.event(name: "user.created").matches(event))
        #expect(JobTrigger.event(name: "user.created", source: "github").matches(event))
        #expect(!JobTrigger.event(name: "user.created", source: "stripe").matches(event))
        #expect(!JobTrigger.event(name: "user.Created").matches(event))
    }

    @Test("an invoke trigger is valid and matches no event, not even one named like invocations")
    func invokeTrigger() throws {
        let registration = try JobRegistration(id: "Monthly Report", name: "Report", version: "1.0.0", trigger: .invoke())
        #expect(registration.trigger.type == "invoke")
        #expect(!registration.trigger.matches(EventEnvelope(id: "e", name: JobTrigger.invokedEventName, source: "invoke")))
        #expect(!registration.trigger.isSchedule && registration.trigger.nextTick(after: Date()) == nil)
        let unknown = #expect(throws: ValidationError.self) {
            try JobRegistration(id: "a", name: "A", version: "1.0.0", trigger: JobTrigger(type: "webhook", eventName: "x"))
        }
        #expect(unknown?.path == "$.trigger.type" && unknown?.message.contains("'invoke'") == true)
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("defaults are Trigger.dev v2's")
    func defaults() {
        let policy = RetryPolicy()
        #expect(policy.limit == 5 && policy.factor == 1.8 && policy.minTimeoutInMs == 1000 && policy.maxTimeoutInMs == 60_000 && policy.randomize)
    }

    @Test("delays grow by the factor, are capped, and stop at the limit")
    func delays() {
        var generator = SystemRandomNumberGenerator()
        let policy = RetryPolicy(limit: 6, factor: 2, minTimeoutInMs: 1000, maxTimeoutInMs: 5000, randomize: false)
        let delays = (1...6).map { policy.delayMilliseconds(afterAttempt: $0, using: &generator) }
        #expect(delays == [1000, 2000, 4000, 5000, 5000, nil])
        #expect(RetryPolicy(limit: 1).delayMilliseconds(afterAttempt: 1, using: &generator) == nil)
    }

    @Test("randomized delays stay within 1x to 2x of the planned one")
    func randomized() {
        var generator = SystemRandomNumberGenerator()
        let policy = RetryPolicy(limit: 3, factor: 1.8, minTimeoutInMs: 1000, maxTimeoutInMs: 60_000, randomize: true)
        for _ in 0..<200 {
            let first = policy.delayMilliseconds(afterAttempt: 1, using: &generator)!
            let second = policy.delayMilliseconds(afterAttempt: 2, using: &generator)!
            #expect((1000...2000).contains(first))
            #expect((1800...3600).contains(second))
        }
    }

    @Test("invalid options name the option", arguments: [
        (RetryPolicy(limit: 0), "retry.limit"),
        (RetryPolicy(factor: 0.5), "retry.factor"),
        (RetryPolicy(minTimeoutInMs: -1), "retry.minTimeoutInMs"),
        (RetryPolicy(minTimeoutInMs: 10, maxTimeoutInMs: 5), "retry.maxTimeoutInMs"),
    ])
    func invalid(_ policy: RetryPolicy, _ path: String) {
        let error = #expect(throws: ValidationError.self) { try policy.validate() }
        #expect(error?.path == path)
    }
}

@Suite("Deduplication scopes")
struct DeduplicationScopeTests {
    @Test("keys are stored with their scope prefix")
    func prefixes() throws {
        #expect(try DeduplicationScope.project.scopedKey("k", organization: "o", project: "p", jobSlug: "j") == "proj:o/p:k")
        #expect(try DeduplicationScope.job.scopedKey("k", organization: "o", project: "p", jobSlug: "j") == "job:o/p/j:k")
        #expect(try DeduplicationScope.organization.scopedKey("k", organization: "o", project: "p", jobSlug: "j") == "org:o:k")
        // The same key in two projects, or two jobs, is two keys.
        #expect(try DeduplicationScope.project.scopedKey("k", organization: "o", project: "p1", jobSlug: "j")
                != DeduplicationScope.project.scopedKey("k", organization: "o", project: "p2", jobSlug: "j"))
    }

    @Test("empty keys and unknown scopes are errors")
    func invalid() {
        #expect(throws: ValidationError.self) { try DeduplicationScope.project.scopedKey("", organization: "o", project: "p", jobSlug: "j") }
        let error = #expect(throws: ValidationError.self) {
            try DeduplicationScope(rawValue: "planet").scopedKey("k", organization: "o", project: "p", jobSlug: "j")
        }
        #expect(error?.message.contains("planet") == true)
    }
}

@Suite("Background fetch requests")
struct BackgroundFetchRequestTests {
    @Test("retry rules match statuses, ranges, classes and connection failures")
    func rules() {
        let fast = RetryPolicy(limit: 2)
        let slow = RetryPolicy(limit: 9)
        let network = RetryPolicy(limit: 3)
        let request = BackgroundFetchRequest(url: "https://example.com", retry: ["429": fast, "500-599": slow, "network": network])
        #expect(request.retryPolicy(forStatus: 429) == fast)
        #expect(request.retryPolicy(forStatus: 503) == slow)
        #expect(request.retryPolicy(forStatus: 404) == nil)
        #expect(request.retryPolicy(forStatus: nil) == network)
        #expect(BackgroundFetchRequest(url: "https://e.com", retry: ["4xx": fast]).retryPolicy(forStatus: 404) == fast)
    }

    @Test("invalid requests name what is wrong", arguments: [
        (BackgroundFetchRequest(url: "ftp://example.com"), "url"),
        (BackgroundFetchRequest(url: "not a url"), "url"),
        (BackgroundFetchRequest(url: "https://example.com", method: "BREW"), "method"),
        (BackgroundFetchRequest(url: "https://example.com", retry: ["teapot": RetryPolicy()]), "retry.teapot"),
        (BackgroundFetchRequest(url: "https://example.com", retry: ["700": RetryPolicy()]), "retry.700"),
        (BackgroundFetchRequest(url: "https://example.com", retry: ["5xx": RetryPolicy(limit: 0)]), "retry.5xx.retry.limit"),
    ])
    func invalid(_ request: BackgroundFetchRequest, _ path: String) {
        let error = #expect(throws: ValidationError.self) { try request.validate() }
        #expect(error?.path == path)
    }
}
