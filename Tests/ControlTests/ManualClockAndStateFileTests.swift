import Basics
import Foundation
import Synchronization
import Testing
@testable import Control

@Suite("ManualClock and the loop-state file")
struct ManualClockAndStateFileTests {
    /// A task cancelled before it calls `sleep` must get CancellationError at once,
    /// not sleep until someone advances the clock.
    @Test func sleepAfterCancellationThrowsAtOnce() async throws {
        let clock = ManualClock()
        let finished = Mutex(false)
        let task = Task { () -> String in
            withUnsafeCurrentTask { $0?.cancel() }
            defer { finished.withLock { $0 = true } }
            do {
                try await clock.sleep(until: clock.now.advanced(by: .seconds(10)), tolerance: nil)
                return "slept"
            } catch is CancellationError {
                return "cancelled"
            } catch {
                return "other: \(error)"
            }
        }
        // Wait (on virtual time only) until the task either finished or registered as a sleeper.
        while !finished.withLock({ $0 }) && clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.sleeperCount == 0, "a cancelled task registered as a sleeper")
        clock.advance(by: .seconds(10))  // frees a stuck sleeper, so the test ends either way
        #expect(await task.value == "cancelled")
    }

    /// Cancellation after the task registered still wakes it (the existing path).
    @Test func cancellationWhileSleepingWakesTheSleeper() async throws {
        let clock = ManualClock()
        let task = Task { () -> Bool in
            do { try await clock.sleep(until: clock.now.advanced(by: .seconds(10)), tolerance: nil); return false } catch { return error is CancellationError }
        }
        while clock.sleeperCount == 0 { await Task.yield() }
        task.cancel()
        #expect(await task.value)
        #expect(clock.sleeperCount == 0)
    }

    @Test func loopStateFileIsPrivate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = StateFile(directory: dir)
        try file.save(LoopState())
        try file.save(LoopState())  // the replacing write keeps it private too
        let mode = try #require(FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600, "loop-state.json is \(String(mode & 0o777, radix: 8))")
        #expect(try file.load() != nil)
    }
}
