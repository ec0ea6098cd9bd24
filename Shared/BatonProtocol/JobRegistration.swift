import Foundation

/// What starts a job: matching events (`event`), a schedule (`interval`, `cron`), or only
/// `POST /api/v1/jobs/{id}/invoke` (`invoke`).
public struct JobTrigger: Codable, Sendable, Hashable {
    /// The event name scheduled runs carry.
    public static let scheduledEventName = "baton.scheduled"
    /// The event name invoked runs carry.
    public static let invokedEventName = "baton.invoke"
    /// The name of the records that register a run's wait for an event (`io.waitForEvent`).
    public static let eventWaitName = "baton.eventWait"

    /// Trigger kind: `event`, `interval`, `cron` or `invoke`.
    public var type: String
    /// For `event` triggers: the event name to match exactly.
    public var eventName: String
    /// For `event` triggers: when set, only events from this source match.
    public var source: String?
    /// When set, only events whose payload passes it match.
    public var filter: EventFilter?
    /// When set, only events whose context passes it match.
    public var contextFilter: EventFilter?
    /// For `interval` triggers: seconds between runs.
    public var intervalSeconds: Int?
    /// For `cron` triggers: a 5-field cron expression, matched against the wall clock of
    /// `timeZone`.
    public var cron: String?
    /// For `cron` triggers: an IANA time zone name (`Europe/Berlin`, one of
    /// ``knownTimeZoneNames``); unset, UTC. Daylight-saving changes: see `CronSchedule`.
    public var timeZone: String?

    public init(type: String, eventName: String, source: String? = nil, filter: EventFilter? = nil, contextFilter: EventFilter? = nil,
                intervalSeconds: Int? = nil, cron: String? = nil, timeZone: String? = nil) {
        self.type = type
        self.eventName = eventName
        self.source = source
        self.filter = filter
        self.contextFilter = contextFilter
        self.intervalSeconds = intervalSeconds
        self.cron = cron
        self.timeZone = timeZone
    }

    /// The time zone names a cron trigger accepts: IANA zone and link names (``TimeZoneNames``,
    /// the list `docs/openapi.yaml` gives), `UTC` among them.
    public static let knownTimeZoneNames: Set<String> = Set(TimeZoneNames.all)

    /// A run every `seconds` seconds.
    public static func interval(seconds: Int) -> JobTrigger {
        JobTrigger(type: "interval", eventName: scheduledEventName, intervalSeconds: seconds)
    }

    /// A run at every time `expression` (5-field cron) matches on the wall clock of
    /// `timeZone` (an IANA name; `nil`: UTC).
    public static func cron(_ expression: String, timeZone: String? = nil) -> JobTrigger {
        JobTrigger(type: "cron", eventName: scheduledEventName, cron: expression, timeZone: timeZone)
    }

    /// Runs only when invoked (`POST /api/v1/jobs/{id}/invoke`, `BatonClient.invoke`); no
    /// event matches it. (Every job can be invoked; this trigger is for jobs that only are.)
    public static func invoke() -> JobTrigger {
        JobTrigger(type: "invoke", eventName: invokedEventName)
    }

    /// The cron trigger's time zone, when it names a known one (see ``knownTimeZoneNames``).
    var zone: TimeZone? {
        guard let timeZone, Self.knownTimeZoneNames.contains(timeZone) else { return nil }
        return TimeZone(identifier: timeZone)
    }

    /// One line saying what starts runs (filters aside): `event user.created from crm`,
    /// `every 60 s`, `cron 0 9 * * 1-5 (Europe/Berlin)`, `invoke only`.
    public var summary: String {
        switch type {
        case "interval": "every \(intervalSeconds ?? 0) s"
        case "cron": "cron \(cron ?? "") (\(timeZone ?? "UTC"))"
        case "invoke": "invoke only"
        default: "event \(eventName)" + (source.map { " from \($0)" } ?? "")
        }
    }

    /// Whether this is a schedule (`interval` or `cron`).
    public var isSchedule: Bool { type == "interval" || type == "cron" }

    /// The first scheduled time strictly after `date`, for schedules. Interval ticks fall on
    /// multiples of the interval since 1970 (UTC), so every dispatcher computes the same ticks.
    public func nextTick(after date: Date) -> Date? {
        switch type {
        case "interval":
            intervalSeconds.map { seconds in
                let interval = Double(seconds)
                return Date(timeIntervalSince1970: ((date.timeIntervalSince1970 / interval).rounded(.down) + 1) * interval)
            }
        case "cron": cron.flatMap { try? CronSchedule(parsing: $0) }?.next(after: date, in: zone ?? CronSchedule.utc)
        default: nil
        }
    }

