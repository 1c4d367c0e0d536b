// The tick hook's side of the edge node service (issue 17): what `offer` costs the control loop, and how the
// service is woken without the loop paying for it.
//
// A continuation resumed from the tick hook schedules a job on the global executor (and often wakes one of its
// threads): tens of µs at p50 and 0.2 ms at p99 on the 2-core box, on the loop's task, every tick. So the hook only
// stores the tick in a mutex-guarded slot; the service is woken by its own clock (`TickPacing.clock`), a fraction
// of a period after the loop's tick, when the tick is long done and its report waits in the slot. The clock is
// phase-locked to the ticks: when it fires and finds no new tick (at start-up, or a tick longer than the phase), it
// waits for the hook's next hand-off (the hook resumes it, only then), hands that tick over, and from then on wakes
// a period plus the phase after it. The hook also hands the first tick to the service directly (the births wait for
// it). `TickPacing.everyTick` is the old way (the hook wakes the service on every tick), for callers without a clock.
//
// The same lock counts ticks for the command budget (FleetCommands.swift, `LoopActionGate`): fleet commands apply
// to the loop at most `perTick` per tick and run at most one fast path per tick; a command over the budget waits
// for the next tick (the hook resumes it, only then).

import Synchronization

/// How the edge node service learns that a tick was handed over.
public struct TickPacing: Sendable {
    /// Runs until cancelled: at every wake-up calls `fire`, which returns nil, or the tick count when there was no new
    /// tick (then `waitForTick(count)` returns at the next hand-off, and `fire` is called again); nil: the tick hook
    /// wakes the service on every tick.
    let ticker: (@Sendable (_ fire: @escaping @Sendable () -> Int?, _ waitForTick: @escaping @Sendable (Int) async -> Void) async -> Void)?

    /// The hook wakes the service on every tick (costs the loop a task resume per tick).
    public static let everyTick = TickPacing(ticker: nil)

    /// The service wakes on `clock` every `period` (the loop ticks on the same clock and period), `phase` after a
    /// tick was handed over: the hook then only stores the tick. When a wake-up finds no new tick, the next hand-off
    /// wakes the clock's task and the schedule restarts from there (phase lock). Deadlines already past (a long
    /// pause, a clock moved by more than a period) are skipped, not caught up.
    public static func clock<C: Clock>(_ clock: C, period: Duration, phase: Duration) -> TickPacing where C.Duration == Duration {
        precondition(period > .zero, "the tick period must be positive")
        return TickPacing { fire, waitForTick in
            var anchor = clock.now  // the first tick has just been handed over
            var n = 1
            while !Task.isCancelled {
                do { try await clock.sleep(until: anchor.advanced(by: period * n + phase), tolerance: nil) } catch { return }
                if let seen = fire() {
                    // Early: wait for the tick, hand it over, and lock the schedule onto it.
                    await waitForTick(seen)
                    _ = fire()
                    anchor = clock.now
                    n = 1
                    continue
                }
                let elapsed = anchor.duration(to: clock.now) - phase
                n = max(n + 1, Int(elapsed / period) + 1)
            }
        }
    }
}

/// The hand-off slot between the tick hook and the service's publishing loop, and the tick count for the command
/// budget. Every method is a short critical section; resumptions happen outside the lock.
final class TickInbox<Tick: Sendable>: Sendable {
    private struct State {
        var newest: Tick?
        var waiter: CheckedContinuation<Tick?, Never>?
        /// The hook is to resume the service with the next tick: before the first tick (`everyTick`: always).
        var wantsTick = true
        var everyTick: Bool
        var closed = false
        /// Ticks handed over so far (the command budget's clock).
        var ticks = 0
        var gateWaiters: [CheckedContinuation<Void, Never>] = []
        /// Resumptions the hook made (the service; the clock's task and the command worker), for benchmarks.
        var serviceWakes = 0
        var gateWakes = 0
    }
    private let state: Mutex<State>

    init(everyTick: Bool) { state = Mutex(State(everyTick: everyTick)) }

    /// The tick hook: stores the tick; resumes the service only if it asked to be woken by a tick, and the command
    /// worker only if it waits for the next tick's budget.
    func offer(_ tick: Tick) {
        let (service, gates) = state.withLock { s -> (CheckedContinuation<Tick?, Never>?, [CheckedContinuation<Void, Never>]) in
            s.ticks += 1
            let gates = s.gateWaiters
            if !gates.isEmpty { s.gateWaiters = []; s.gateWakes += gates.count }
            if let w = s.waiter, s.wantsTick || s.everyTick {
                s.waiter = nil
                s.wantsTick = false
                s.serviceWakes += 1
                return (w, gates)
            }
            s.newest = tick
            return (nil, gates)
        }
        service?.resume(returning: tick)
        for g in gates { g.resume() }
    }

