import Hummingbird
import Logging
import ServiceLifecycle

/// The HTTP application of a Baton service: `router` plus `GET /health`, listening on `http`,
/// running `services` beside the server (they shut down last-first, after the server).
public func serviceApplication(
    name: String, http: HTTPListenerConfiguration, router: Router<BasicRequestContext>,
    services: [any Service], logger: Logger
) -> some ApplicationProtocol {
    router.get("/health") { _, _ in "ok" }
    return Application(
        router: router,
        configuration: .init(address: .hostname(http.host, port: http.port), serverName: name),
        services: services,
        logger: logger)
}
