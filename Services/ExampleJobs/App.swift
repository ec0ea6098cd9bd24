import Baton
import BatonProtocol
import BatonService
import Configuration
import Foundation
import Logging
import ServiceLifecycle

/// `baton-example-jobs`: a job service running the example jobs.
///
/// Settings: the shared keys (see `ServiceConfiguration`) plus
/// - `example.outbox` (`EXAMPLE_OUTBOX`), string, `data/outbox.txt`: where "sent" e-mails go;
/// - `example.wait.seconds` (`EXAMPLE_WAIT_SECONDS`), double, 3: the new-user job's wait;
/// - `task.results.url` (`TASK_RESULTS_URL`), string, `http://127.0.0.1:8082`: the task-result
///   service each slice asks for the run's completed tasks (empty: none; unsafe, for tests that
///   show what the checkpoint prevents);
/// - `worker.slice.budget.ms` (`WORKER_SLICE_BUDGET_MS`), int, 30000: a slice's time budget;
/// - `worker.max.concurrent.slices` (`WORKER_MAX_CONCURRENT_SLICES`), int, 100: slices of one job
///   run at once in this process (never two of one run);
/// - `baton.organization` / `baton.project` (`BATON_ORGANIZATION`, `BATON_PROJECT`), string,
///   `default`: scope of deduplication keys, shown in every run's context; the project (with
///   `baton.environment`, `BATON_ENVIRONMENT`, default `default`) is the tenant the jobs belong to;
/// - `baton.api.key` (`BATON_API_KEY`), secret: the tenant's API key, sent to the task-result
///   service when it requires keys;
/// - `http.host` / `http.port` (`HTTP_HOST`, `HTTP_PORT`): when a port is set, `GET /metrics`
///   (Prometheus) and `GET /health` are served there;
/// - `example.tick.seconds` (`EXAMPLE_TICK_SECONDS`), int, 0: when set, also runs the `ticker`
///   job on an interval trigger of that many seconds;
/// - `example.jobs` (`EXAMPLE_JOBS`), string, all: comma-separated ids of the jobs to run (a job
///   service usually runs a few; each job is a consumer group, polling the broker);
/// - `example.disabled.jobs` (`EXAMPLE_DISABLED_JOBS`), string, none: comma-separated ids of
///   jobs registered disabled (as `JobOptions(enabled: false)` does), to show disabled jobs;
/// - `example.greeter.version` (`EXAMPLE_GREETER_VERSION`), string, `1.0.0`: the version of the
///   `versioned-greeter` job (to show version pinning);
/// - `worker.runs.other.versions` (`WORKER_RUNS_OTHER_VERSIONS`), bool, false: run runs created
///   with other versions of the jobs too (see `JobWorker.Configuration.runsOtherVersions`);
/// - `worker.callback.base.url` (`WORKER_CALLBACK_BASE_URL`), string, `task.results.url`: the
///   task-result service's address as callers of callback URLs reach it (`io.waitForRequest`).
@main
struct ExampleJobsMain {
    static func main() async {
        await serviceMain("baton-example-jobs") { try await run() }
    }

