import Basics
import Foundation
import Testing

@Suite("Seeded RNG, manual clock, errno text")
struct HelpersTests {
    /// SplitMix64's sequence pinned: the values the simulator's own generator and TestSupport's
    /// SeededRandom gave before they became this one type (computed from the same recurrence outside
    /// Swift). The simulator's measurement noise draws `gaussian()`, so its noise is unchanged.
    @Test func seededSequenceIsPinned() {
        var r = SeededRandom(seed: 42)
        #expect([r.next(), r.next(), r.next()] == [0xbdd7_3226_2feb_6e95, 0x28ef_e333_b266_f103, 0x4752_6757_130f_9f52])
        var g = SeededRandom(seed: 42)
        let values = (0..<4).map { _ in g.gaussian() }
        #expect(values == [0.4147197504315306, -0.8918862136277563, 1.7295930879374024, 0.5456204361828647])
    }

    @Test func manualClockWakesDueSleepersAndCountsThem() async throws {
        let clock = ManualClock()
        let woke = WokeLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in [3, 1, 2] {
                group.addTask {
                    try await clock.sleep(until: clock.now.advanced(by: .seconds(s)))
                    woke.append(s)
                }
            }
            await clock.waitForSleepers(3)
            #expect(clock.sleeperCount == 3)
            clock.advance(by: .seconds(1))
            await clock.waitForSleepers(2)
            #expect(clock.sleeperCount == 2)
            clock.advance(by: .seconds(5))
            try await group.waitForAll()
        }
        #expect(woke.values.sorted() == [1, 2, 3])
        #expect(clock.now.offset == .seconds(6))
    }

    @Test func cancelledSleeperThrows() async {
        let clock = ManualClock()
        let task = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(60))) }
        await clock.waitForSleepers(1)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func errnoTextNamesTheError() {
        #expect(errnoText(ENOENT) == "No such file or directory")
        #expect(Parity(rawValue: "E") == .even)
    }
}

private final class WokeLog: Sendable {
    private let lock = NSLock()
    nonisolated(unsafe) private var items: [Int] = []
    func append(_ v: Int) { lock.withLock { items.append(v) } }
    var values: [Int] { lock.withLock { items } }
}
