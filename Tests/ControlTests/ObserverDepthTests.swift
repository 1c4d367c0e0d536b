// The loop writer's pass observer is called through a constant number of frames, however many passes ran.
//
// A closure kept in a `Mutex<(… -> …)?>` and read back with `withLock { $0 }` is reabstracted on the way in
// and out of the generic `inout` and written back each time: every read wrapped it in two more thunks. After
// N passes the observer was called through 2N frames, so each pass cost O(N) and, after about 100,000 passes
// (some 28 hours at the production 1 s tick), the call overflowed the stack and the daemon died.

import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Control

@Suite("Pass observer depth")
struct ObserverDepthTests {
    /// 40 production 1 s ticks: the observer's stack depth is the same at the last pass as at the first.
    @Test func observerDepthDoesNotGrowWithPasses() async throws {
        let (host, sim, _) = try simHost()
        let depths = Mutex<[Int]>([])
        host.current.writer.onPass { _ in
            let d = Thread.callStackReturnAddresses.count
            depths.withLock { $0.append(d) }
        }
        var t = t0
        for _ in 0..<40 {
            await host.current.tick(now: t)
            sim.step(.seconds(1)); t += 1
        }
        let seen = depths.withLock { $0 }
        #expect(seen.count == 40)
        // Every pass runs the same path to the observer; with the bug each pass added two frames.
        #expect(seen.max() == seen.min(), "observer called through \(seen.min() ?? 0)…\(seen.max() ?? 0) frames over 40 passes: \(seen)")
    }
}
