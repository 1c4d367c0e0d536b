// The actuators: write the setpoints the governor allows, only when they
// changed by more than a deadband or a keep-alive is due before the device's
// comm watchdog would expire; verify each write by reading it back; retry
// failed writes with backoff (never delaying a decrease). A read-back proves the
// register, not the container: `judge` (Actuation.swift) checks that the measured
// power follows each accepted setpoint, and a device that does not is re-written
// with backoff while it stays `not-following`.

import HardwareProfiles
import Modbus
import Synchronization

public struct WriteOutcome: Sendable, Equatable {
    public var device: String
    public var kw: Double
    public var verified: Bool
    public var error: DeviceFault?
    public var keepAlive: Bool
}

public final class Actuator: Sendable {
    public struct Target: Sendable {
        public var id: String
        public var bus: any RegisterBus
        public var setpoint: ResolvedPoint
        public var watchdog: ResolvedPoint?
        public var fallback: ResolvedPoint?
        public var watchdogS: Double
        public var fallbackKW: Double
        /// Write and verify in one FC23 transaction (the profile says the device supports it).
        public var combinedVerify: Bool

        public init(id: String, profile: DeviceProfile, bus: any RegisterBus, watchdogS: Double, fallbackKW: Double) throws {
            let points = try profile.resolvedPoints()
            guard let sp = points.first(where: { $0.name == "power_setpoint_w" }) else {
                throw ControlError("\(id): profile \(profile.id) has no power_setpoint_w")
            }
            self.id = id
            self.bus = bus
            self.setpoint = sp
            self.watchdog = points.first { $0.name == "comm_watchdog_s" }
            self.fallback = points.first { $0.name == "fallback_setpoint_w" }
            self.watchdogS = watchdogS
            self.fallbackKW = fallbackKW
            self.combinedVerify = profile.transport.writeReadFC23
        }
    }

    struct Track {
        var writtenKW: Double?
        var writtenAt = -Double.infinity
        var failures = 0
        var retryAt = -Double.infinity
        var configured = false
        /// Does the device's power follow what it accepted (judged on the poller's telemetry)?
        var follow = FollowTracker()
        var followModel = FollowModel(maxKW: .infinity, rampKWPerS: .infinity, ceiling: true)
    }

    public let targets: [Target]
    let index: [String: Int]
    public let deadbandKW: Double
    /// A keep-alive is written once this fraction of the watchdog has passed since the last write.
    public let keepAliveFraction: Double
    let tracks: Mutex<[Track]>
    public let followSettings: FollowSettings

    /// Counts failed writes as they happen.
    let metrics: ControlMetrics?

    public init(targets: [Target], deadbandKW: Double = 5, keepAliveFraction: Double = 0.4, follow: FollowSettings = .init(),
                metrics: ControlMetrics? = nil) {
        self.targets = targets
        self.metrics = metrics
        self.followSettings = follow
        self.index = Dictionary(uniqueKeysWithValues: targets.enumerated().map { ($1.id, $0) })
        self.deadbandKW = deadbandKW
        self.keepAliveFraction = keepAliveFraction
        self.tracks = Mutex([Track](repeating: Track(), count: targets.count))
    }

    public func lastWrittenKW(_ id: String) -> Double? {
        guard let i = index[id] else { return nil }
        return tracks.withLock { $0[i].writtenKW }
    }

    /// Writes the setpoints that need writing, all devices in parallel (each bus
    /// serialises its own requests). Devices in `force` are written regardless of
    /// deadband and backoff (the fast path). `shouldContinue(device)` is asked before each device's
    /// writes: false drops them (a pass pre-empted by a newer one; nothing is written, no backoff).
    @discardableResult
    public func apply(_ setpointsKW: [String: Double], now: Double, force: Set<String> = [],
                      shouldContinue: (@Sendable (String) -> Bool)? = nil) async -> [WriteOutcome] {
        await applyTimed(setpointsKW, now: now, force: force, shouldContinue: shouldContinue).0
    }

