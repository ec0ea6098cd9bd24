import BatonProtocol
import Foundation

// What each page shows, built from the APIs' answers by pure functions (unit-tested); the
// templates in Templates.swift only lay it out.

/// How the dashboard writes times and JSON.
enum Format {
    static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false).dateSeparator(.dash).timeSeparator(.colon))
    }

    /// A duration in the unit a person reads best: `850 ms`, `12.4 s`, `3 min 05 s`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        return String(format: "%d min %02d s", whole / 60, whole % 60)
    }

    static func json(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    static func isActive(_ status: RunStatus) -> Bool { !status.isTerminal }
}

/// A row of the runs page.
struct RunRow: Sendable {
    var id: String
    var jobId: String
    var jobVersion: String
    var status: String
    var eventName: String
    var eventId: String
    var createdAt: String
    var duration: String
    var replayOf: String
    var isReplay: Bool

    init(_ run: RunDetails, now: Date = Date()) {
        id = run.id
        jobId = run.jobId
        jobVersion = run.jobVersion
        status = run.status.rawValue
        eventName = run.event.name
        eventId = run.event.id
        createdAt = Format.time(run.createdAt)
        duration = Format.duration((run.completedAt ?? now).timeIntervalSince(run.createdAt))
        replayOf = run.replayOf ?? ""
        isReplay = run.replayOf != nil
    }
}

/// A task in the run page's tree, with its children grouped: siblings whose times overlap ran
/// in parallel and are shown side by side.
struct TaskNode: Sendable {
    var id: String
    var key: String
    var name: String
    /// Whether the key is shown beside the name (a task named apart from its key).
    var showKey: Bool
    var status: String
    var attempts: Int
    var hasRetries: Bool
    var error: String
    var hasError: Bool
    var output: String
    var hasOutput: Bool
    var waitUntil: String
    var isWait: Bool
    var startedAt: String
    var duration: String
    var groups: [TaskGroup]
    var hasChildren: Bool
}

/// Children of one task (or the run's top-level tasks) that ran one after the other
/// (`parallel == false`, one task) or at the same time (`parallel == true`, side by side).
struct TaskGroup: Sendable {
    var parallel: Bool
    var tasks: [TaskNode]
}

/// A bar of the run page's timeline.
struct TimelineBar: Sendable {
    var name: String
    var depth: Int
    var status: String
    /// Where the bar starts and how wide it is, in percent of the run's span.
    var offset: String
    var width: String
    var startedAt: String
    var duration: String
}

enum TaskTree {
    /// The run's tasks as a tree (children under their parent task), siblings in start order and
    /// grouped where they overlapped in time.
    static func build(_ tasks: [RunDetails.TaskDetails], now: Date = Date()) -> [TaskGroup] {
        let known = Set(tasks.map(\.id))
        let children = Dictionary(grouping: tasks) { task in task.parentId.flatMap { known.contains($0) ? $0 : nil } ?? "" }
        func node(_ task: RunDetails.TaskDetails) -> TaskNode {
            let groups = group(children[task.id] ?? [])
            let end = task.completedAt ?? (task.status == .running ? now : nil)
            return TaskNode(
                id: task.id, key: task.key, name: task.name ?? task.key, showKey: task.name.map { $0 != task.key } ?? false, status: task.status.rawValue,
                attempts: task.attempts, hasRetries: task.attempts > 1,
                error: task.error ?? "", hasError: task.error != nil,
                output: Format.json(task.output), hasOutput: task.output != nil,
                waitUntil: Format.time(task.waitUntil), isWait: task.waitUntil != nil,
                startedAt: Format.time(task.startedAt),
                duration: task.startedAt.flatMap { start in end.map { Format.duration($0.timeIntervalSince(start)) } } ?? "",
                groups: groups, hasChildren: !groups.isEmpty)
        }
        func group(_ siblings: [RunDetails.TaskDetails]) -> [TaskGroup] {
            let ordered = siblings.sorted { ($0.startedAt ?? .distantFuture, $0.id) < ($1.startedAt ?? .distantFuture, $1.id) }
            var groups: [(end: Date, tasks: [RunDetails.TaskDetails])] = []
            for task in ordered {
                let start = task.startedAt ?? .distantFuture
                let end = task.completedAt ?? now
                if let last = groups.last, start < last.end {
                    groups[groups.count - 1].tasks.append(task)
                    groups[groups.count - 1].end = max(last.end, end)
                } else {
                    groups.append((end, [task]))
                }
            }
            return groups.map { TaskGroup(parallel: $0.tasks.count > 1, tasks: $0.tasks.map(node)) }
        }
        return group(children[""] ?? [])
    }