    static func run() async throws {
        let config = ConfigReader.batonDefault()
        let service = try ServiceConfiguration(config: config, serviceName: "baton-example-jobs")
        bootstrapLogging(level: service.logLevel)
        let logger = Logger(label: "baton-example-jobs")
        let outbox = URL(fileURLWithPath: config.string(forKey: "example.outbox", default: "data/outbox.txt"))
        let waitSeconds = config.double(forKey: "example.wait.seconds", default: 3)
        let taskResultsURL = config.string(forKey: "task.results.url", default: "http://127.0.0.1:8082")
        var jobs: [any AnyJob] = [
            newUserJob(outbox: outbox, waitSeconds: waitSeconds),
            manyStepsJob(outbox: outbox),
            flakyJob(outbox: outbox),
            fanOutJob(),
            parallelJob(outbox: outbox),
            welcomeOnceJob(outbox: outbox),
            fetchJob(),
            gitHubStarsJob(outbox: outbox),
            userAuditJob(outbox: outbox),
            chaosFlowJob(outbox: outbox),
            chaosChildJob(outbox: outbox),
            monthlyReportJob(outbox: outbox),
            batchImportJob(outbox: outbox),
            fulfilOrderJob(outbox: outbox),
            chargeCardJob(outbox: outbox),
            packItemJob(outbox: outbox),
            expenseApprovalJob(outbox: outbox),
            transcodeVideoJob(outbox: outbox),
            rateLimitedPingJob(outbox: outbox),
            throttledPingJob(outbox: outbox),
            debouncedPingJob(outbox: outbox),
            newYearJob(outbox: outbox),
            limitedWorkJob(),
            perUserSyncJob(),
            perUserExportJob(),
            versionedGreeterJob(outbox: outbox, version: config.string(forKey: "example.greeter.version", default: "1.0.0")),
        ]
        // For tests of disabled jobs: these example jobs register disabled.
        let disabled = Set(config.string(forKey: "example.disabled.jobs", default: "").split(separator: ",").map(String.init))
        jobs = jobs.map { job in
            guard let slug = try? job.registration().slug, disabled.contains(slug) else { return job }
            return DisabledJob(job: job)
        }
        let tickSeconds = config.int(forKey: "example.tick.seconds", default: 0)
        if tickSeconds > 0 { jobs.append(tickerJob(outbox: outbox, seconds: tickSeconds)) }
        if let selection = config.string(forKey: "example.jobs"), !selection.isEmpty {
            let wanted = Set(selection.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            let known = Set(try jobs.map { try $0.registration().id })
            guard wanted.isSubset(of: known) else {
                throw ValidationError(path: "example.jobs", message: "unknown job ids \(wanted.subtracting(known).sorted()); known: \(known.sorted().joined(separator: ", "))")
            }
            jobs = try jobs.filter { wanted.contains(try $0.registration().id) }
        }
        let maxSlices = config.int(forKey: "worker.max.concurrent.slices", default: 100)
        guard maxSlices >= 1 else {
            throw ValidationError(path: "worker.max.concurrent.slices", message: "must be at least 1, got \(maxSlices)")
        }
        let worker = JobWorker(
            configuration: .init(kafka: service.kafka, topics: service.topics,
                                 taskResultsURL: taskResultsURL.isEmpty ? nil : taskResultsURL,
                                 sliceBudget: .milliseconds(max(1, config.int(forKey: "worker.slice.budget.ms", default: 30_000))),
                                 maxConcurrentSlices: maxSlices,
                                 organization: config.string(forKey: "baton.organization", default: "default"),
                                 project: config.string(forKey: "baton.project", default: "default"),
                                 environment: config.string(forKey: "baton.environment", default: "default"),
                                 apiKey: config.string(forKey: "baton.api.key", isSecret: true),
                                 limits: service.limits, fetchSecrets: service.fetchSecrets,
                                 runsOtherVersions: config.bool(forKey: "worker.runs.other.versions", default: false),
                                 callbackBaseURL: config.string(forKey: "worker.callback.base.url")),
            jobs: jobs,
            logger: logger)
        var services: [any Service] = []
        if config.int(forKey: "http.port") != nil {
            // `GET /metrics` (Prometheus) and `GET /health`; first in, so it stops last.
            let http = try HTTPListenerConfiguration(config: config, defaultPort: 0)
            services.append(serviceApplication(name: "baton-example-jobs", http: http, router: serviceRouter(), services: [], logger: logger))
        }
        services.append(worker)
        try await runUntilSignalled(services, shutdownDeadline: service.shutdownDeadline, logger: logger)
    }
}

/// An example job registered disabled (`example.disabled.jobs`), as `JobOptions(enabled: false)`
/// registers it, with the same code.
struct DisabledJob: AnyJob {
    let job: any AnyJob

    func registration() throws(ValidationError) -> JobRegistration {
        var registration = try job.registration()
        registration.enabled = false
        return registration
    }

    func execute(payload: JSONValue, io: IO, context: JobContext) async throws -> JSONValue {
        try await job.execute(payload: payload, io: io, context: context)
    }
}