    /// `apply`, and where the writes' time went.
    public func applyTimed(_ setpointsKW: [String: Double], now: Double, force: Set<String> = [],
                           shouldContinue: (@Sendable (String) -> Bool)? = nil) async -> ([WriteOutcome], WriteTiming) {
        var jobs: [(Int, Double, Bool, Bool)] = []  // index, kW, keepAlive, configure
        tracks.withLock { t in
            for (id, kw) in setpointsKW.sorted(by: { $0.key < $1.key }) {
                guard let i = index[id] else { continue }
                let tr = t[i]
                let changed = tr.writtenKW.map { abs($0 - kw) > deadbandKW } ?? true
                let decrease = tr.writtenKW.map { kw < $0 - deadbandKW } ?? true
                let keepAliveDue = targets[i].watchdogS > 0 && now - tr.writtenAt >= targets[i].watchdogS * keepAliveFraction
                let forced = force.contains(id)
                // A device not following its setpoint is told again, at growing intervals.
                let followRetry = tr.follow.retryDue(at: now)
                guard changed || keepAliveDue || forced || !tr.configured || followRetry else { continue }
                // Backoff applies to increases and keep-alives only; a decrease is always retried.
                if now < tr.retryAt && !decrease && !forced { continue }
                if followRetry && !changed { t[i].follow.retried(at: now, settings: followSettings) }
                jobs.append((i, kw, !changed && keepAliveDue && !followRetry, !tr.configured))
            }
        }
        guard !jobs.isEmpty else { return ([], WriteTiming()) }
        let clock = ContinuousClock()
        let created = clock.now
        return await withTaskGroup(of: (Int, WriteOutcome?, Bool, DeviceWriteTiming).self) { group in
            for (i, kw, keepAlive, configure) in jobs {
                let t = targets[i]
                let executor = t.bus.preferredExecutor()
                let lane = executor.map { ObjectIdentifier($0) }
                // The device's whole write cycle on its connection's thread (one of them, in turn, where the
                // gateway allows several): its writes and read-backs go out in place, no hop each.
                group.addTask(executorPreference: executor) {
                    var timing = DeviceWriteTiming(lane: lane, queued: clock.now - created)
                    var configuredNow = !configure
                    if let shouldContinue, !shouldContinue(t.id) { return (i, nil, false, timing) }
                    let wireStart = clock.now
                    do {
                        if configure {
                            if let w = t.watchdog, t.watchdogS > 0 {
                                try await t.bus.writeRegisters(address: w.address, values: try PointEncoder.encode(t.watchdogS, for: w))
                            }
                            if let f = t.fallback {
                                try await t.bus.writeRegisters(address: f.address, values: try PointEncoder.encode(t.fallbackKW * 1000, for: f))
                            }
                            configuredNow = true
                            if let shouldContinue, !shouldContinue(t.id) { timing.wire = clock.now - wireStart; return (i, nil, true, timing) }
                        }
                        let words = try PointEncoder.encode((kw * 1000).rounded(), for: t.setpoint)
                        // Write and verify by read-back in one trip to the bus's connection (one FC23
                        // transaction where the device supports it).
                        let back = try await t.bus.writeAndReadBack(address: t.setpoint.address, values: words, combined: t.combinedVerify)
                        let verifyStart = clock.now
                        timing.wire = verifyStart - wireStart
                        let verified = back == words
                        timing.verify = clock.now - verifyStart
                        return (i, WriteOutcome(device: t.id, kw: kw, verified: verified,
                                                error: verified ? nil : .readBack(device: t.id, read: Array(back), written: Array(words)),
                                                keepAlive: keepAlive), configuredNow, timing)
                    } catch {
                        timing.wire = clock.now - wireStart
                        return (i, WriteOutcome(device: t.id, kw: kw, verified: false, error: DeviceFault(error), keepAlive: keepAlive), configuredNow, timing)
                    }
                }
            }
            var out: [WriteOutcome] = []
            var timing = WriteTiming()
            var busy: [ObjectIdentifier?: Duration] = [:]
            for await (i, result, configured, t) in group {
                timing.longestQueueWait = max(timing.longestQueueWait, t.queued)
                timing.longestWire = max(timing.longestWire, t.wire)
                timing.verify += t.verify
                busy[t.lane, default: .zero] += t.wire
                guard let outcome = result else {
                    if configured { tracks.withLock { $0[i].configured = true } }
                    continue
                }
                tracks.withLock { t in
                    t[i].configured = t[i].configured || configured
                    if outcome.verified {
                        t[i].follow.wrote(outcome.kw, at: now, model: t[i].followModel)
                        t[i].writtenKW = outcome.kw
                        t[i].writtenAt = now
                        t[i].failures = 0
                        t[i].retryAt = -Double.infinity
                    } else {
                        metrics?.writeFailed(outcome.device, outcome.error ?? .other("not verified"))
                        t[i].failures += 1
                        t[i].retryAt = now + Double(min(30, 1 << min(t[i].failures - 1, 5)))
                    }
                }
                out.append(outcome)
            }
            timing.busiestLaneWire = busy.values.max() ?? .zero
            timing.devices = jobs.count
            timing.lanes = busy.count
            return (out.sorted { $0.device < $1.device }, timing)
        }
    }
}

/// Where one `apply`'s time went.
public struct WriteTiming: Sendable, Equatable {
    /// The longest any device's write task waited to start (its connection busy with other writes, or scheduling).
    public var longestQueueWait: Duration = .zero
    /// The longest one device's writes and read-back took on the wire (call to answer; FC23 carries the read-back).
    public var longestWire: Duration = .zero
    /// The busiest connection: the sum of its devices' wire times (they are serialised on it).
    public var busiestLaneWire: Duration = .zero
    /// Comparing read-back words with the written ones, summed over devices.
    public var verify: Duration = .zero
    public var devices = 0
    /// Connections (executors) the writes went over; devices without one count as one.
    public var lanes = 0

    public init() {}
}

struct DeviceWriteTiming: Sendable {
    var lane: ObjectIdentifier?
    var queued: Duration
    var wire: Duration = .zero
    var verify: Duration = .zero
}

/// A configuration or wiring error in the controller.
public struct ControlError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
