// The daemon's long-running parts, each a swift-service-lifecycle `Service`
// in one `ServiceGroup` (see `switchyard serve`).

import Basics
import Broker
import Foundation
import Logging
import Safety
import ServiceLifecycle

/// Loop time: seconds since 1970 on the injected clock. Production anchors a
/// ContinuousClock to the wall clock once; tests and replays use a ManualClock.
public struct LoopTime<C: Clock>: Sendable where C.Duration == Duration {
    public let clock: C
    public let origin: C.Instant
    public let originSeconds: Double
    public let speed: Double

    public init(clock: C, startingAt seconds: Double, speed: Double = 1) {
        self.clock = clock
        self.origin = clock.now
        self.originSeconds = seconds
        self.speed = speed
    }

    public var now: Double {
        let d = origin.duration(to: clock.now)
        return originSeconds + speed * (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
}

/// Polls every device on its own cadence, independently: a dead device backs off
/// alone and never delays the others. The control loop reads the latest telemetry.
public struct PollerService<C: Clock>: Service where C.Duration == Duration {
    public let poller: Poller
    public let time: LoopTime<C>
    public let period: Duration

    public init(poller: Poller, time: LoopTime<C>, period: Duration) {
        self.poller = poller
        self.time = time
        self.period = period
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for i in poller.targets.indices {
                    group.addTask {
                        var tick = 0
                        var next = time.clock.now
                        while !Task.isCancelled {
                            tick += 1
                            let lvl = Poller.level(tick: tick, normalEvery: poller.normalEvery, slowEvery: poller.slowEvery)
                            let wait = await poller.pollDevice(i, now: time.now, level: lvl, tick: tick)
                            next = next.advanced(by: period * wait)
                            if time.clock.now > next { next = time.clock.now }
                            do { try await time.clock.sleep(until: next, tolerance: nil) } catch { return }
                        }
                    }
                }
            }
        }
    }
}

/// Watches the site meter's frequency between ticks and runs the fast path on an under-frequency excursion.
/// The pass it runs is traced by the loop writer's observer (see `LoopWriter.onPass`); `onTrip` is for tests.
public struct FrequencyWatchService<C: Clock>: Service where C.Duration == Duration {
    public let loop: ControlLoop
    public let time: LoopTime<C>
    public let period: Duration
    public let logger: Logger
    public let onTrip: @Sendable (TickReport) -> Void

    public init(loop: ControlLoop, time: LoopTime<C>, period: Duration = .milliseconds(100), logger: Logger,
                onTrip: @escaping @Sendable (TickReport) -> Void = { _ in }) {
        self.loop = loop
        self.time = time
        self.period = period
        self.logger = logger
        self.onTrip = onTrip
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let r = await loop.watchFrequency(now: time.now) {
                    logger.warning("under-frequency trip", metadata: ["pass.trigger": "\(r.trigger)", "pass.writes": "\(r.writesSummary)"])
                    onTrip(r)
                } else if let r = await loop.watchInference(now: time.now) {
                    logger.notice("fast path", metadata: ["reason": "\(r.fastPath ?? "")", "writes": "\(r.writes.count)"])
                    onTrip(r)
                }
                do { try await time.clock.sleep(for: period) } catch { break }
            }
        }
    }
}

/// Persists the loop's state atomically (write to a temporary file, fsync, rename):
/// periodically and on shutdown, so a restart resumes where it stopped.
public struct StateStoreService<C: Clock>: Service where C.Duration == Duration {
    public let loop: ControlLoop
    public let store: StateFile
    public let clock: C
    public let period: Duration
    public let logger: Logger

    public init(loop: ControlLoop, store: StateFile, clock: C, period: Duration = .seconds(5), logger: Logger) {
        self.loop = loop
        self.store = store
        self.clock = clock
        self.period = period
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await clock.sleep(for: period) } catch { break }
                save()
            }
        }
        save()
    }

    func save() {
        do { try store.save(loop.persistentState) } catch {
            logger.error("state not saved", metadata: ["path": "\(store.path)", "error": "\(error)"])
        }
    }
}

/// The loop's state on disk, as JSON, replaced atomically.
public struct StateFile: Sendable {
    public let path: String

