import BatonDomain
import BatonProtocol
import BatonStore
import Foundation
import Synchronization
import Testing

@Suite("Request-wait store conformance: one request per callback URL, on SQLite and PostgreSQL", .serialized)
struct RequestWaitConformanceTests {
    @Test("of 10 concurrent requests to one URL exactly one is accepted, the others get 'already received'; after the timeout 'expired'; an unknown token 'unknown'; the accepted one is undelivered until marked",
          arguments: StoreBackend.allCases)
    func firstRequestWins(_ backend: StoreBackend) async throws {
        try await withTaskResultStore(backend) { (store: any TaskResultBackend) async throws in
            let created = RunEvent(runId: "r", body: .runCreated(.init(jobSlug: "job", jobVersion: "1.0.0", event: EventEnvelope(id: "e", name: "n"))))
            let token = CallbackToken.make(), late = CallbackToken.make()
            let timeoutAt = Date().addingTimeInterval(60)
            let waits = [RunEvent(runId: "r", body: .requestWaitRequested(.init(taskId: "t1", key: "a", parentTaskId: nil, tokenHash: CallbackToken.hash(token), timeoutAt: timeoutAt))),
                         RunEvent(runId: "r", body: .requestWaitRequested(.init(taskId: "t2", key: "b", parentTaskId: nil, tokenHash: CallbackToken.hash(late),
                                                                                   timeoutAt: Date().addingTimeInterval(-1))))]
            _ = try await store.apply(([created] + waits).enumerated().map { ConsumedRunEvent(event: $1, topic: "baton.task-results", partition: 0, offset: Int64($0)) })
            let answers = try await withThrowingTaskGroup(of: RequestWaitAnswer.self) { group in
                for index in 0..<10 {
                    group.addTask {
                        try await store.receiveRequest(tokenHash: CallbackToken.hash(token), request: WaitedRequest(body: .int(Int64(index)), receivedAt: Date()), at: Date())
                    }
                }
                return try await group.reduce(into: [RequestWaitAnswer]()) { $0.append($1) }
            }
            #expect(answers.filter { $0 == .accepted(runId: "r", taskId: "t1") }.count == 1, "\(answers)")
            #expect(answers.filter { $0 == .alreadyReceived }.count == 9)
            #expect(try await store.receiveRequest(tokenHash: CallbackToken.hash(late), request: WaitedRequest(body: .null, receivedAt: Date()), at: Date()) == .expired)
            #expect(try await store.receiveRequest(tokenHash: CallbackToken.hash(CallbackToken.make()), request: WaitedRequest(body: .null, receivedAt: Date()), at: Date()) == .unknown)
            let undelivered = try await store.undeliveredRequests(before: Date().addingTimeInterval(1), limit: 10)
            #expect(undelivered.map(\.taskId) == ["t1"])
            try await store.markRequestsDelivered(tokenHashes: undelivered.map(\.tokenHash), at: Date())
            #expect(try await store.undeliveredRequests(before: Date().addingTimeInterval(1), limit: 10).isEmpty)
        }
    }
}
