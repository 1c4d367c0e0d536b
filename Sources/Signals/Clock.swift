// The wall clock the feeds use: "now" for token expiry and event windows, and
// sleeping between polls. Production uses `SystemSignalClock`; tests use
// `ManualSignalClock`, which only moves when the test advances it.

import Basics
import Foundation

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

/// A clock for tests: time stands still until `advance(by:)`; the shared `ManualClock` (Basics)
/// counted from a starting date. `sleepers()` and `waitForSleepers(_:)` let a test await the moment
/// a poller goes to sleep.
public final class ManualSignalClock: SignalClock {
    /// The underlying clock (its instants are offsets from `start`).
    public let clock = ManualClock()
    public let start: Date

    public init(now: Date) { start = now }

    public func now() -> Date {
        let c = clock.now.offset.components
        return start.addingTimeInterval(Double(c.seconds) + Double(c.attoseconds) * 1e-18)
    }

    /// Number of tasks currently sleeping on this clock.
    public func sleepers() -> Int { clock.sleeperCount }

    /// Moves time forward and wakes every sleeper whose deadline is reached.
    public func advance(by seconds: TimeInterval) { clock.advance(by: .seconds(seconds)) }

    /// Returns once at least `count` tasks are sleeping on this clock.
    public func waitForSleepers(_ count: Int = 1) async { await clock.waitForSleepers(count) }

    public func sleep(until deadline: Date) async throws {
        try await clock.sleep(until: ManualClock.Instant(offset: .seconds(deadline.timeIntervalSince(start))))
        try Task.checkCancellation()
    }
}