    /// Checks the fields of this trigger's type.
    /// - Throws: `ValidationError` naming the offending field.
    public func validate() throws(ValidationError) {
        switch type {
        case "event":
            try EventEnvelope.requireText(eventName, path: "$.trigger.eventName", what: "trigger event name", maximum: EventEnvelope.maximumNameLength)
        case "interval":
            guard let seconds = intervalSeconds, (1...2_592_000).contains(seconds) else {
                throw ValidationError(path: "$.trigger.intervalSeconds", message: "an interval trigger needs intervalSeconds between 1 and 2592000 (30 days)")
            }
        case "cron":
            guard let cron else { throw ValidationError(path: "$.trigger.cron", message: "a cron trigger needs a cron expression") }
            _ = try CronSchedule(parsing: cron)
            if let timeZone, zone == nil {
                throw ValidationError(path: "$.trigger.timeZone", message: "'\(timeZone)' is not a time zone name; use an IANA name such as 'Europe/Berlin' or 'America/New_York' (exact case), or 'UTC'")
            }
        case "invoke":
            break
        default:
            throw ValidationError(path: "$.trigger.type", message: "trigger type '\(type)' is not supported; use 'event', 'interval', 'cron' or 'invoke'")
        }
    }

    /// An event trigger on `name` (and `source`, payload `filter` and `contextFilter`, when given).
    public static func event(name: String, source: String? = nil, filter: EventFilter? = nil, contextFilter: EventFilter? = nil) -> JobTrigger {
        JobTrigger(type: "event", eventName: name, source: source, filter: filter, contextFilter: contextFilter)
    }

    /// Whether `event` starts a run of a job with this trigger.
    public func matches(_ event: EventEnvelope) -> Bool {
        guard type == "event", event.name == eventName else { return false }
        if let source, source != event.source { return false }
        if let filter, !filter.matches(event.payload) { return false }
        if let contextFilter, !contextFilter.matches(event.context) { return false }
        return true
    }
}

/// A job definition as a job service announces it on the compacted `baton.jobs` topic.
public struct JobRegistration: Codable, Sendable, Hashable, TenantOwned {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    /// The job id as written by its author.
    public var id: String
    /// The slug of `id`; the job's identity everywhere in Baton.
    public var slug: String
    /// Human-readable name.
    public var name: String
    /// Semantic version of the job's code; runs record the version they were created with.
    public var version: String
    /// What starts a run.
    public var trigger: JobTrigger
    /// When the job service registered it.
    public var registeredAt: Date
    /// The project the job belongs to (absent: `default`). A slug belongs to one tenant: a
    /// registration of the same slug from another tenant is a conflict and is refused.
    public var project: String?
    /// The environment the job belongs to (absent: `default`).
    public var environment: String?
    /// Whether events, schedules and invocations start runs (absent: `true`). A disabled job
    /// gets no runs; enabling it again does not replay what came meanwhile.
    public var enabled: Bool?
    /// The least severe `io.logger` level whose lines are stored (absent: `debug`, all).
    public var logLevel: JobLogLevel?
    /// At most so many runs per period and payload key from events (absent: no limit).
    public var flowControl: FlowControl?
    /// At most so many runs executing at once, per payload key, for the job or a limit shared
    /// with other jobs (absent: no limit).
    public var concurrencyLimit: ConcurrencyLimit?

    /// Whether the job takes new runs (``enabled``, `true` when absent).
    public var isEnabled: Bool { enabled ?? true }

    /// Builds a registration, slugifying `id` and checking `version`.
    /// - Throws: `ValidationError` for an id without letters or digits, an empty name, or an
    ///   invalid semantic version.
    public init(id: String, name: String, version: String, trigger: JobTrigger, registeredAt: Date = Date(),
                tenant: Tenant = .default, enabled: Bool? = nil, logLevel: JobLogLevel? = nil,
                flowControl: FlowControl? = nil, concurrencyLimit: ConcurrencyLimit? = nil) throws(ValidationError) {
        self.schemaVersion = Self.currentSchemaVersion
        self.id = id
        self.slug = try Slug.make(id)
        self.name = name
        self.version = version
        self.trigger = trigger
        self.registeredAt = registeredAt
        self.tenant = tenant
        self.enabled = enabled
        self.logLevel = logLevel
        self.flowControl = flowControl
        self.concurrencyLimit = concurrencyLimit
        try validate()
    }