    /// One bar per started task, in tree order, placed on the span from the run's creation to
    /// its end (or now).
    static func timeline(_ run: RunDetails, now: Date = Date()) -> [TimelineBar] {
        let start = run.createdAt
        let span = max((run.completedAt ?? now).timeIntervalSince(start), 0.001)
        var bars: [TimelineBar] = []
        func walk(_ groups: [TaskGroup], depth: Int) {
            for node in groups.flatMap(\.tasks) {
                if let task = run.tasks.first(where: { $0.id == node.id }), let started = task.startedAt {
                    let end = task.completedAt ?? (task.status == .running ? now : started)
                    let offset = min(max(started.timeIntervalSince(start) / span, 0), 1) * 100
                    let width = max(min(end.timeIntervalSince(started) / span * 100, 100 - offset), 0.4)
                    bars.append(TimelineBar(name: node.name, depth: depth, status: node.status,
                                            offset: String(format: "%.2f", offset), width: String(format: "%.2f", width),
                                            startedAt: String(format: "+%@", Format.duration(started.timeIntervalSince(start))),
                                            duration: node.duration))
                }
                walk(node.groups, depth: depth + 1)
            }
        }
        walk(build(run.tasks, now: now), depth: 0)
        return bars
    }
}

/// A row of the jobs page: the registration (dispatcher) and its runs (task-result service).
struct JobRow: Sendable {
    var id: String
    var name: String
    var trigger: String
    var filter: String
    var hasFilter: Bool
    var versions: String
    var enabled: String
    /// The job's concurrency limit and flow control, in words (`—` when none).
    var limits: String
    var lastRun: String
    var lastRunId: String
    var lastRunStatus: String
    var hasLastRun: Bool
    var counts: [StatusCount]
    var total: Int

    init(_ job: JobRegistration, stats: JobStats?) {
        id = job.slug
        name = job.name
        trigger = job.trigger.summary
        let filters = [job.trigger.filter.map { "payload \(Self.describe($0))" }, job.trigger.contextFilter.map { "context \(Self.describe($0))" }]
            .compactMap { $0 }
        filter = filters.joined(separator: "; ")
        hasFilter = !filters.isEmpty
        let seen = stats?.versions.map(\.version) ?? []
        versions = (seen.contains(job.version) ? seen : [job.version] + seen).joined(separator: ", ")
        enabled = job.isEnabled ? "yes" : "no"
        limits = Self.limits(concurrency: job.concurrencyLimit, flow: job.flowControl)
        lastRun = Format.time(stats?.lastRun?.createdAt)
        lastRunId = stats?.lastRun?.id ?? ""
        lastRunStatus = stats?.lastRun?.status.rawValue ?? ""
        hasLastRun = stats?.lastRun != nil
        counts = RunStatus.all.compactMap { status in
            stats?.runsByStatus[status.rawValue].map { StatusCount(status: status.rawValue, count: $0) }
        }
        total = stats?.runs ?? 0
    }

    /// E.g. `2 at once per account (shared: user-data); throttle 2 per 4 s per user`.
    static func limits(concurrency: ConcurrencyLimit?, flow: FlowControl?) -> String {
        var parts: [String] = []
        if let concurrency {
            parts.append("\(concurrency.limit) at once" + (concurrency.key.map { " per \($0)" } ?? "") + (concurrency.id.map { " (shared: \($0))" } ?? ""))
        }
        if let flow {
            let key = flow.key.map { " per \($0)" } ?? ""
            let words = switch flow.kind {
            case .rateLimit: "rate limit \(flow.limit) per \(flow.periodSeconds) s\(key)"
            case .throttle: "throttle \(flow.limit) per \(flow.periodSeconds) s\(key)"
            case .debounce: "debounce \(flow.periodSeconds) s\(key)"
            }
            parts.append(words)
        }
        return parts.isEmpty ? "—" : parts.joined(separator: "; ")
    }

