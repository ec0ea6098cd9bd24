import BatonKafka
import Testing

@Suite("Key-ordered queue: which record runs, which offset commits")
struct KeyOrderedQueueTests {
    let p0 = TopicPartition(topic: "baton.runs.job", partition: 0)
    let p1 = TopicPartition(topic: "baton.runs.job", partition: 1)

    func key(_ text: String) -> [UInt8] { Array(text.utf8) }

    func ticket(_ acceptance: KeyOrderedQueue<Int>.Acceptance, sourceLocation: SourceLocation = #_sourceLocation) -> KeyOrderedQueue<Int>.Ticket? {
        guard case .run(let ticket) = acceptance else {
            Issue.record("expected the record to run now, got \(acceptance)", sourceLocation: sourceLocation)
            return nil
        }
        return ticket
    }

    @Test("completions out of order commit only the contiguous prefix")
    func outOfOrderCommitsPrefix() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0])
        let a = try #require(ticket(queue.accept(10, partition: p0, offset: 10, key: key("run a"))))
        let b = try #require(ticket(queue.accept(11, partition: p0, offset: 11, key: key("run b"))))
        let c = try #require(ticket(queue.accept(12, partition: p0, offset: 12, key: key("run c"))))
        #expect(queue.pending == 3 && queue.running == 3)

        // 12 and 11 end first: 10 has not, so nothing may be committed.
        #expect(queue.finish(c).commit == nil)
        #expect(queue.finish(b).commit == nil)
        // 10 ends: everything up to 12 is done, the next offset to consume is 13.
        let commit = try #require(queue.finish(a).commit)
        #expect(commit.partition == p0 && commit.offset == 13)
        #expect(queue.pending == 0)
    }

    @Test("the committable offset stops at the lowest unfinished record")
    func commitStopsAtLowestUnfinished() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0])
        let a = try #require(ticket(queue.accept(0, partition: p0, offset: 0, key: key("a"))))
        let b = try #require(ticket(queue.accept(1, partition: p0, offset: 1, key: key("b"))))
        let c = try #require(ticket(queue.accept(2, partition: p0, offset: 5, key: key("c"))))  // offsets may have gaps
        let d = try #require(ticket(queue.accept(3, partition: p0, offset: 6, key: key("d"))))
        #expect(queue.finish(a).commit?.offset == 1)
        #expect(queue.finish(c).commit == nil)
        #expect(queue.finish(b).commit?.offset == 6)  // 5 finished too: the lowest unfinished is 6
        #expect(queue.finish(d).commit?.offset == 7)
    }

    @Test("records of one key run one at a time, in order; other keys do not wait")
    func sameKeyWaits() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0])
        let first = try #require(ticket(queue.accept(1, partition: p0, offset: 1, key: key("run a"))))
        guard case .queued = queue.accept(2, partition: p0, offset: 2, key: key("run a")) else {
            Issue.record("the second record of run a must wait for the first")
            return
        }
        guard case .queued = queue.accept(3, partition: p0, offset: 3, key: key("run a")) else {
            Issue.record("the third record of run a must wait too")
            return
        }
        _ = try #require(ticket(queue.accept(4, partition: p0, offset: 4, key: key("run b"))))
        #expect(queue.running == 2 && queue.pending == 4)

        let afterFirst = queue.finish(first)
        let second = try #require(afterFirst.next)
        #expect(second.item == 2)
        #expect(afterFirst.commit?.offset == 2)
        let afterSecond = queue.finish(second.ticket)
        #expect(afterSecond.next?.item == 3)
        #expect(queue.running == 2)
    }

    @Test("a revoke drops the partition's waiting records, and its in-flight ones commit nothing")
    func revokeDropsInFlight() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0, p1])
        let running = try #require(ticket(queue.accept(1, partition: p0, offset: 1, key: key("run a"))))
        _ = queue.accept(2, partition: p0, offset: 2, key: key("run a"))  // waits behind 1
        let other = try #require(ticket(queue.accept(3, partition: p1, offset: 7, key: key("run b"))))

        let dropped = queue.revoke([p0])
        #expect(dropped == [2])
        #expect(queue.pending == 2)
        // Records of a revoked partition are refused.
        guard case .notAssigned = queue.accept(4, partition: p0, offset: 3, key: key("run c")) else {
            Issue.record("a record of a revoked partition must not be accepted")
            return
        }
        let fenced = queue.finish(running)
        #expect(fenced.commit == nil)
        #expect(fenced.next == nil)
        #expect(queue.finish(other).commit?.offset == 8)
        #expect(queue.pending == 0)
    }

    @Test("after a quick re-assignment the old assignment's slice neither commits nor lets its key run twice")
    func reassignmentKeepsKeyBusy() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0])
        let old = try #require(ticket(queue.accept(1, partition: p0, offset: 1, key: key("run a"))))
        queue.revoke([p0])
        queue.assign([p0])
        // Redelivered from the committed offset: it must wait for the fenced slice of run a.
        guard case .queued = queue.accept(1, partition: p0, offset: 1, key: key("run a")) else {
            Issue.record("run a still has a (fenced) slice: its redelivered record must wait")
            return
        }
        #expect(!queue.isCurrent(old), "a ticket of the revoked assignment is not current, though the partition is assigned again")
        let completion = queue.finish(old)
        #expect(completion.commit == nil)  // the old generation moves nothing
        let redelivered = try #require(completion.next)
        #expect(queue.finish(redelivered.ticket).commit?.offset == 2)
    }

    @Test("pending counts running and waiting records, for back-pressure")
    func pendingForBackPressure() throws {
        var queue = KeyOrderedQueue<Int>()
        queue.assign([p0])
        var tickets: [KeyOrderedQueue<Int>.Ticket] = []
        for offset in 0..<100 {
            if case .run(let ticket) = queue.accept(offset, partition: p0, offset: Int64(offset), key: key("run \(offset % 10)")) {
                tickets.append(ticket)
            }
        }
        #expect(queue.pending == 100)
        #expect(queue.running == 10)
        #expect(queue.waitingCount == 90)
        // Draining every chain ends every record and commits up to 100.
        var last: Int64?
        var work = tickets
        while let ticket = work.popLast() {
            let completion = queue.finish(ticket)
            if let commit = completion.commit { last = commit.offset }
            if let next = completion.next { work.append(next.ticket) }
        }
        #expect(queue.pending == 0)
        #expect(last == 100)
    }
}