    enum CodingKeys: String, CodingKey { case schemaVersion, id, slug, name, version, trigger, registeredAt, project, environment, enabled, logLevel, flowControl,
                                       concurrencyLimit }

    /// Decodes a registration; `schemaVersion` defaults to 1 and `registeredAt` to now, so
    /// tools in other languages need not send them.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? Self.currentSchemaVersion
        self.id = try container.decode(String.self, forKey: .id)
        self.slug = try container.decode(String.self, forKey: .slug)
        self.name = try container.decode(String.self, forKey: .name)
        self.version = try container.decode(String.self, forKey: .version)
        self.trigger = try container.decode(JobTrigger.self, forKey: .trigger)
        self.registeredAt = try container.decodeIfPresent(Date.self, forKey: .registeredAt) ?? Date()
        self.project = try container.decodeIfPresent(String.self, forKey: .project)
        self.environment = try container.decodeIfPresent(String.self, forKey: .environment)
        self.enabled = try container.decodeIfPresent(Bool.self, forKey: .enabled)
        self.logLevel = try container.decodeIfPresent(JobLogLevel.self, forKey: .logLevel)
        self.flowControl = try container.decodeIfPresent(FlowControl.self, forKey: .flowControl)
        self.concurrencyLimit = try container.decodeIfPresent(ConcurrencyLimit.self, forKey: .concurrencyLimit)
    }

    /// The Kafka key of the registration on the compacted jobs topic: one record per tenant and
    /// slug, so compaction never lets one tenant's registration replace another's.
    public var recordKey: String { tenant.scoped(slug) }

    /// Whether `event` starts a run of this job: the job is enabled, of the event's tenant, and
    /// its trigger matches.
    public func matches(_ event: EventEnvelope) -> Bool {
        isEnabled && tenant == event.tenant && trigger.matches(event)
    }

    /// Checks every field.
    /// - Throws: `ValidationError` naming the first offending field.
    public func validate() throws(ValidationError) {
        let expected = try Slug.make(id)
        guard slug == expected else {
            throw ValidationError(path: "$.slug", message: "slug '\(slug)' does not match job id '\(id)' (expected '\(expected)')")
        }
        guard name.unicodeScalars.contains(where: { !" \t\n\r".unicodeScalars.contains($0) }) else {
            throw ValidationError(path: "$.name", message: "job name must not be empty (or only spaces and line breaks)")
        }
        _ = try SemanticVersion(parsing: version)
        try trigger.validate()
        try Tenant.validate(project: project, environment: environment, path: "$")
        if let flowControl {
            guard trigger.type == "event" else {
                throw ValidationError(path: "$.flowControl", message: "flow control limits runs of an event trigger; this trigger is '\(trigger.type)'")
            }
            try flowControl.validate()
        }
        try concurrencyLimit?.validate()
    }

    /// Decodes and validates a registration.
    /// - Throws: `ValidationError` that says what and where.
    public static func decode(from data: some DataProtocol, maxDepth: Int = Limits.default.nestingDepth) throws(ValidationError) -> JobRegistration {
        let registration = try BatonJSON.decodeDocument(JobRegistration.self, from: data, maxDepth: maxDepth)
        try registration.validate()
        return registration
    }
}

/// The levels of `io.logger`, least severe first: a job's ``JobRegistration/logLevel`` keeps
/// the lines at or above it.
public enum JobLogLevel: String, Codable, Sendable, CaseIterable, Comparable {
    case debug, log, info, warn, error

    /// The level of a stored log line's `level` (`DEBUG`, `LOG`, `INFO`, `WARN`, `ERROR`).
    public init?(lineLevel: String) { self.init(rawValue: lineLevel.lowercased()) }

    public static func < (left: JobLogLevel, right: JobLogLevel) -> Bool {
        allCases.firstIndex(of: left)! < allCases.firstIndex(of: right)!
    }
}

/// The payload of a scheduled run.
public struct ScheduledPayload: Codable, Sendable, Hashable {
    /// The scheduled time of this run.
    public var ts: Date
    /// The scheduled time of the previous run, if any.
    public var lastTimestamp: Date?
    public init(ts: Date, lastTimestamp: Date?) {
        self.ts = ts
        self.lastTimestamp = lastTimestamp
    }
}