    static func describe(_ filter: EventFilter) -> String {
        (try? BatonJSON.encoder.encode(filter)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Whether `query` (any case) appears in the job's id, name or trigger.
    func matches(_ query: String) -> Bool {
        query.isEmpty || [id, name, trigger, filter].contains { $0.localizedCaseInsensitiveContains(query) }
    }
}

struct StatusCount: Sendable {
    var status: String
    var count: Int
}

/// A row of the events page.
struct EventRow: Sendable {
    var id: String
    var name: String
    var source: String
    var timestamp: String
    var receivedAt: String
    var dispatched: Bool
    var deliverAt: String
    var delayedStatus: String
    var isPending: Bool
    var payload: String

    init(_ event: EventListing) {
        id = event.id
        name = event.name
        source = event.source
        timestamp = Format.time(event.timestamp)
        receivedAt = Format.time(event.receivedAt)
        dispatched = event.dispatched
        deliverAt = Format.time(event.deliverAt)
        delayedStatus = event.delayedStatus ?? ""
        isPending = event.delayedStatus == "PENDING"
        payload = event.payload.map { Format.json($0) } ?? ""
    }
}

/// The runs page's filters, from its query string (the API's parameters).
struct RunsFilter: Sendable {
    var job = ""
    var statuses: Set<RunStatus> = []
    var createdFrom = ""
    var createdTo = ""
    var eventId = ""
    var cursor = ""

    /// The filters from query parameters; a `datetime-local` time without a zone is read as UTC.
    /// - Throws: `ValidationError` naming a parameter that is not a status or time.
    init(query: [(String, String)]) throws(ValidationError) {
        for (name, value) in query where !value.isEmpty {
            switch name {
            case "job": job = value
            case "status":
                for part in value.split(separator: ",") {
                    let status = RunStatus(rawValue: String(part))
                    guard RunStatus.all.contains(status) else {
                        throw ValidationError(path: "status", message: "'\(part)' is not a run status")
                    }
                    statuses.insert(status)
                }
            case "createdFrom": createdFrom = value
            case "createdTo": createdTo = value
            case "eventId": eventId = value
            case "cursor": cursor = value
            default: continue
            }
        }
        _ = try Self.date(createdFrom, "createdFrom")
        _ = try Self.date(createdTo, "createdTo")
    }

    init() {}

    static func date(_ text: String, _ name: String) throws(ValidationError) -> Date? {
        guard !text.isEmpty else { return nil }
        for candidate in [text, text + "Z", text + ":00Z"] {
            if let date = try? Date(candidate, strategy: .iso8601) { return date }
        }
        throw ValidationError(path: name, message: "'\(text)' is not a time (ISO 8601, e.g. 2026-12-02T09:30)")
    }

    /// The query string of these filters, with `cursor` replaced.
    func query(cursor: String?) -> String {
        var items: [URLQueryItem] = []
        if !job.isEmpty { items.append(.init(name: "job", value: job)) }
        for status in RunStatus.all where statuses.contains(status) { items.append(.init(name: "status", value: status.rawValue)) }
        if !createdFrom.isEmpty { items.append(.init(name: "createdFrom", value: createdFrom)) }
        if !createdTo.isEmpty { items.append(.init(name: "createdTo", value: createdTo)) }
        if !eventId.isEmpty { items.append(.init(name: "eventId", value: eventId)) }
        if let cursor { items.append(.init(name: "cursor", value: cursor)) }
        var components = URLComponents()
        components.queryItems = items
        return components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B") ?? ""
    }

    var statusChoices: [StatusChoice] {
        RunStatus.all.map { StatusChoice(status: $0.rawValue, checked: statuses.contains($0)) }
    }
}

struct StatusChoice: Sendable {
    var status: String
    var checked: Bool
}
