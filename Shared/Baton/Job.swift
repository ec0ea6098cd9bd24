import BatonProtocol
import Foundation

/// A job: code that runs when an event matching its trigger arrives.
///
/// ```swift
/// let welcome = Job(id: "new-user", name: "New user", version: "1.0.0",
///                   trigger: .event(name: "user.created", payload: NewUser.self)) { user, io, ctx in
///     let profile = try await io.runTask("look up user") { _ in try await lookUp(user.id) }
///     try await io.wait("give them a moment", seconds: 5)
///     try await io.runTask("send welcome e-mail") { _ in try await mail(profile) }
///     return "welcomed \(profile.name)"
/// }
/// ```
///
/// - Important: `run` is called again for every slice of a run (after each `io.wait`, restart or
///   retry). Put side effects inside `io.runTask`; code outside tasks re-runs on every resume.
///   Keep task keys stable across deploys of one job version.
public struct Job<Payload: Decodable & Sendable, Output: Encodable & Sendable>: Sendable {
    /// The job id as written; Baton identifies the job by its slug.
    public let id: String
    /// Human-readable name.
    public let name: String
    /// Semantic version of this job's code.
    public let version: String
    /// What starts a run.
    public let trigger: Trigger<Payload>
    /// Whether it takes runs, and which log lines it keeps.
    public let options: JobOptions
    /// Called once when a run completes, with its output (see ``init(id:name:version:trigger:options:onSuccess:onFailure:run:)``).
    public let onSuccess: (@Sendable (Output, JobContext) async throws -> Void)?
    /// Called once when a run fails, with its error.
    public let onFailure: (@Sendable (String, JobContext) async throws -> Void)?
    /// The job's code.
    public let run: @Sendable (Payload, IO, JobContext) async throws -> Output

    /// - Parameters:
    ///   - onSuccess: called once per run that completes, with its output, before the run is
    ///     recorded completed. It is a keyed task of the run (`baton.onSuccess`): a replay
    ///     never calls it again once it returned. An error it throws is recorded on that task
    ///     and does not change the run's outcome.
    ///   - onFailure: the same for a run that fails (its code threw, no retry left), with the
    ///     error (`baton.onFailure`).
    public init(
        id: String, name: String, version: String, trigger: Trigger<Payload>, options: JobOptions = JobOptions(),
        onSuccess: (@Sendable (Output, JobContext) async throws -> Void)? = nil,
        onFailure: (@Sendable (String, JobContext) async throws -> Void)? = nil,
        run: @escaping @Sendable (Payload, IO, JobContext) async throws -> Output
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.trigger = trigger
        self.options = options
        self.onSuccess = onSuccess
        self.onFailure = onFailure
        self.run = run
    }
}

/// Options of a job, registered with it.
public struct JobOptions: Sendable {
    /// `false`: events, schedules and invocations start no runs (runs already started go on).
    /// Enabling the job again does not replay what came meanwhile.
    public var enabled: Bool
    /// The least severe `io.logger` level whose lines are stored (`.debug`: all).
    public var logLevel: JobLogLevel
    /// At most so many runs per period and payload key from events: over it, `.rateLimit`
    /// starts no run, `.throttle` starts it later (``FlowControl``). Invocations are not limited.
    public var flowControl: FlowControl?
    /// At most so many runs execute at once: `3` for the job, `.limit(1, key: "userId")` per
    /// payload value, `.shared("emails", limit: 5)` across every job naming `emails`
    /// (``ConcurrencyLimit``). The others wait `QUEUED` and start in turn; a run gives its slot
    /// back while it waits. The limit holds across every instance of the job's service.
    public var concurrencyLimit: ConcurrencyLimit?

    public init(enabled: Bool = true, logLevel: JobLogLevel = .debug, flowControl: FlowControl? = nil,
                concurrencyLimit: ConcurrencyLimit? = nil) {
        self.enabled = enabled
        self.logLevel = logLevel
        self.flowControl = flowControl
        self.concurrencyLimit = concurrencyLimit
    }
}

/// What starts a job's runs: events named `name` (from `source`, when given) whose payload
/// decodes into `Payload`, or a schedule.
public struct Trigger<Payload: Decodable & Sendable>: Sendable {
    public var name: String
    public var source: String?
    /// Only events whose payload passes this filter start runs (see `EventFilter`).
    public var filter: JSONValue?
    /// Only events whose context passes this filter start runs.
    public var contextFilter: JSONValue?
    /// For schedules: seconds between runs.
    public var intervalSeconds: Int?
    /// For schedules: a 5-field cron expression, on the wall clock of `timeZone`.
    public var cron: String?
    /// For cron schedules: an IANA time zone name; `nil`: UTC.
    public var timeZone: String?
    /// Whether only invoking starts runs (``invokeTrigger(payload:)``).
    public var invokeOnly = false

    /// A trigger on events named `name`, optionally only from `source` and only those whose
    /// payload and context pass `filter` and `contextFilter` (Trigger.dev v2 filter documents).
    public static func event(name: String, source: String? = nil, filter: JSONValue? = nil, contextFilter: JSONValue? = nil,
                             payload: Payload.Type = Payload.self) -> Trigger {
        Trigger(name: name, source: source, filter: filter, contextFilter: contextFilter)
    }
}

extension Trigger {
    /// Runs only when invoked with a payload (`BatonClient.invoke`, or
    /// `POST /api/v1/jobs/{id}/invoke`); no event starts it.
    public static func invokeTrigger(payload: Payload.Type = Payload.self) -> Trigger {
        Trigger(name: JobTrigger.invokedEventName, invokeOnly: true)
    }
}

