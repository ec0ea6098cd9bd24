import Baton
import BatonProtocol
import Foundation

/// An expense to approve, the payload of `expense-approval` (event `expense.submitted`).
struct Expense: Codable, Sendable {
    var expenseId: String
    var cents: Int
    /// Approve it at once: the job sends the approval itself just before it waits (an event that
    /// arrives before the wait is registered must still be the one it gets).
    var autoApprove: Bool?
    /// How long to wait for a decision (10 s or more; default 1 hour).
    var timeoutSeconds: Int?
}

/// The payload of `expense.approved`.
struct Approval: Codable, Sendable {
    var expenseId: String
    var approver: String
}

/// Waits for an approval event (`io.waitForEvent`) filtered on the expense id; a missing
/// decision ends as a timeout the job handles.
func expenseApprovalJob(outbox: URL) -> Job<Expense, String> {
    Job(id: "expense-approval", name: "Expense approval", version: "1.0.0",
        trigger: .event(name: "expense.submitted", payload: Expense.self)) { expense, io, ctx in
        if expense.autoApprove == true {
            _ = try await io.sendEvent("auto-approve", name: "expense.approved", payload: Approval(expenseId: expense.expenseId, approver: "auto"))
        }
        let approval: Approval
        do {
            let event = try await io.waitForEvent("approval", name: "expense.approved", filter: ["expenseId": [.string(expense.expenseId)]],
                                                  timeout: .seconds(expense.timeoutSeconds ?? 3600))
            approval = try event.payload(as: Approval.self)
        } catch let timeout as EventWaitTimedOut {
            await io.logger.warn("no decision: \(timeout)")
            return "expense \(expense.expenseId): no decision"
        }
        _ = try await io.runTask("record approval") { _ in
            try appendLine("approved \(expense.expenseId) by \(approval.approver) run=\(ctx.runId)", to: outbox)
            return true
        }
        return "expense \(expense.expenseId) approved by \(approval.approver)"
    }
}
