import BatonProtocol
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A router for a Baton service's routes: requests are traced (continuing a `traceparent`
/// header), counted and timed (Hummingbird's `TracingMiddleware` and `MetricsMiddleware`) and
/// logged at debug level. Middleware applies to the routes added after
/// it, so start from this router.
public func serviceRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: JSONErrorsMiddleware())
    router.add(middleware: TracingMiddleware())
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))
    return router
}

/// The HTTP application of a Baton service: `router` plus `GET /health` and `GET /metrics`
/// (Prometheus, see ``BatonMetrics``), listening on `http`,
/// running `services` beside the server (they shut down last-first, after the server), and
/// reloading `keys` when its file changes (see ``APIKeyRing/reloader(every:logger:)``).
public func serviceApplication(
    name: String, http: HTTPListenerConfiguration, router: Router<BasicRequestContext>,
    services: [any Service], keys: APIKeyRing? = nil, logger: Logger
) -> some ApplicationProtocol {
    let services = services + (keys?.reloader(logger: logger).map { [$0] } ?? [])
    router.get("/health") { _, _ -> Response in
        guard let problem = BatonHealth.problem else {
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
        return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"],
                        body: .init(byteBuffer: ByteBuffer(string: "unhealthy: \(problem)")))
    }
    BatonMetrics.register(on: router)
    refuseOtherMethods(on: router)
    return Application(
        router: router,
        configuration: .init(address: .hostname(http.host, port: http.port), serverName: name),
        // A failing service turns /health unhealthy and arms the watchdog at once.
        services: services.map { FailStopService(base: $0, deadline: nil, logger: logger) },
        logger: logger)
}

/// Answers a request for a known path with a method it does not serve (`TRACE`, `QUERY`, …)
/// `405 Method Not Allowed` with `Allow` and the JSON error, instead of the router's 404: add it
/// once every route is on `router` (the router runs its middleware for requests no route takes).
func refuseOtherMethods(on router: Router<BasicRequestContext>) {
    let routes = Dictionary(grouping: router.routes, by: { "\($0.path)" })
        .map { (segments: $0.key.split(separator: "/").map(String.init), allow: Set($0.value.map(\.method.rawValue)).sorted().joined(separator: ", ")) }
    router.add(middleware: MethodNotAllowedMiddleware(routes: routes))
}

struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    /// Each path's segments (`:name` matches any one) and the methods it serves.
    let routes: [(segments: [String], allow: String)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let segments = request.uri.path.split(separator: "/")
        guard let route = routes.first(where: { route in
            route.segments.count == segments.count
                && zip(route.segments, segments).allSatisfy { $0.hasPrefix(":") || $0 == "*" || $0 == $1 }
        }) else {
            return try await next(request, context)
        }
        let body = APIErrorBody(error: .init(code: "method_not_allowed",
                                             message: "\(request.method) is not served at \(request.uri.path); use \(route.allow)", path: nil))
        return Response(status: .methodNotAllowed, headers: [.contentType: "application/json", .allow: route.allow],
                        body: .init(byteBuffer: ByteBuffer(bytes: try BatonJSON.encoder.encode(body))))
    }
}

/// Turns the router's own errors (no route: 404; Hummingbird's 400s and 413s) into the JSON
/// error every Baton API answers, `{"error": {"code", "message"}}`.
struct JSONErrorsMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let code = switch error.status {
            case .notFound: "not_found"
            case .contentTooLarge: "too_large"
            case .badRequest: "bad_request"
            default: "http_\(error.status.code)"
            }
            let message = error.body ?? (error.status == .notFound ? "no route \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            let body = APIErrorBody(error: .init(code: code, message: message, path: nil))
            var headers = error.headers
            headers[.contentType] = "application/json"
            return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try BatonJSON.encoder.encode(body))))
        }
    }
}
