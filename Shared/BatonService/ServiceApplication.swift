import Hummingbird
import Logging
import ServiceLifecycle

/// A router for a Baton service's routes: requests are traced (continuing a `traceparent`
/// header), counted and timed (Hummingbird's `TracingMiddleware` and `MetricsMiddleware`) and
/// logged at debug level. Middleware applies to the routes added after
/// it, so start from this router.
public func serviceRouter() -> Router<BasicRequestContext> {
    let router = Router()
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
    return Application(
        router: router,
        configuration: .init(address: .hostname(http.host, port: http.port), serverName: name),
        // A failing service turns /health unhealthy and arms the watchdog at once.
        services: services.map { FailStopService(base: $0, deadline: nil, logger: logger) },
        logger: logger)
}
