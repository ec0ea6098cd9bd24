import AsyncHTTPClient
import Baton
import BatonProtocol
import BatonService
import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore

/// `baton-dashboard`: the web dashboard. It reads and acts through the services' public APIs
/// (the dispatcher's and the task-result service's, at the URLs configured, each usually a
/// load balancer over its instances) with the API key the user signed in with, so a key sees
/// exactly what the APIs show it: its own tenant.
///
/// Configuration (command-line `--key value` or environment):
/// - `http.host` / `http.port` (`HTTP_HOST`, `HTTP_PORT`), `127.0.0.1:8083`;
/// - `dispatcher.url` (`DISPATCHER_URL`), `http://127.0.0.1:8081`;
/// - `task.results.url` (`TASK_RESULTS_URL`), `http://127.0.0.1:8082`;
/// - `dashboard.secure.cookie` (`DASHBOARD_SECURE_COOKIE`), false: mark the session cookie
///   `Secure` (set it when the dashboard is served over HTTPS);
/// - `log.level` (`LOG_LEVEL`), `info`.
@main
struct DashboardMain {
    static func main() async {
        await serviceMain("baton-dashboard") {
            let config = ConfigReader.batonDefault()
            let configuration = try DashboardConfiguration(config: config)
            bootstrapLogging(level: configuration.logLevel)
            let logger = Logger(label: "baton-dashboard")
            let dashboard = try Dashboard(configuration: configuration, logger: logger)
            let app = serviceApplication(name: "baton-dashboard", http: configuration.http, router: dashboard.router(), services: [], logger: logger)
            logger.info("dashboard ready", metadata: ["url": "http://\(configuration.http.host):\(configuration.http.port)",
                                                      "dispatcher": "\(configuration.dispatcherURL)", "task-results": "\(configuration.taskResultsURL)"])
            try await runUntilSignalled([app], logger: logger)
        }
    }
}

/// Where the dashboard listens and which services it reads.
struct DashboardConfiguration: Sendable {
    var http: HTTPListenerConfiguration
    var dispatcherURL: String
    var taskResultsURL: String
    var secureCookie: Bool
    var logLevel: Logger.Level

    /// - Throws: `ValidationError` naming the key with a bad value.
    init(config: ConfigReader) throws(ValidationError) {
        http = try HTTPListenerConfiguration(config: config, defaultPort: 8083)
        dispatcherURL = try Self.url(config, "dispatcher.url", default: "http://127.0.0.1:8081")
        taskResultsURL = try Self.url(config, "task.results.url", default: "http://127.0.0.1:8082")
        secureCookie = config.bool(forKey: "dashboard.secure.cookie", default: false)
        let level = config.string(forKey: "log.level", default: "info")
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ValidationError(path: "log.level", message: "'\(level)' is not a log level (trace, debug, info, notice, warning, error, critical)")
        }
        logLevel = parsed
    }

    private static func url(_ config: ConfigReader, _ key: ConfigKey, default fallback: String) throws(ValidationError) -> String {
        let text = config.string(forKey: key, default: fallback)
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw ValidationError(path: "\(key)", message: "'\(text)' is not an http(s) URL")
        }
        return text
    }
}

/// The dashboard's pages and actions.
struct Dashboard: Sendable {
    let configuration: DashboardConfiguration
    let library: MustacheLibrary
    let logger: Logger
    static let cookie = "baton_key"
    static let pageSize = 25

    init(configuration: DashboardConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.library = try Templates.library()
        self.logger = logger
    }

    /// What a request acts with: the signed-in key, if any.
    struct Session: Sendable {
        var key: String?
        var signedIn: Bool { key != nil }
    }

    func session(_ request: Request) -> Session {
        Session(key: request.cookies[Self.cookie].flatMap { $0.value.removingPercentEncoding }.flatMap { $0.isEmpty ? nil : $0 })
    }

    func runs(_ session: Session) -> RunsClient { RunsClient(baseURL: configuration.taskResultsURL, apiKey: session.key) }
    func dispatcher(_ session: Session) -> DispatcherClient { DispatcherClient(baseURL: configuration.dispatcherURL, apiKey: session.key) }

