// Applying a new site configuration to a running daemon, at a tick boundary.
//
// `ControlLoop` is immutable in its site model, so a new configuration means a
// new loop. `LoopHost` holds the current loop; `HostedControlLoopService` ticks
// whichever loop is current and, between two ticks, swaps in a new one built
// from the old loop's persisted state (commanded setpoints, events, overrides,
// dwell timers). The new loop's governor then ramps from those commanded
// setpoints under its own caps and ramp limits: the transition is planned by
// the governor, not jumped. `FollowingService` runs a per-loop service (the
// poller, the frequency watch, the state file) for the current loop and
// restarts it on every swap.

import Foundation
import Logging
import ServiceLifecycle
import Site
import Synchronization

public final class LoopHost: Sendable {
    /// Builds a loop for a site, resuming from a state (the daemon's bus and profile wiring).
    public typealias Builder = @Sendable (Site, LoopState) throws -> ControlLoop

    struct Pending {
        var site: Site
        var label: String
        var continuation: CheckedContinuation<ControlLoop, any Error>
    }

    struct State {
        var loop: ControlLoop
        var generation = 0
        var pending: [Pending] = []
        var watchers: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWatcher = 0
    }

    let state: Mutex<State>
    public let builder: Builder

    public init(loop: ControlLoop, builder: @escaping Builder) {
        self.state = Mutex(State(loop: loop))
        self.builder = builder
    }

    public var current: ControlLoop { state.withLock { $0.loop } }
    public var generation: Int { state.withLock { $0.generation } }

    /// Checks that a loop can be built for `site` (profiles load, every device wires up),
    /// without touching the running loop.
    public func validate(_ site: Site) throws {
        _ = try builder(site, LoopState())
    }

    /// Queues `site` for the next tick boundary and waits until it runs (or fails to build).
    public func apply(_ site: Site, label: String) async throws -> ControlLoop {
        try await withCheckedThrowingContinuation { c in
            state.withLock { $0.pending.append(Pending(site: site, label: label, continuation: c)) }
        }
    }

    /// Called by the tick service between ticks: builds and installs every queued site, in order.
    /// The handover is a pass of its own: under the loops' shared writer, so no pass of the old loop
    /// is in flight, and none runs on it afterwards (the old loop forwards to the new one). The new loop
    /// starts from the old one's latest state and telemetry (a swap is not a comm loss).
    /// Returns the labels applied, for logging.
    @discardableResult
    public func swapPending() async -> [String] {
        let work = state.withLock { s -> [Pending] in defer { s.pending = [] }; return s.pending }
        guard !work.isEmpty else { return [] }
        var applied: [String] = []
        for p in work {
            let old = current
            do {
                let new = try builder(p.site, old.persistentState)
                let writer = old.writer
                await writer.acquire()
                new.takeOver(from: old)
                let watchers = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.loop = new
                    s.generation += 1
                    defer { s.watchers = [:] }
                    return Array(s.watchers.values)
                }
                writer.bump()
                writer.release()
                for w in watchers { w.resume() }
                applied.append(p.label)
                p.continuation.resume(returning: new)
            } catch {
                p.continuation.resume(throwing: error)
            }
        }
        return applied
    }

    /// Fails every queued apply (the loop is stopping).
    public func failPending(_ reason: String) {
        let work = state.withLock { s -> [Pending] in defer { s.pending = [] }; return s.pending }
        for p in work { p.continuation.resume(throwing: ControlError(reason)) }
    }

    /// Returns once the generation is past `generation` (or the task is cancelled).
    public func waitForSwap(after generation: Int) async {
        let id = state.withLock { s -> Int in s.nextWatcher += 1; return s.nextWatcher }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.generation > generation || Task.isCancelled { return true }
                    s.watchers[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { s in s.watchers.removeValue(forKey: id) }
            c?.resume()
        }
    }
}

/// The control loop as a service, for a `LoopHost`: ticks the current loop, and swaps in new
/// configurations between ticks. On shutdown, leaves the current loop's containers safe.
public struct HostedControlLoopService<C: Clock>: Service where C.Duration == Duration {
    public let host: LoopHost
    public let time: LoopTime<C>
    public let period: Duration
    public let logger: Logger
    public let externalPolling: Bool
    public let onTick: @Sendable (TickReport, Duration) -> Void

