import BatonKafka
import Testing

@Suite("Broker identity: what differs between the broker a store was written against and the one seen now")
struct BrokerIdentityTests {
    let bound = BrokerIdentity(clusterID: "c1", marker: "m1", partitions: ["baton.events": 3, "baton.task-results": 3])

    @Test("the same broker, and what one side does not know, is no difference")
    func same() {
        #expect(bound.differences(from: bound).isEmpty)
        // A nil cluster id or marker on either side is not compared; extra observed topics are ignored.
        let partial = BrokerIdentity(clusterID: nil, marker: nil, partitions: ["baton.events": 3, "baton.task-results": 3, "other": 9])
        #expect(bound.differences(from: partial).isEmpty)
        #expect(partial.differences(from: bound).contains { $0.contains("'other'") }, "a topic the bound side names must exist")
    }

    @Test("a new cluster id, a new marker, a lost topic and a changed partition count are each named")
    func differences() {
        let observed = BrokerIdentity(clusterID: "c2", marker: "m2", partitions: ["baton.events": 6])
        let found = bound.differences(from: observed)
        #expect(found.count == 4, "\(found)")
        #expect(found.contains { $0.contains("cluster id is 'c2', not 'c1'") })
        #expect(found.contains { $0.contains("marker record differs") })
        #expect(found.contains { $0 == "topic 'baton.events' has 6 partitions, not 3" })
        #expect(found.contains { $0 == "topic 'baton.task-results' no longer exists on the broker" })
    }

    @Test("an identity survives being stored")
    func roundTrip() throws {
        #expect(try BrokerIdentity.decode(bound.encoded()) == bound)
        #expect(throws: (any Error).self) { try BrokerIdentity.decode("not json") }
    }

    @Test("start-up action: refuse, erase only for another broker, rebind other shapes; keep or bind silently otherwise")
    func actions() {
        let another = BrokerIdentity(clusterID: "c1", marker: "m2", partitions: bound.partitions)
        let reshaped = BrokerIdentity(clusterID: "c1", marker: "m1", partitions: ["baton.events": 6, "baton.task-results": 3])
        let wider = BrokerIdentity(clusterID: "c1", marker: "m1", partitions: bound.partitions.merging(["baton.jobs": 3]) { a, _ in a })
        for policy in BrokerChangePolicy.allCases {
            #expect(BrokerBindingAction.decide(bound: nil, observed: bound, policy: policy) == .bind)
            #expect(BrokerBindingAction.decide(bound: bound, observed: bound, policy: policy) == .keep)
            #expect(BrokerBindingAction.decide(bound: bound, observed: wider, policy: policy) == .bind, "a topic seen since is bound silently")
        }
        #expect(BrokerBindingAction.decide(bound: bound, observed: another, policy: .refuse) == .refuse(["the broker's marker record differs (its data was lost or it is another broker)"]))
        #expect(BrokerBindingAction.decide(bound: bound, observed: another, policy: .reset).differences?.count == 1)
        if case .erase = BrokerBindingAction.decide(bound: bound, observed: another, policy: .reset) {} else { Issue.record("another broker under reset erases") }
        if case .rebind = BrokerBindingAction.decide(bound: bound, observed: reshaped, policy: .reset) {} else { Issue.record("other shapes under reset keep the store") }
        if case .rebind = BrokerBindingAction.decide(bound: bound, observed: another, policy: .rebind) {} else { Issue.record("rebind keeps the store") }
        if case .refuse = BrokerBindingAction.decide(bound: bound, observed: reshaped, policy: .refuse) {} else { Issue.record("refuse refuses shapes too") }
    }
}
