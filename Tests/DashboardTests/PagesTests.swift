@testable import Dashboard
import BatonProtocol
import Foundation
import Testing

@Suite("What the dashboard's pages show, built from the APIs' answers")
struct PagesTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func task(_ id: String, parent: String? = nil, from: Double, to: Double?, status: TaskStatus = .completed) -> RunDetails.TaskDetails {
        RunDetails.TaskDetails(id: id, key: id, parentId: parent, name: nil, status: status, output: nil, error: nil, attempts: 1,
                               startedAt: start.addingTimeInterval(from), completedAt: to.map { start.addingTimeInterval($0) }, waitUntil: nil)
    }

    @Test("subtasks nest under their parent; siblings that overlapped in time share a parallel group, the others follow in start order")
    func tree() {
        let tasks = [
            task("second", from: 2, to: 3), task("first", from: 0, to: 1),
            task("a", from: 4, to: 6), task("b", from: 4.5, to: 5), task("c", from: 5.5, to: 7),
            task("child", parent: "first", from: 0.2, to: 0.4), task("orphan", parent: "gone", from: 8, to: 9),
        ]
        let groups = TaskTree.build(tasks, now: start.addingTimeInterval(10))
        #expect(groups.map { $0.tasks.map(\.key) } == [["first"], ["second"], ["a", "b", "c"], ["orphan"]])
        #expect(groups.map(\.parallel) == [false, false, true, false])
        #expect(groups[0].tasks[0].groups.map { $0.tasks.map(\.key) } == [["child"]] && groups[0].tasks[0].hasChildren)
        #expect(groups[1].tasks[0].duration == "1.0 s")
    }

    @Test("the timeline places each started task on the run's span, children after their parent")
    func timeline() {
        let run = RunDetails(id: "run_1", jobId: "job", jobVersion: "1.0.0", status: .completed, output: nil, error: nil,
                             event: .init(id: "e", name: "n", timestamp: start),
                             tasks: [task("first", from: 0, to: 5), task("child", parent: "first", from: 5, to: 10), task("queued", from: 0, to: nil, status: .waiting)],
                             logs: [], createdAt: start, updatedAt: start, completedAt: start.addingTimeInterval(10))
        let bars = TaskTree.timeline(run, now: start.addingTimeInterval(10))
        #expect(bars.map(\.name) == ["first", "child", "queued"])
        #expect(bars.map(\.offset) == ["0.00", "50.00", "0.00"] && bars.map(\.width) == ["50.00", "50.00", "0.40"])
        #expect(bars.map(\.depth) == [0, 1, 0])
    }

    @Test("runs filters read statuses and times (a datetime-local time is UTC) and refuse what is neither")
    func filters() throws {
        let filter = try RunsFilter(query: [("status", "WAITING,FAILED"), ("status", "COMPLETED"), ("createdFrom", "2026-12-02T09:30"), ("job", "a b")])
        #expect(filter.statuses == [.waiting, .failed, .completed])
        #expect(try RunsFilter.date(filter.createdFrom, "createdFrom") == Date(timeIntervalSince1970: 1_796_203_800))
        #expect(filter.query(cursor: "c+1") == "job=a%20b&status=WAITING&status=COMPLETED&status=FAILED&createdFrom=2026-12-02T09:30&cursor=c%2B1")
        #expect(throws: ValidationError.self) { try RunsFilter(query: [("status", "DONE")]) }
        #expect(throws: ValidationError.self) { try RunsFilter(query: [("createdTo", "yesterday")]) }
    }

    @Test("durations read as a person would say them")
    func durations() {
        #expect(Format.duration(0.0123) == "12 ms")
        #expect(Format.duration(12.44) == "12.4 s")
        #expect(Format.duration(185) == "3 min 05 s")
    }
}
