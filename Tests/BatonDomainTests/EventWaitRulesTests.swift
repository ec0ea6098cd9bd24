import BatonDomain
import BatonProtocol
import Foundation
import Testing

@Suite("Event-wait rules: which event a wait gets (pure)")
struct EventWaitRulesTests {
    let now = Date(millisecondsSince1970: 1_790_000_000_000)
    let alpha = Tenant.of(project: "alpha", environment: "prod")

    func wait(_ run: String, name: String = "approved", filter: JSONValue? = nil, since: Date? = nil, tenant: Tenant? = nil) throws -> EventWaitRecord {
        EventWaitRecord(tenant: tenant ?? alpha, request: EventWaitRequest(
            runId: run, taskId: "t", name: name, filter: try filter.map { try EventFilter($0) },
            since: since ?? now, timeoutAt: (since ?? now).addingTimeInterval(60)))
    }

    func event(_ id: String, name: String = "approved", payload: JSONValue = [:], at offset: TimeInterval = 0, tenant: Tenant? = nil) -> RecentEvent {
        var envelope = EventEnvelope(id: id, name: name, payload: payload)
        envelope.tenant = tenant ?? alpha
        return RecentEvent(event: envelope, receivedAt: now.addingTimeInterval(offset))
    }

    @Test("a new wait takes the first matching event received since it began, even one received before it was registered (within the clock tolerance)")
    func lookback() throws {
        let early = event("early", at: -5), justBefore = event("just-before", at: -1), after = event("after", at: 1)
        let matched = EventWaitRules.match(newWaits: [try wait("r")], events: [], stored: [early, justBefore, after], pending: [])
        #expect(matched.map { $0.matched?.id } == ["just-before"], "5 s before the call is too early; 1 s is within the tolerance")
        #expect(EventWaitRules.match(newWaits: [try wait("r")], events: [], stored: [early], pending: []).isEmpty)
    }

    @Test("an event goes to every pending wait it matches, once each; filters, names, tenants and timeouts decide")
    func fanOut() throws {
        let waits = [try wait("a", filter: ["id": ["x"]]), try wait("b", filter: ["id": ["x"]]), try wait("c", filter: ["id": ["y"]]),
                     try wait("d", name: "other"), try wait("e", tenant: .default)]
        let matched = EventWaitRules.match(newWaits: [], events: [event("x1", payload: ["id": "x"]), event("x2", payload: ["id": "x"])], stored: [], pending: waits)
        #expect(matched.map(\.request.runId) == ["a", "b"], "c filters on another id, d waits for another name, e is another tenant's")
        #expect(matched.allSatisfy { $0.matched?.id == "x1" }, "each gets the first event, once")
        var expired = try wait("late")
        expired.request.timeoutAt = now.addingTimeInterval(-1)
        #expect(EventWaitRules.match(newWaits: [], events: [event("x")], stored: [], pending: [expired]).isEmpty, "a wait that timed out gets nothing")
    }

    @Test("a wait and its event in the same batch meet, whichever came first; a registration resent (not new) scans nothing")
    func sameBatch() throws {
        let matched = EventWaitRules.match(newWaits: [try wait("r")], events: [event("e")], stored: [], pending: [])
        #expect(matched.map { $0.matched?.id } == ["e"])
        var done = try wait("r")
        done.matched = event("first").event
        #expect(EventWaitRules.match(newWaits: [], events: [event("second")], stored: [], pending: [done]).isEmpty)
    }

    @Test("registrations and the events that could match them: invocations and wait registrations never match")
    func notWaitable() throws {
        let request = try wait("r").request
        let invocation = EventEnvelope(id: "i", name: "approved", invoke: "job")
        #expect(!request.matches(invocation, receivedAt: now))
        #expect(request.matches(EventEnvelope(id: "p", name: "approved"), receivedAt: now))
        #expect(!request.matches(EventEnvelope(id: "p", name: "approved"), receivedAt: now.addingTimeInterval(61)), "after the timeout")
    }
}

@Suite("Request-wait rules (pure)")
struct RequestWaitRulesTests {
    @Test("the first request before the timeout is accepted; later ones are refused as received, expired or unknown")
    func rules() {
        let now = Date()
        let open = RequestWaitRecord(runId: "r", taskId: "t", timeoutAt: now.addingTimeInterval(1))
        #expect(RequestWaitRules.answer(open, now: now) == .accepted(runId: "r", taskId: "t"))
        var answered = open
        answered.receivedAt = now
        #expect(RequestWaitRules.answer(answered, now: now) == .alreadyReceived)
        #expect(RequestWaitRules.answer(open, now: now.addingTimeInterval(1)) == .expired)
        #expect(RequestWaitRules.answer(nil, now: now) == .unknown)
        #expect(CallbackToken.make() != CallbackToken.make() && CallbackToken.isWellFormed(CallbackToken.make()))
        #expect(!CallbackToken.isWellFormed("ABC") && !CallbackToken.isWellFormed(String(repeating: "g", count: 64)))
    }
}
