@testable import FleetEdge
import Synchronization
import Testing
import TestSupport

// The tick hook's side of the edge node service (TickInbox.swift) on a manual clock: with `TickPacing.clock` the
// service takes each tick when its clock fires, a phase after the tick, and the hook resumes no task; only a tick
// later than the phase (or the first, which the births wait for) is handed over by the hook. And the command budget.

@Suite("Tick inbox and pacing")
struct TickInboxTests {
    /// What the "service" took, in order, as a stream the test can wait on.
    final class Taker: Sendable {
        let taken: AsyncStream<Int>
        let takenIn: AsyncStream<Int>.Continuation
        init() { (taken, takenIn) = AsyncStream.makeStream() }
    }

    final class Granted: Sendable {
        let value = Mutex<Int?>(nil)
    }

    @Test func theClockNotTheHookWakesTheService() async throws {
        let clock = ManualClock()
        let inbox = TickInbox<Int>(everyTick: false)
        let taker = Taker()
        let pacing = TickPacing.clock(clock, period: .seconds(1), phase: .milliseconds(250))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while let t = await inbox.next() { taker.takenIn.yield(t) }
                taker.takenIn.finish()
            }
            var taken = taker.taken.makeAsyncIterator()
            // The first tick (clock 0): the service waits for it and the hook hands it over (the births need it).
            while !inbox.serviceWaiting { await Task.yield() }
            inbox.offer(0)
            #expect(await taken.next() == 0)
            #expect(inbox.hookWakes.service == 1)
            group.addTask { await pacing.ticker!({ inbox.fire() }, { await inbox.waitForTick(after: $0) }) }
            await clock.waitForSleepers(1)  // the ticker, anchored at 0: it fires at 1.25, 2.25, …
            // Ticks at 1 … 10 s, each done well within the phase: the clock hands each over 250 ms later.
            for k in 1...10 {
                clock.advance(by: k == 1 ? .seconds(1) : .milliseconds(750))  // k: the loop's tick
                inbox.offer(k)
                clock.advance(by: .milliseconds(250))           // k + 0.25: the service's clock fires
                #expect(await taken.next() == k)
                await clock.waitForSleepers(1)
            }
            #expect(inbox.hookWakes == (1, 0), "the hook resumed the service only for the first tick, nothing else")
            // A tick longer than the phase: the clock fires first and finds nothing new; the hook's next hand-off
            // resumes the clock's task, which hands the tick over and locks its schedule onto it (11.25 + 1.25).
            clock.advance(by: .seconds(1))                      // 11.25: nothing offered for 11 yet
            while inbox.budgetWaiters == 0 { await Task.yield() }
            inbox.offer(11)
            #expect(await taken.next() == 11)
            #expect(inbox.hookWakes == (1, 1))
            await clock.waitForSleepers(1)
            // Ticks the service had no time for are replaced by the newest (the hand-off queue keeps every one).
            clock.advance(by: .milliseconds(750))               // 12.0
            inbox.offer(12)
            inbox.offer(13)
            clock.advance(by: .milliseconds(500))               // 12.5: the re-locked clock fires
            #expect(await taken.next() == 13)
            #expect(inbox.hookWakes == (1, 1))
            inbox.close()
            #expect(await taken.next() == nil)
            group.cancelAll()
        }
    }

    @Test func everyTickPacingIsWokenByTheHook() async {
        let inbox = TickInbox<Int>(everyTick: true)
        async let first = inbox.next()
        // The service may not be parked yet: either way it gets the tick.
        inbox.offer(1)
        #expect(await first == 1)
        inbox.close()
        #expect(await inbox.next() == nil)
    }

    /// The command budget: `perTick` admissions per tick, the next waits for the next tick; one fast path per tick.
    @Test func theCommandBudgetIsPerTick() async {
        let inbox = TickInbox<Int>(everyTick: false)
        let budget = LoopActionBudget(perTick: 2, inbox: inbox)
        inbox.offer(0)
        #expect(await budget.admit() == 1)
        #expect(await budget.admit() == 1)
        #expect(budget.takeFastPath())
        #expect(!budget.takeFastPath())
        let third = Granted()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { let t = await budget.admit(); third.value.withLock { $0 = t } }
            // Not before the next tick: it waits, and the hook's next offer resumes it.
            while inbox.budgetWaiters == 0 { await Task.yield() }
            #expect(third.value.withLock { $0 } == nil)
            inbox.offer(1)
        }
        #expect(third.value.withLock { $0 } == 2)
        #expect(inbox.hookWakes.others == 1)
        #expect(budget.takeFastPath())
    }
}
