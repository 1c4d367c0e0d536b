// The wall clock the feeds use: "now" for token expiry and event windows, and
// sleeping between polls. Production uses `SystemSignalClock`; tests use
// `ManualSignalClock`, which only moves when the test advances it.

import Foundation
import Synchronization

/// A wall clock that can also sleep until an instant.
public protocol SignalClock: Sendable {
    func now() -> Date
    /// Returns at or after `deadline` (on this clock); throws `CancellationError` when cancelled.
    func sleep(until deadline: Date) async throws
}

/// The system clock (`Date()` and `Task.sleep`).
public struct SystemSignalClock: SignalClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until deadline: Date) async throws {
        let wait = deadline.timeIntervalSinceNow
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded(.up)))) }
        try Task.checkCancellation()
    }
}

/// A clock for tests: time stands still until `advance(by:)`. Sleepers whose
/// deadline has passed are resumed by `advance`. `sleepers()` and
/// `waitForSleepers(_:)` let a test await the moment a poller goes to sleep.
public final class ManualSignalClock: SignalClock {
    private struct Sleeper {
        var id: UInt64
        var deadline: Date
        var continuation: CheckedContinuation<Void, Error>
    }
    private struct State {
        var now: Date
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state: Mutex<State>

    public init(now: Date) { state = Mutex(State(now: now)) }

    public func now() -> Date { state.withLock { $0.now } }

    /// Number of tasks currently sleeping on this clock.
    public func sleepers() -> Int { state.withLock { $0.sleepers.count } }

    /// Moves time forward and wakes every sleeper whose deadline is reached.
    public func advance(by seconds: TimeInterval) {
        let woken: [CheckedContinuation<Void, Error>] = state.withLock { s in
            s.now = s.now.addingTimeInterval(seconds)
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }
            s.sleepers.removeAll { $0.deadline <= now }
            return due.map(\.continuation)
        }
        for c in woken { c.resume() }
    }

    /// Returns once at least `count` tasks are sleeping on this clock.
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

    public func sleep(until deadline: Date) async throws {
        let id = state.withLock { s -> UInt64 in s.nextID += 1; return s.nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                let (immediate, ready) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if deadline <= s.now || Task.isCancelled { return (true, []) }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: c))
                    let n = s.sleepers.count
                    let ready = s.waiters.filter { $0.count <= n }.map(\.continuation)
                    s.waiters.removeAll { $0.count <= n }
                    return (false, ready)
                }
                for w in ready { w.resume() }
                if immediate { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, Error>? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }
}