    /// The service's side: the newest tick not yet taken, waiting (for the clock or, if asked, the hook) if there is
    /// none; nil once closed and empty.
    func next() async -> Tick? {
        await withCheckedContinuation { (c: CheckedContinuation<Tick?, Never>) in
            let now = state.withLock { s -> (Bool, Tick?) in
                if let t = s.newest { s.newest = nil; s.wantsTick = false; return (true, t) }
                if s.closed { return (true, nil) }
                s.waiter = c
                return (false, nil)
            }
            if now.0 { c.resume(returning: now.1) }
        }
    }

    /// The service's clock: a tick is due. Hands the newest tick to a waiting service (a busy one takes it when it
    /// asks) and returns nil; with no new tick, returns the tick count (the clock then waits for the next hand-off).
    func fire() -> Int? {
        let (resume, missing) = state.withLock { s -> ((CheckedContinuation<Tick?, Never>, Tick)?, Int?) in
            guard let t = s.newest else { return (nil, s.ticks) }
            guard let w = s.waiter else { return (nil, nil) }  // busy: it takes `t` when it asks
            s.waiter = nil
            s.newest = nil
            s.wantsTick = false
            return ((w, t), nil)
        }
        if let (w, t) = resume { w.resume(returning: t) }
        return missing
    }

    /// Shutdown: a waiting service gets the newest tick (or nil), and `next` returns nil after it; waiting commands go on.
    func close() {
        let (service, newest, gates) = state.withLock { s -> (CheckedContinuation<Tick?, Never>?, Tick?, [CheckedContinuation<Void, Never>]) in
            s.closed = true
            let g = s.gateWaiters
            s.gateWaiters = []
            guard let w = s.waiter else { return (nil, nil, g) }
            s.waiter = nil
            let t = s.newest
            s.newest = nil
            return (w, t, g)
        }
        service?.resume(returning: newest)
        for g in gates { g.resume() }
    }

    var ticks: Int { state.withLock { $0.ticks } }
    var hookWakes: (service: Int, others: Int) { state.withLock { ($0.serviceWakes, $0.gateWakes) } }
    /// The service waits in `next` (tests).
    var serviceWaiting: Bool { state.withLock { $0.waiter != nil } }
    /// Command admissions waiting for the next tick.
    var budgetWaiters: Int { state.withLock { $0.gateWaiters.count } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Waits until a tick after `tick` has been handed over (or the inbox is closed): the clock's task (a wake-up
    /// that was early) and the command worker (a used-up budget); the hook resumes them.
    func waitForTick(after tick: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.ticks > tick || s.closed { return true }
                s.gateWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}

/// The command budget (docs/fleet.md, "Commands"): how many fleet commands may change the loop per tick, and one
/// fast path per tick. Shared by the command worker (one at a time) and counted on the inbox's ticks.
final class LoopActionBudget<Tick: Sendable>: Sendable {
    let perTick: Int
    private let inbox: TickInbox<Tick>
    private let used = Mutex<(tick: Int, actions: Int, fastPathTick: Int?)>((-1, 0, nil))

    init(perTick: Int, inbox: TickInbox<Tick>) {
        precondition(perTick > 0, "the fleet command budget must be positive")
        self.perTick = perTick
        self.inbox = inbox
    }

    /// Returns once the current tick has budget left (waiting for the next tick if not), and takes one action.
    /// Returns the tick count it was granted in.
    /// `waiting`: called with the tick count before waiting for the next tick.
    @discardableResult
    func admit(waiting: (Int) -> Void = { _ in }) async -> Int {
        while true {
            let tick = inbox.ticks
            let granted = used.withLock { u -> Bool in
                if u.tick != tick { u = (tick, 0, u.fastPathTick) }
                guard u.actions < perTick else { return false }
                u.actions += 1
                return true
            }
            if granted || inbox.isClosed { return tick }
            waiting(tick)
            await inbox.waitForTick(after: tick)
        }
    }

    /// True for the first fast path asked for in the current tick; false after it (the caller then adds the event
    /// for the next tick instead of running a pass of its own).
    func takeFastPath() -> Bool {
        let tick = inbox.ticks
        return used.withLock { u in
            if u.fastPathTick == tick { return false }
            u.fastPathTick = tick
            return true
        }
    }
}
