// The one clock that only moves when told to. The control loop, the poller, the simulator and the
// signal feeds run on it in tests and replays (virtual time), and on ContinuousClock (or the system
// clock) in production.

import Synchronization

public final class ManualClock: Clock, Sendable {
    public struct Instant: InstantProtocol, Sendable, Hashable, Comparable {
        public var offset: Duration
        public init(offset: Duration) { self.offset = offset }
        public func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    struct Sleeper {
        var id: Int
        var deadline: Instant
        var continuation: CheckedContinuation<Void, Error>
    }

    struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Sleeper] = []
        var nextID = 0
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Number of tasks waiting in `sleep`.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once at least `count` tasks are sleeping on this clock (so a test can advance time
    /// knowing the task under test is waiting).
    public func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.sleepers.count >= count { return true }
                s.waiters.append((count, c))
                return false
            }
            if ready { c.resume() }
        }
    }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
                // A task cancelled before this point already ran `onCancel` (finding no sleeper): check
                // the flag under the lock, so it throws now instead of sleeping until time advances.
                // (Task.cancel sets the flag before it runs the handler, so one of the two always sees it.)
                enum Outcome { case sleep, resume, cancelled }
                let (outcome, ready) = state.withLock { s -> (Outcome, [CheckedContinuation<Void, Never>]) in
                    if Task.isCancelled { return (.cancelled, []) }
                    if deadline <= s.now { return (.resume, []) }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: cont))
                    let n = s.sleepers.count
                    let ready = s.waiters.filter { $0.count <= n }.map(\.continuation)
                    s.waiters.removeAll { $0.count <= n }
                    return (.sleep, ready)
                }
                for w in ready { w.resume() }
                switch outcome {
                case .sleep: break
                case .resume: cont.resume()
                case .cancelled: cont.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, Error>? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come, earliest first.
    public func advance(by d: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, Error>] in
            s.now = s.now.advanced(by: d)
            let now = s.now
            let ready = s.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            s.sleepers.removeAll { $0.deadline <= now }
            return ready.map(\.continuation)
        }
        for c in due { c.resume() }
    }
}
