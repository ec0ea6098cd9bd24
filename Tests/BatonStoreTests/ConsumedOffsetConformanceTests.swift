import BatonDomain
import BatonStore
import BatonTesting
import Foundation
import Logging
import Testing

/// Two handles on one store's consumed offsets, as two instances of a service would have.
func withTwoOffsetStores(_ backend: StoreBackend, _ body: (any ConsumedOffsetStore, any ConsumedOffsetStore) async throws -> Void) async throws {
    try await withTwoStores(backend, sqlite: { try TaskResultStore(path: $0) as any ConsumedOffsetStore },
                            postgres: { try await PostgresConsumedOffsetStore(database: $0) }, body)
}

@Suite("Consumed offsets conformance: shared, never going back, on SQLite and PostgreSQL", .serialized)
struct ConsumedOffsetConformanceTests {
    @Test("offsets advance per topic and partition and never go back; two instances racing settle at the furthest", arguments: StoreBackend.allCases)
    func offsets(_ backend: StoreBackend) async throws {
        try await withTwoOffsetStores(backend) { (a: any ConsumedOffsetStore, b: any ConsumedOffsetStore) async throws in
            #expect(try await a.consumedOffsets(topic: "t").isEmpty)
            try await a.advanceOffsets(topic: "t", to: [0: 10, 1: 5])
            try await b.advanceOffsets(topic: "t", to: [0: 7, 2: 3])  // 0 stays at 10: a redelivered batch
            try await b.advanceOffsets(topic: "other", to: [0: 99])
            #expect(try await a.consumedOffsets(topic: "t") == [0: 10, 1: 5, 2: 3])
            #expect(try await b.consumedOffsets(topic: "other") == [0: 99])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for step in 1...40 {
                    group.addTask { try await (step.isMultiple(of: 2) ? a : b).advanceOffsets(topic: "t", to: [0: Int64(10 + step), 1: Int64(5 + step)]) }
                }
                try await group.waitForAll()
            }
            #expect(try await b.consumedOffsets(topic: "t") == [0: 50, 1: 45, 2: 3])
        }
    }
}