extension Trigger where Payload == ScheduledPayload {
    /// A run every `seconds` seconds (durable across restarts; after downtime one run catches
    /// up, then the schedule goes on from now).
    public static func intervalTrigger(seconds: Int) -> Trigger {
        Trigger(name: JobTrigger.scheduledEventName, intervalSeconds: seconds)
    }

    /// A run at every time `expression` (standard 5-field cron) matches on the wall clock of
    /// `timeZone`, an IANA name such as `"Europe/Berlin"` (`nil`: UTC).
    ///
    /// Daylight-saving changes: a time the clocks skip fires once as they jump; a time they show
    /// twice fires the first time only.
    ///
    /// ```swift
    /// trigger: .cronTrigger("0 9 * * 1-5", timeZone: "Europe/Berlin")  // 09:00 Berlin time, weekdays
    /// ```
    public static func cronTrigger(_ expression: String, timeZone: String? = nil) -> Trigger {
        Trigger(name: JobTrigger.scheduledEventName, cron: expression, timeZone: timeZone)
    }
}

/// What a run knows about itself.
public struct JobContext: Sendable {
    public var runId: String
    /// The job's id as written in its definition.
    public var jobId: String
    /// The job's slug.
    public var jobSlug: String
    /// The job version the run was created with.
    public var jobVersion: String
    /// The event that started the run.
    public var event: EventInfo
    /// Which execution slice of the run this is: 1 for the first, more after waits, retries,
    /// yields and restarts. (Code outside tasks runs once per slice.)
    public var attempt: Int
    /// The organization the job service belongs to (from its configuration).
    public var organization: String
    /// The project the job service belongs to (from its configuration).
    public var project: String

    public struct EventInfo: Sendable {
        public var id: String
        public var name: String
        public var timestamp: Date
        public var context: JSONValue?
    }
}

/// A job with its types erased, as a `JobWorker` holds it.
public protocol AnyJob: Sendable {
    /// The registration published on the jobs topic.
    func registration() throws(ValidationError) -> JobRegistration
    /// Decodes `payload`, runs the job, and encodes its output.
    /// - Throws: `InvalidPayload` when the payload does not decode; whatever the job throws.
    func execute(payload: JSONValue, io: IO, context: JobContext) async throws -> JSONValue
}

/// The event payload does not decode into the job's payload type.
public struct InvalidPayload: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "payload does not match the job's payload type at \(path): \(message)" }
}

extension Job: AnyJob {
    public func registration() throws(ValidationError) -> JobRegistration {
        var registration = try triggerRegistration()
        // Defaults stay absent: registrations read the same by services that predate the options.
        registration.enabled = options.enabled ? nil : false
        registration.logLevel = options.logLevel == .debug ? nil : options.logLevel
        registration.flowControl = options.flowControl
        registration.concurrencyLimit = options.concurrencyLimit
        try registration.validate()
        return registration
    }

    private func triggerRegistration() throws(ValidationError) -> JobRegistration {
        if trigger.invokeOnly {
            return try JobRegistration(id: id, name: name, version: version, trigger: .invoke())
        }
        if let seconds = trigger.intervalSeconds {
            return try JobRegistration(id: id, name: name, version: version, trigger: .interval(seconds: seconds))
        }
        if let cron = trigger.cron {
            return try JobRegistration(id: id, name: name, version: version, trigger: .cron(cron, timeZone: trigger.timeZone))
        }
        return try JobRegistration(id: id, name: name, version: version, trigger: .event(
            name: trigger.name, source: trigger.source,
            filter: try trigger.filter.map { filter throws(ValidationError) in try EventFilter(filter, path: "$.trigger.filter") },
            contextFilter: try trigger.contextFilter.map { filter throws(ValidationError) in try EventFilter(filter, path: "$.trigger.contextFilter") }))
    }

    public func execute(payload: JSONValue, io: IO, context: JobContext) async throws -> JSONValue {
        let decoded: Payload
        do {
            decoded = try payload.decode(as: Payload.self)
        } catch {
            let (path, message) = BatonJSON.describe(error)
            let invalid = InvalidPayload(path: path, message: message)
            if let onFailure { try await Self.hook("baton.onFailure", io) { try await onFailure(invalid.description, context) } }
            throw invalid
        }
        let output: Output
        do {
            output = try await run(decoded, io, context)
        } catch {
            // A failure of the run, not the end of the slice or the worker stopping (as SliceRunner decides).
            if let onFailure, !isBatonInterrupt(error), !(error is CancellationError), !(error is CheckpointNotDurable),
               !(error is SliceCancelled), !Task.isCancelled, io.slice.raisedInterrupt == nil {
                try await Self.hook("baton.onFailure", io) { try await onFailure("\(error)", context) }
            }
            throw error
        }
        let json = try JSONValue(encoding: output)
        if let onSuccess, io.slice.raisedInterrupt == nil {
            try await Self.hook("baton.onSuccess", io) { try await onSuccess(output, context) }
        }
        return json
    }

    /// Runs a hook once as the run's task `key`, in the slice that decided the outcome (whatever
    /// its time budget: a yield here would run the failed code again in the next slice). Its
    /// failure is recorded on the task and otherwise ignored; a fenced slice's interrupt goes
    /// through.
    private static func hook(_ key: String, _ io: IO, _ body: @escaping @Sendable () async throws -> Void) async throws {
        var options = TaskOptions(name: key)
        options.ignoresSliceBudget = true
        do {
            _ = try await io.runTask(key, options: options) { _ in
                try await body()
                return true
            }
        } catch {
            if isBatonInterrupt(error) || error is CheckpointNotDurable || error is SliceCancelled || Task.isCancelled { throw error }
        }
    }
}
