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

@Suite("Flow-control rules (pure)")
struct FlowControlRulesTests {
    let now = Date(millisecondsSince1970: 1_790_000_000_000)

    @Test("rateLimit: the first `limit` events of a window start, the others are dropped; the window slides")
    func rateLimit() {
        let control = FlowControl.rateLimit(2, per: .seconds(10))
        var starts: [Date] = []
        var decisions: [FlowDecision] = []
        for offset in [0.0, 1, 2, 9.9, 10.5, 11.5] {
            let (decision, kept) = FlowControlRules.decide(control, starts: starts, now: now.addingTimeInterval(offset))
            decisions.append(decision)
            starts = kept
        }
        #expect(decisions == [.start, .start, .drop, .drop, .start, .start], "\(decisions)")
    }

    @Test("throttle: events over the limit get the next free slot, in order; no window of the period holds more than `limit` starts")
    func throttle() {
        let control = FlowControl.throttle(2, per: .seconds(4))
        var starts: [Date] = []
        var times: [Date] = []
        for _ in 0..<7 {
            let (decision, kept) = FlowControlRules.decide(control, starts: starts, now: now)
            starts = kept
            switch decision {
            case .start: times.append(now)
            case .delay(let until): times.append(until)
            case .drop: Issue.record("throttling never drops")
            }
        }
        #expect(times.map { $0.timeIntervalSince(now) } == [0, 0, 4, 4, 8, 8, 12])
        for index in 0..<(times.count - 2) { #expect(times[index + 2].timeIntervalSince(times[index]) >= 4) }
    }

    @Test("debounce: every event is held a period; only the copy of the key's last event starts, also for events in the same millisecond")
    func debounce() {
        let control = FlowControl.debounce(.seconds(3))
        var starts: [Date] = []
        var due: [Date] = []
        for offset in [0.0, 1, 1, 2.5] {
            let (decision, kept) = FlowControlRules.decide(control, starts: starts, now: now.addingTimeInterval(offset))
            starts = kept
            guard case .delay(let until) = decision else { Issue.record("a debounced event is always held"); continue }
            due.append(until)
        }
        #expect(starts.count == 1, "only the latest arrival is kept")
        #expect(Set(due.map(\.millisecondsSince1970)).count == 4, "events in the same millisecond get distinct times")
        #expect(due.map { FlowControlRules.isLatestDebounced(deliverAt: $0, starts: starts, control: control) } == [false, false, false, true])
        #expect(due.last!.timeIntervalSince(now) >= 5.5, "the last event runs a period after it came")
        #expect(FlowControlRules.isLatestDebounced(deliverAt: now, starts: [], control: control), "no record: the copy starts")
        // A changed period: the later event still takes the place of the held one, longer or shorter.
        for (first, second) in [(FlowControl.debounce(.seconds(3)), FlowControl.debounce(.seconds(10))),
                                (FlowControl.debounce(.seconds(10)), FlowControl.debounce(.seconds(3)))] {
            let (held, kept) = FlowControlRules.decide(first, starts: [], now: now)
            let (later, latest) = FlowControlRules.decide(second, starts: kept, now: now.addingTimeInterval(1))
            guard case .delay(let heldAt) = held, case .delay(let laterAt) = later else { Issue.record("held"); continue }
            #expect(!FlowControlRules.isLatestDebounced(deliverAt: heldAt, starts: latest, control: second))
            #expect(FlowControlRules.isLatestDebounced(deliverAt: laterAt, starts: latest, control: second))
        }
    }

    @Test("keys: one limit per payload value (nested paths, non-strings as JSON, missing as empty); invalid settings are refused")
    func keys() throws {
        let control = FlowControl.rateLimit(1, per: .seconds(60), key: "account.id")
        #expect(control.keyValue(in: ["account": ["id": "a1"]]) == "a1")
        #expect(control.keyValue(in: ["account": ["id": 7]]) == "7")
        #expect(control.keyValue(in: ["other": 1]) == "")
        #expect(FlowControl.rateLimit(1, per: .seconds(60)).keyValue(in: ["x": 1]) == "")
        #expect(throws: ValidationError.self) { try FlowControl.rateLimit(0, per: .seconds(60)).validate() }
        #expect(throws: ValidationError.self) { try FlowControl.throttle(1, per: .seconds(0)).validate() }
        #expect(throws: ValidationError.self) { try FlowControl.throttle(1, per: .seconds(1), key: "a..b").validate() }
        #expect(throws: ValidationError.self) {
            try JobRegistration(id: "tick", name: "T", version: "1.0.0", trigger: .interval(seconds: 60), flowControl: .rateLimit(1, per: .seconds(1)))
        }
        #expect(FlowDecision.starts(from: FlowDecision.encode([now, now.addingTimeInterval(1)])) == [now, now.addingTimeInterval(1)])
    }
}
