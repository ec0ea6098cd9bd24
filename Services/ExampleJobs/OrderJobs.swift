import Baton
import BatonProtocol
import Foundation

/// An order, the payload of `fulfil-order` (event `order.placed`).
struct Order: Codable, Sendable {
    var orderId: String
    var cents: Int
    var skus: [String]
}

/// A card charge, the payload of the child job `charge-card`.
struct Charge: Codable, Sendable {
    var orderId: String
    var cents: Int
}

/// What `charge-card` returns.
struct Receipt: Codable, Sendable {
    var orderId: String
    var chargeId: String
}

/// An item to pack, the payload of the child job `pack-item`.
struct PackItem: Codable, Sendable {
    var orderId: String
    var sku: String
}

/// Child job: charges a card. Invoked only (by `fulfil-order`); declines amounts that are not
/// positive, and that failure reaches the parent as a typed error.
func chargeCardJob(outbox: URL) -> Job<Charge, Receipt> {
    Job(id: "charge-card", name: "Charge card", version: "1.0.0", trigger: .invokeTrigger(payload: Charge.self)) { charge, io, ctx in
        try await io.runTask("charge") { _ in
            guard charge.cents > 0 else { throw TaskFailure.doNotRetry("card declined: \(charge.cents) cents") }
            try appendLine("charge \(charge.orderId) \(charge.cents) run=\(ctx.runId)", to: outbox)
            return Receipt(orderId: charge.orderId, chargeId: "ch_\(ctx.runId.suffix(8))")
        }
    }
}

/// Child job: packs one item, after a short wait (so its parent waits for children that wait).
func packItemJob(outbox: URL) -> Job<PackItem, String> {
    Job(id: "pack-item", name: "Pack item", version: "1.0.0", trigger: .invokeTrigger(payload: PackItem.self)) { item, io, ctx in
        try await io.wait("conveyor", seconds: 1)
        return try await io.runTask("pack") { _ in
            try appendLine("pack \(item.orderId) \(item.sku) run=\(ctx.runId)", to: outbox)
            return "packed \(item.sku)"
        }
    }
}

/// Parent job: charges the card with a child run (`invokeAndWait`), handles a declined card
/// (the child's failure, caught as `ChildRunFailed`), then packs every item at once with one
/// child run per item (`batchInvokeAndWait`).
func fulfilOrderJob(outbox: URL) -> Job<Order, String> {
    let chargeCard = chargeCardJob(outbox: outbox)
    let packItem = packItemJob(outbox: outbox)
    return Job(id: "fulfil-order", name: "Fulfil order", version: "1.0.0", trigger: .event(name: "order.placed", payload: Order.self)) { order, io, ctx in
        let receipt: Receipt
        do {
            receipt = try await chargeCard.invokeAndWait(io, "charge", payload: Charge(orderId: order.orderId, cents: order.cents))
        } catch let declined as ChildRunFailed {
            _ = try await io.runTask("note declined") { _ in
                try appendLine("declined \(order.orderId) \(declined.status.rawValue) run=\(ctx.runId)", to: outbox)
                return true
            }
            return "order \(order.orderId) not fulfilled: \(declined.message)"
        }
        let packed = try await packItem.batchInvokeAndWait(io, "pack", payloads: order.skus.map { PackItem(orderId: order.orderId, sku: $0) })
        let items = try packed.map { try $0.get() }
        return "order \(order.orderId) charged (\(receipt.chargeId)): \(items.joined(separator: ", "))"
    }
}
