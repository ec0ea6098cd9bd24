import Foundation

/// An event, as it travels on `baton.events`.
///
/// This is the document any producer, in any language, publishes to trigger runs. The JSON form
/// is described in `docs/asyncapi.yaml`.
public struct EventEnvelope: Codable, Sendable, Hashable, TenantOwned {
    /// The schema version this build writes.
    public static let currentSchemaVersion = 1
    /// The longest accepted event name.
    public static let maximumNameLength = 256
    /// The longest accepted event id.
    public static let maximumIDLength = 256

    /// Version of this document's schema.
    public var schemaVersion: Int
    /// Unique id; sending an event with an id already seen is idempotent.
    public var id: String
    /// Event name that triggers match on, e.g. `user.created`.
    public var name: String
    /// Where the event comes from; triggers may require one. Default `trigger`.
    public var source: String
    /// Arbitrary JSON delivered to the job as its payload.
    public var payload: JSONValue
    /// Optional JSON context that triggers may filter on.
    public var context: JSONValue?
    /// When the event happened.
    public var timestamp: Date
    /// Not before this time is the event delivered to jobs (delayed events).
    public var deliverAt: Date?
    /// Optional account the event belongs to.
    public var accountId: String?
    /// When set, the event starts a run of this job (by slug) only, whatever its trigger
    /// (`invokeTrigger`).
    public var invoke: String?
    /// The project the event belongs to; absent means `default`. The ingester sets it from the
    /// API key; direct Kafka producers (trusted by the cluster's ACLs) set it themselves.
    public var project: String?
    /// The environment the event belongs to (`dev`, `prod`, …); absent means `default`.
    public var environment: String?
    /// Set by the SDK when a run invokes a child job (`Job.invokeAndWait`): the run and task
    /// that resume with the child run's outcome. Only with `invoke`; not accepted over HTTP.
    public var parent: ParentRun?
    /// Set by the SDK for `io.waitForEvent`: this record registers a run's wait for an event
    /// with the dispatcher (its name is ``JobTrigger/eventWaitName``); it starts no runs.
    public var eventWait: EventWaitRequest?

    public init(
        id: String = Identifiers.newEventID(),
        name: String,
        source: String = "trigger",
        payload: JSONValue = .null,
        context: JSONValue? = nil,
        timestamp: Date = Date(),
        deliverAt: Date? = nil,
        accountId: String? = nil,
        invoke: String? = nil,
        tenant: Tenant = .default,
        parent: ParentRun? = nil,
        eventWait: EventWaitRequest? = nil
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.id = id
        self.name = name
        self.source = source
        self.payload = payload
        self.context = context
        self.timestamp = timestamp
        self.deliverAt = deliverAt
        self.accountId = accountId
        self.invoke = invoke
        self.tenant = tenant
        self.parent = parent
        self.eventWait = eventWait
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion, id, name, source, payload, context, timestamp, deliverAt, accountId, invoke, project, environment, parent, eventWait
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? Self.currentSchemaVersion
        self.id = try container.decode(String.self, forKey: .id)
        self.name = try container.decode(String.self, forKey: .name)
        self.source = try container.decodeIfPresent(String.self, forKey: .source) ?? "trigger"
        self.payload = try container.decodeIfPresent(JSONValue.self, forKey: .payload) ?? .null
        self.context = try container.decodeIfPresent(JSONValue.self, forKey: .context)
        self.timestamp = try container.decodeIfPresent(Date.self, forKey: .timestamp) ?? Date()
        self.deliverAt = try container.decodeIfPresent(Date.self, forKey: .deliverAt)
        self.accountId = try container.decodeIfPresent(String.self, forKey: .accountId)
        self.invoke = try container.decodeIfPresent(String.self, forKey: .invoke)
        self.project = try container.decodeIfPresent(String.self, forKey: .project)
        self.environment = try container.decodeIfPresent(String.self, forKey: .environment)
        self.parent = try container.decodeIfPresent(ParentRun.self, forKey: .parent)
        self.eventWait = try container.decodeIfPresent(EventWaitRequest.self, forKey: .eventWait)
    }

    /// Checks the rules JSON decoding cannot express.
    /// - Throws: `ValidationError` naming the first offending field.
    public func validate() throws(ValidationError) {
        guard schemaVersion >= 1, schemaVersion <= Self.currentSchemaVersion else {
            throw ValidationError(
                code: "unsupported_schema_version", path: "$.schemaVersion",
                message: "schema version \(schemaVersion) is not supported (this build reads 1...\(Self.currentSchemaVersion))")
        }
        try Self.requireText(id, path: "$.id", what: "event id", maximum: Self.maximumIDLength)
        try Self.requireText(name, path: "$.name", what: "event name", maximum: Self.maximumNameLength)
        try Self.requireText(source, path: "$.source", what: "event source", maximum: Self.maximumNameLength)
        if let invoke, !Slug.isValid(invoke) {
            throw ValidationError(path: "$.invoke", message: "'\(invoke)' is not a job slug")
        }
        try Tenant.validate(project: project, environment: environment, path: "$")
        if let parent {
            guard invoke != nil else {
                throw ValidationError(path: "$.parent", message: "a parent run is only given with 'invoke' (a child job's invocation)")
            }
            try Self.requireText(parent.runId, path: "$.parent.runId", what: "parent run id", maximum: Self.maximumIDLength)
            try Self.requireText(parent.taskId, path: "$.parent.taskId", what: "parent task id", maximum: Self.maximumIDLength)
        }
        if let eventWait {
            guard invoke == nil, parent == nil, deliverAt == nil, name == JobTrigger.eventWaitName else {
                throw ValidationError(path: "$.eventWait", message: "a wait registration is named '\(JobTrigger.eventWaitName)', invokes no job and is not delayed")
            }
            try eventWait.validate()
        }
    }

    /// Checks a name or id: something besides spaces, tabs and line breaks, at most `maximum`
    /// characters (Unicode code points, as JSON Schema's `maxLength` counts; `docs/openapi.yaml`
    /// states the same rule as `pattern: '[^ \t\n\r]'` and `maxLength`).
    public static func requireText(_ value: String, path: String, what: String, maximum: Int) throws(ValidationError) {
        guard value.unicodeScalars.contains(where: { !" \t\n\r".unicodeScalars.contains($0) }) else {
            throw ValidationError(path: path, message: "\(what) must not be empty (or only spaces and line breaks)")
        }
        let length = value.unicodeScalars.count
        guard length <= maximum else {
            throw ValidationError(path: path, message: "\(what) is \(length) characters long; the limit is \(maximum)")
        }
    }
}

extension EventEnvelope {
    /// Decodes and validates an envelope from a Kafka record value or an HTTP body.
    /// - Throws: `ValidationError` (`malformed_json` or `invalid_field`) that says what and where.
    public static func decode(from data: some DataProtocol, maxDepth: Int = Limits.default.nestingDepth) throws(ValidationError) -> EventEnvelope {
        let envelope = try BatonJSON.decodeDocument(EventEnvelope.self, from: data, maxDepth: maxDepth)
        try envelope.validate()
        return envelope
    }
}