    func router() -> Router<BasicRequestContext> {
        let router = serviceRouter()
        router.add(middleware: DashboardGuard())
        router.get("/static/app.css") { _, _ in Self.asset(Templates.css, type: "text/css; charset=utf-8") }
        router.get("/static/app.js") { _, _ in Self.asset(Templates.script, type: "text/javascript; charset=utf-8") }
        router.get("/") { _, _ in Self.redirect("/jobs") }
        router.get("/login") { request, _ in
            let reason = request.uri.queryParameters.get("reason") ?? ""
            return page("login", ["signedIn": session(request).signedIn, "message": reason, "hasMessage": !reason.isEmpty])
        }
        router.post("/login") { request, _ in try await signIn(request) }
        router.post("/logout") { _, _ in
            var response = Self.redirect("/login")
            response.setCookie(Cookie(name: Self.cookie, value: "", maxAge: 0, path: "/", secure: configuration.secureCookie, httpOnly: true, sameSite: .strict))
            return response
        }
        router.get("/jobs") { request, _ in try await guarded { try await jobsPage(request) } }
        router.get("/runs") { request, _ in try await guarded { try await runsPage(request) } }
        router.get("/runs/:id") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded { try await runPage(request, id: id) }
        }
        router.post("/runs/:id/cancel") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded {
                let result = try await runs(session(request)).cancel(runId: id)
                logger.info("run cancel requested from the dashboard", metadata: ["run.id": "\(id)", "canceled": "\(result.canceled)"])
                return Self.redirect("/runs/\(Self.path(id))")
            }
        }
        router.post("/runs/:id/replay") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded {
                let replay = try await runs(session(request)).replay(runId: id, id: "dashboard-replay-\(UUID().uuidString.lowercased())")
                return Self.redirect("/runs/\(Self.path(replay.runId))")
            }
        }
        router.get("/events") { request, _ in try await guarded { try await eventsPage(request) } }
        router.post("/events/:id/cancel") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded {
                _ = try await dispatcher(session(request)).cancelDelayedEvent(id: id)
                return Self.redirect("/events")
            }
        }
        router.post("/events/:id/cancel-runs") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded {
                _ = try await runs(session(request)).cancelRuns(eventId: id)
                return Self.redirect("/runs?eventId=\(Self.path(id))")
            }
        }
        return router
    }

    // MARK: Pages

    func jobsPage(_ request: Request) async throws -> Response {
        let session = session(request)
        let query = request.uri.queryParameters.get("q") ?? ""
        let jobs = try await dispatcher(session).jobs().sorted { $0.slug < $1.slug }
        let client = runs(session)
        let stats = try await withThrowingTaskGroup(of: (String, JobStats?).self) { group in
            for job in jobs {
                group.addTask { (job.slug, try? await client.stats(jobId: job.slug)) }
            }
            return try await group.reduce(into: [String: JobStats]()) { $0[$1.0] = $1.1 }
        }
        let rows = jobs.map { JobRow($0, stats: stats[$0.slug]) }.filter { $0.matches(query) }
        return page("jobs", ["signedIn": session.signedIn, "query": query, "hasQuery": !query.isEmpty, "rows": rows, "hasRows": !rows.isEmpty])
    }

    func runsPage(_ request: Request) async throws -> Response {
        let session = session(request)
        let pairs = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        let filter = try RunsFilter(query: pairs)
        let apiFilter = RunsClient.Filter(job: filter.job.isEmpty ? nil : filter.job,
                                          statuses: RunStatus.all.filter(filter.statuses.contains),
                                          createdFrom: try RunsFilter.date(filter.createdFrom, "createdFrom"),
                                          createdTo: try RunsFilter.date(filter.createdTo, "createdTo"),
                                          eventId: filter.eventId.isEmpty ? nil : filter.eventId, limit: Self.pageSize)
        let answer = try await runs(session).list(apiFilter, after: filter.cursor.isEmpty ? nil : filter.cursor)
        let rows = answer.runs.map { RunRow($0) }
        return page("runs", [
            "signedIn": session.signedIn, "filter": filter, "statusChoices": filter.statusChoices, "rows": rows, "hasRows": !rows.isEmpty, "pageSize": Self.pageSize,
            "live": answer.runs.contains { Format.isActive($0.status) } && filter.cursor.isEmpty,
            "hasNext": answer.nextCursor != nil, "nextQuery": filter.query(cursor: answer.nextCursor ?? ""),
            "isLaterPage": !filter.cursor.isEmpty, "firstQuery": filter.query(cursor: nil),
        ])
    }

    func runPage(_ request: Request, id: String) async throws -> Response {
        let session = session(request)
        guard let run = try await runs(session).run(id: id, includePayload: true) else {
            return problem(.notFound, "No such run", "There is no run '\(id)' that this key can see.", session: session)
        }
        let now = Date()
        let groups = TaskTree.build(run.tasks, now: now)
        let timeline = TaskTree.timeline(run, now: now)
        let logs = run.logs.map { line in
            ["time": Format.time(line.loggedAt), "level": line.level, "message": line.message,
             "properties": line.properties.map { Format.json($0).replacingOccurrences(of: "\n", with: " ") } ?? ""]
        }
        return page("run", [
            "signedIn": session.signedIn,
            "run": ["id": run.id, "jobId": run.jobId, "jobVersion": run.jobVersion, "status": run.status.rawValue,
                    "eventId": run.event.id, "eventName": run.event.name],
            "live": Format.isActive(run.status),
            "created": Format.time(run.createdAt), "completed": Format.time(run.completedAt), "hasEnded": run.completedAt != nil,
            "duration": Format.duration((run.completedAt ?? now).timeIntervalSince(run.createdAt)),
            "replayOf": run.replayOf ?? "", "isReplay": run.replayOf != nil,
            "parentRun": run.parentRun?.runId ?? "", "hasParent": run.parentRun != nil,
            "childRuns": (run.childRuns ?? []).map { ["id": $0] }, "hasChildren": !(run.childRuns ?? []).isEmpty,
            "hasStatus": run.latestStatus != nil, "statusLabel": run.latestStatus?.label ?? "",
            "statusState": run.latestStatus?.state?.rawValue ?? "", "hasStatusState": run.latestStatus?.state != nil,
            "statusData": run.latestStatus?.data.map { Format.json($0).replacingOccurrences(of: "\n", with: " ") } ?? "",
            "hasStatusData": run.latestStatus?.data != nil,
            "error": run.error ?? "", "hasError": run.error != nil,
            "output": Format.json(run.output), "hasOutput": run.output != nil,
            "groups": groups, "timeline": timeline, "hasTimeline": !timeline.isEmpty,
            "logs": logs, "hasLogs": !logs.isEmpty,
            "payload": run.payload.map { Format.json($0) } ?? "(not kept)", "context": Format.json(run.context), "hasContext": run.context != nil,
        ])
    }

    func eventsPage(_ request: Request) async throws -> Response {
        let session = session(request)
        let list = try await dispatcher(session).events(limit: 50)
        let recent = list.events.map(EventRow.init)
        let delayed = list.delayed.map(EventRow.init)
        return page("events", ["signedIn": session.signedIn, "recent": recent, "hasRecent": !recent.isEmpty,
                               "delayed": delayed, "hasDelayed": !delayed.isEmpty])
    }

    func signIn(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 16 << 10)
        struct Form: Decodable { var key: String? }
        let key = ((try? URLEncodedFormDecoder().decode(Form.self, from: String(buffer: body)))?.key ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { return Self.redirect("/login?reason=" + Self.path("Give an API key.")) }
        do {
            _ = try await dispatcher(Session(key: key)).jobs()
        } catch let error as BatonClientError where error.status == 401 {
            return Self.redirect("/login?reason=" + Self.path("The services do not know this key (or it was revoked)."))
        }
        var response = Self.redirect("/jobs")
        response.setCookie(Cookie(name: Self.cookie, value: Self.path(key), path: "/", secure: configuration.secureCookie, httpOnly: true, sameSite: .strict))
        return response
    }

    // MARK: Rendering

    /// Runs `body`, turning what the APIs answered into pages: 401 to the sign-in page, 404
    /// and 422 to a page saying so, a service out of reach to 502.
    func guarded(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as BatonClientError {
            switch error.status {
            case 401: return Self.redirect("/login?reason=" + Self.path("Sign in with an API key: the \(error.service) asks for one."))
            case 404: return problem(.notFound, "Not found", Self.message(of: error), session: nil)
            case 400, 409, 413, 422: return problem(.unprocessableContent, "Refused", Self.message(of: error), session: nil)
            default:
                logger.warning("a service failed a dashboard request", metadata: ["error": "\(error)"])
                return problem(.badGateway, "A service failed", "\(error)", session: nil)
            }
        } catch let error as ValidationError {
            return problem(.badRequest, "Check the filters", "\(error.path): \(error.message)", session: nil)
        } catch let error as HTTPClientError {
            logger.warning("a service is out of reach", metadata: ["error": "\(error)"])
            return problem(.badGateway, "A service is out of reach",
                           "The dispatcher (\(configuration.dispatcherURL)) or the task-result service (\(configuration.taskResultsURL)) did not answer: \(error). Try again in a moment.",
                           session: nil)
        }
    }

    func page(_ template: String, _ context: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(context, withTemplate: template) ?? "template \(template) missing"
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func problem(_ status: HTTPResponse.Status, _ heading: String, _ message: String, session: Session?) -> Response {
        page("problem", ["signedIn": session?.signedIn ?? true, "heading": heading, "message": message], status: status)
    }

    static func message(of error: BatonClientError) -> String {
        struct Answer: Decodable { struct Detail: Decodable { var message: String }; var error: Detail }
        return (try? JSONDecoder().decode(Answer.self, from: Data(error.body.utf8)))?.error.message ?? error.body
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `segment` percent-encoded for a URL path segment or query value (unreserved characters kept).
    static func path(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? segment
    }
}

/// Headers every dashboard page carries, and the cross-site check of its forms: a `POST` whose
/// `Origin` is another site is refused (the session cookie is also `SameSite=Strict`).
struct DashboardGuard: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .post, let origin = request.headers[.origin], let host = request.head.authority,
           URL(string: origin).map({ "\($0.host ?? "")\($0.port.map { ":\($0)" } ?? "")" }) != host {
            return Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "a form of another site (\(origin)) may not act on this dashboard\n")))
        }
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return response
    }
}
