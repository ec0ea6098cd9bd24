import BatonService
import Configuration
import Foundation
import Hummingbird
import Logging

@main
struct IngesterMain {
    static func main() async {
        await serviceMain("baton-ingester") {
        let configuration = try IngesterConfiguration(config: .batonDefault())
        bootstrapLogging(level: configuration.service.logLevel)
        let logger = Logger(label: "baton-ingester")
        let app = try await buildIngester(configuration: configuration, logger: logger)
        try await runUntilSignalled([app], shutdownDeadline: configuration.service.shutdownDeadline, logger: logger)
        }
    }
}
