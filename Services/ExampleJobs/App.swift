import Baton
import BatonService
import Configuration
import Foundation
import Logging

/// `baton-example-jobs`: a job service running the example jobs.
///
/// Settings: the shared keys (see `ServiceConfiguration`) plus
/// - `example.outbox` (`EXAMPLE_OUTBOX`), string, `data/outbox.txt`: where "sent" e-mails go;
/// - `example.wait.seconds` (`EXAMPLE_WAIT_SECONDS`), double, 3: the new-user job's wait.
@main
struct ExampleJobsMain {
    static func main() async throws {
        let config = ConfigReader.batonDefault()
        let service = try ServiceConfiguration(config: config, serviceName: "baton-example-jobs")
        bootstrapLogging(level: service.logLevel)
        let logger = Logger(label: "baton-example-jobs")
        let outbox = URL(fileURLWithPath: config.string(forKey: "example.outbox", default: "data/outbox.txt"))
        let waitSeconds = config.double(forKey: "example.wait.seconds", default: 3)
        let worker = JobWorker(
            configuration: .init(kafka: service.kafka, topics: service.topics),
            jobs: [newUserJob(outbox: outbox, waitSeconds: waitSeconds)],
            logger: logger)
        try await runUntilSignalled([worker], logger: logger)
    }
}