    public init(host: LoopHost, time: LoopTime<C>, period: Duration, logger: Logger, externalPolling: Bool = false,
                onTick: @escaping @Sendable (TickReport, Duration) -> Void = { _, _ in }) {
        self.host = host
        self.time = time
        self.period = period
        self.logger = logger
        self.externalPolling = externalPolling
        self.onTick = onTick
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var next = time.clock.now
            while !Task.isCancelled {
                for label in await host.swapPending() {
                    logger.notice("configuration applied at tick boundary", metadata: ["config.version": "\(label)"])
                }
                let loop = host.current
                let started = ContinuousClock.now
                let report = await loop.tick(now: time.now, poll: !externalPolling)
                let took = ContinuousClock.now - started
                for note in report.interventions {
                    logger.notice("governor intervention", metadata: ["governor.note": "\(note)"])
                }
                for w in report.writes where !w.verified {
                    logger.warning("setpoint write failed", metadata: ["device.id": "\(w.device)", "error": "\(w.error?.description ?? "")"])
                }
                onTick(report, took)
                next = next.advanced(by: period)
                do { try await time.clock.sleep(until: next, tolerance: nil) } catch { break }
            }
        }
        host.failPending("the control loop is shutting down; configuration not applied")
        let loop = host.current
        let writes = await loop.enterSafeState(now: time.now)
        loop.logShutdown(writes, logger: logger)
    }
}

/// Runs `make(currentLoop)` and restarts it for the new loop after every swap
/// (for `PollerService`, `FrequencyWatchService`, `StateStoreService`).
public struct FollowingService: Service {
    public let host: LoopHost
    public let make: @Sendable (ControlLoop) -> any Service

    public init(host: LoopHost, make: @escaping @Sendable (ControlLoop) -> any Service) {
        self.host = host
        self.make = make
    }

    public func run() async throws {
        while !Task.isCancelled {
            let (loop, gen) = host.state.withLock { ($0.loop, $0.generation) }
            let service = make(loop)
            let swapped = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask { try await service.run(); return false }
                group.addTask { await host.waitForSwap(after: gen); return !Task.isCancelled }
                let first = try await group.next() ?? false
                group.cancelAll()
                while (try? await group.next()) != nil {}
                return first
            }
            if !swapped { return }
        }
    }
}

extension Override {
    /// `Override`'s memberwise initialiser is internal; the API creates overrides through this.
    public static func make(device: String, kw: Double, until: Double) -> Override {
        Override(device: device, kw: kw, until: until)
    }
}

extension ControlLoop {
    /// Config swap, under the shared writer: this (new) loop takes the old one's latest state, its writer,
    /// its last report and the telemetry of every device that is the same device on the same bus; the old
    /// loop is retired (its operator actions and passes go to this one from now on).
    func takeOver(from old: ControlLoop) {
        let latest = old.persistentState
        state.withLock { $0 = latest }
        frequencyLow.withLock { $0 = old.frequencyLow.withLock { $0 } }
        startupBox.withLock { $0 = old.startupBox.withLock { $0 } }
        lastReportBox.withLock { $0 = old.lastReport }
        poller.adoptTelemetry(from: old.poller)
        let writer = old.writer
        handover.withLock { $0.writer = writer }
        old.handover.withLock { $0.successor = self }
    }
}

extension Poller {
    /// Copies the telemetry of every device that `old` polled too, as the same device (same point slots)
    /// on the same bus (name and unit): the new loop's first tick sees what the old one saw, with its ages.
    func adoptTelemetry(from old: Poller) {
        let rows = old.state.withLock { $0.telemetry }
        state.withLock { s in
            for (i, t) in targets.enumerated() {
                guard let j = old.indexByID[t.id] else { continue }
                let o = old.targets[j]
                guard o.bus.deviceName == t.bus.deviceName, o.bus.unit == t.bus.unit, rows[j].slots == s.telemetry[i].slots else { continue }
                s.telemetry[i] = rows[j]
            }
        }
    }
}
