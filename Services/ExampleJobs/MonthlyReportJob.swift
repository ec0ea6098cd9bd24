import Baton
import Foundation

/// The payload of the `monthly-report` job.
struct ReportRequest: Codable, Sendable {
    var customer: String
    var month: String
}

/// A job that only runs when invoked (`invokeTrigger`): `BatonClient.invoke(jobId:payload:)` or
/// `POST /api/v1/jobs/monthly-report/invoke` with `{"payload": {"customer": …, "month": …}}`.
func monthlyReportJob(outbox: URL) -> Job<ReportRequest, String> {
    Job(id: "monthly-report", name: "Monthly report", version: "1.0.0",
        trigger: .invokeTrigger(payload: ReportRequest.self)) { request, io, ctx in
        let invoices = try await io.runTask("count invoices") { _ in
            try appendLine("report \(ctx.runId) \(request.customer) \(request.month)", to: outbox)
            return request.customer.utf8.count
        }
        return "\(request.customer) \(request.month): \(invoices) invoices"
    }
}