    public init(directory: String) {
        path = URL(fileURLWithPath: directory).appendingPathComponent("loop-state.json").path
    }

    public func load() throws -> LoopState? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(LoopState.self, from: data)
    }

    /// Temporary file (0600: the state dir is private), fsync, rename, then fsync of the directory so
    /// the rename itself survives a power cut (without it the old file can come back after a crash).
    public func save(_ state: LoopState) throws {
        let data = try JSONEncoder().encode(state)
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw ControlError("cannot write \(tmp)")
        }
        chmod(tmp, 0o600)  // an old .tmp left by a crash keeps its mode otherwise
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        if rename(tmp, path) != 0 { throw ControlError("cannot replace \(path): errno \(errno)") }
        syncDirectory()
    }

    /// fsync of the directory holding the file (makes the rename durable).
    func syncDirectory() {
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

extension ControlLoop {
    /// Shutdown: mining to 0, inference held (its comm-watchdog fallback takes over if we stay away).
    /// The last pass: it waits for the pass in flight, and no pass writes after it.
    @discardableResult
    public func enterSafeState(now: Double) async -> [WriteOutcome] {
        if let next = successor { return await next.enterSafeState(now: now) }
        let writer = self.writer
        await writer.acquire()
        if let next = successor { writer.release(); return await next.enterSafeState(now: now) }
        var sp: [String: Double] = [:]
        for d in plant.devices where d.deviceClass == .mining { sp[d.id] = 0 }
        let writes = await actuator.apply(sp, now: writer.passTime(now), force: Set(sp.keys))
        writer.close()
        state.withLock { s in for w in writes where w.verified { s.commandedKW[w.device] = w.kw } }
        writer.release()
        return writes
    }

    /// What a container whose shutdown write failed does next: its comm watchdog's fallback, or its last setpoint.
    public func fallbackAfterFailedWrite(_ device: String) -> String {
        guard let t = actuator.targets.first(where: { $0.id == device }) else { return "\(device): not controlled" }
        let configured = actuator.index[device].map { i in actuator.tracks.withLock { $0[i].configured } } ?? false
        let last = actuator.lastWrittenKW(device).map { "last written \(fmtKW($0))" } ?? "never written by this run"
        if t.watchdog != nil, t.watchdogS > 0, configured {
            let to = t.fallback != nil ? fmtKW(t.fallbackKW) : "its firmware's fallback setpoint"
            return "\(device): runs at its current setpoint (\(last)) until its \(fmtS(t.watchdogS)) comm watchdog expires, then \(to)"
        }
        if t.watchdog != nil, t.watchdogS <= 0 {
            return "\(device): keeps its current setpoint (\(last)) until its own comm watchdog, if the device has one set, expires (switchyard leaves it alone: watchdog 0)"
        }
        if t.watchdog != nil {
            return "\(device): keeps its current setpoint (\(last)); its comm watchdog was never configured by this run (unreachable since start)"
        }
        return "\(device): keeps its current setpoint (\(last)); its profile has no comm watchdog"
    }

    /// The shutdown log record: which containers were written, which failed, and what the failed ones fall back to.
    public func logShutdown(_ writes: [WriteOutcome], logger: Logger) {
        let ok = writes.filter(\.verified).map(\.device), bad = writes.filter { !$0.verified }
        let held = plant.devices.filter { $0.deviceClass != .mining }.map(\.id)
        var metadata: Logger.Metadata = [
            "written": "\(ok.joined(separator: ", "))",
            "failed": "\(bad.map { "\($0.device) (\($0.error?.description ?? "?"))" }.joined(separator: ", "))",
            "inference_held": "\(held.joined(separator: ", "))",
        ]
        if bad.isEmpty {
            logger.notice("shutdown: mining set to 0 kW on \(ok.count) container(s), every write verified; inference left at its setpoint", metadata: metadata)
        } else {
            metadata["fallback"] = "\(bad.map { fallbackAfterFailedWrite($0.device) }.joined(separator: "; "))"
            logger.warning("shutdown: mining set to 0 kW on \(ok.count) of \(writes.count) container(s); \(bad.count) write(s) failed, see fallback",
                           metadata: metadata)
        }
    }
}
