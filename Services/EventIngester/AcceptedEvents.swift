import Synchronization

/// The events this ingester accepted lately, by tenant-scoped id, with what it answered: a
/// resend of one of them is answered the same way (the first event wins) without publishing it
/// again, and without asking another service on the request's path.
///
/// Bounded: beyond `capacity` ids the oldest are forgotten. A resend this instance does not
/// remember (another instance took the first, a restart, a first event produced straight to
/// Kafka) is published; the dispatcher keeps the first event and starts nothing new.
final class AcceptedEvents: Sendable {
    private struct State {
        var answers: [String: SendEventResponse] = [:]
        /// Ids in the order they were accepted, oldest first from `head`.
        var order: [String] = []
        var head = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The answer given to the first event with `scopedID`, if remembered.
    func answer(for scopedID: String) -> SendEventResponse? {
        state.withLock { $0.answers[scopedID] }
    }

    /// Remembers `answer` for `scopedID` unless an answer is remembered already; returns the
    /// answer that stands (the first).
    @discardableResult
    func remember(_ answer: SendEventResponse, for scopedID: String) -> SendEventResponse {
        guard capacity > 0 else { return answer }
        return state.withLock { state in
            if let first = state.answers[scopedID] { return first }
            state.answers[scopedID] = answer
            state.order.append(scopedID)
            while state.answers.count > capacity, state.head < state.order.count {
                state.answers.removeValue(forKey: state.order[state.head])
                state.head += 1
            }
            if state.head > 4096, state.head * 2 > state.order.count {
                state.order.removeFirst(state.head)
                state.head = 0
            }
            return answer
        }
    }

    /// Ids remembered now.
    var count: Int { state.withLock { $0.answers.count } }
}
