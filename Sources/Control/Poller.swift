// The telemetry poller: reads every device's points through its profile and
// the read planner, by poll class, and keeps each value with its age.
// A device that fails is polled less and less often (backoff in ticks), so
// one dead device never stalls the bus it shares with others.

import HardwareProfiles
import Modbus
import Synchronization

/// The latest reading of one device.
public struct DeviceTelemetry: Sendable, Equatable {
    public var values: [String: Double] = [:]
    /// Labels of enum points (run_state …).
    public var labels: [String: String] = [:]
    /// Loop time (seconds) of the last successful read of each point.
    public var readAt: [String: Double] = [:]
    /// Loop time of the last fully or partly successful poll.
    public var lastSuccess: Double?
    public var lastError: String?
    public var consecutiveFailures = 0
    /// Poll latency of the last poll, seconds (wall clock of the transport).
    public var lastLatencyS: Double = 0

    public func age(_ point: String, now: Double) -> Double {
        guard let t = readAt[point] else { return .infinity }
        return now - t
    }
}

/// Everything the poller knows, by device id.
public struct TelemetrySnapshot: Sendable {
    public var devices: [String: DeviceTelemetry]
    public var takenAt: Double
}

/// One device's poll plans, by class.
struct DevicePlans: Sendable {
    var points: [ResolvedPoint]
    /// Plans for (fast), (fast+normal), (all).
    var byLevel: [PointReadPlan]
}

public final class Poller: Sendable {
    public struct Target: Sendable {
        public var id: String
        public var profile: DeviceProfile
        public var bus: any RegisterBus

        public init(id: String, profile: DeviceProfile, bus: any RegisterBus) {
            self.id = id
            self.profile = profile
            self.bus = bus
        }
    }

    public let targets: [Target]
    let plans: [DevicePlans]
    /// Normal points every `normalEvery` ticks, slow every `slowEvery`.
    public let normalEvery: Int
    public let slowEvery: Int
    let state: Mutex<(telemetry: [String: DeviceTelemetry], skipUntilTick: [Int], tick: Int, attempts: [String: Int])>
    let clock = ContinuousClock()

    /// Poll devices one after another instead of all at once: for in-memory buses (replays,
    /// soaks), where concurrency buys nothing and costs task switches and lock contention.
    public let serial: Bool

    public init(targets: [Target], normalEvery: Int = 5, slowEvery: Int = 60, serial: Bool = false) throws {
        self.targets = targets
        self.serial = serial
        self.normalEvery = max(1, normalEvery)
        self.slowEvery = max(1, slowEvery)
        var plans: [DevicePlans] = []
        for t in targets {
            let points = try t.profile.resolvedPoints().filter { $0.unavailable == nil }
            let limits = t.profile.transport.readLimits
            func plan(_ classes: Set<PollClass>) throws -> PointReadPlan {
                try PointReadPlan(points: points.filter { classes.contains($0.definition.poll) }, limits: limits)
            }
            plans.append(DevicePlans(points: points, byLevel: [try plan([.fast]), try plan([.fast, .normal]), try plan([.fast, .normal, .slow])]))
        }
        self.plans = plans
        state = Mutex((Dictionary(uniqueKeysWithValues: targets.map { ($0.id, DeviceTelemetry()) }),
                       [Int](repeating: 0, count: targets.count), 0, [:]))
    }

    public var snapshot: TelemetrySnapshot {
        state.withLock { TelemetrySnapshot(devices: $0.telemetry, takenAt: 0) }
    }

    public func telemetry(_ id: String) -> DeviceTelemetry? { state.withLock { $0.telemetry[id] } }

    /// Polls every device that is due at loop time `now`, all devices concurrently
    /// (each bus serialises its own requests). `level` 0 = fast only, 1 = +normal, 2 = all;
    /// by default chosen from the tick count.
    public func poll(now: Double, level: Int? = nil, only: Set<String>? = nil) async {
        let (tick, skip) = state.withLock { s -> (Int, [Int]) in
            s.tick += 1
            return (s.tick, s.skipUntilTick)
        }
        let lvl = level ?? Self.level(tick: tick, normalEvery: normalEvery, slowEvery: slowEvery)
        if serial {
            for (i, t) in targets.enumerated() where skip[i] <= tick && (only?.contains(t.id) ?? true) {
                await pollDevice(i, now: now, level: lvl, tick: tick)
            }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for (i, t) in targets.enumerated() where skip[i] <= tick && (only?.contains(t.id) ?? true) {
                group.addTask { await self.pollDevice(i, now: now, level: lvl, tick: tick) }
            }
        }
    }

    static func level(tick: Int, normalEvery: Int, slowEvery: Int) -> Int {
        tick == 1 || tick % slowEvery == 1 ? 2 : tick % normalEvery == 1 ? 1 : 0
    }

    /// Attempts per device so far (for tests and metrics).
    public func attempts(_ id: String) -> Int { state.withLock { $0.attempts[id] ?? 0 } }

    /// Polls one device and records the result; returns the ticks to wait before the next
    /// attempt (1 when healthy, growing while it fails).
    @discardableResult
    public func pollDevice(_ i: Int, now: Double, level lvl: Int, tick: Int) async -> Int {
        let t = targets[i]
        let plan = plans[i].byLevel[lvl]
        var tel = state.withLock { s -> DeviceTelemetry in
            s.attempts[t.id, default: 0] += 1
            return s.telemetry[t.id] ?? DeviceTelemetry()
        }
        let start = clock.now
        let results = await t.bus.execute(plan.requests, spans: plan.spans)
        var okCount = 0
        var firstError: String?
        for (pi, p) in plan.points.enumerated() {
            guard let si = plan.pointSpan[pi], let r = results[si] else { continue }
            var sfWord: UInt16?
            if let sfi = plan.scaleSpan[pi], case .success(let w)? = results[sfi] { sfWord = w.first }
            switch r {
            case .success(let words):
                switch PointDecoder.decode(p, words: words, scaleFactor: sfWord) {
                case .value(.number(let v)): tel.values[p.name] = v; tel.readAt[p.name] = now; okCount += 1
                case .value(.state(let c, let label)):
                    tel.values[p.name] = Double(c); tel.labels[p.name] = label; tel.readAt[p.name] = now; okCount += 1
                case .value(.bool(let b)): tel.values[p.name] = b ? 1 : 0; tel.readAt[p.name] = now; okCount += 1
                case .missing: okCount += 1
                case .failed(let why): firstError = firstError ?? "\(p.name): \(why)"
                }
            case .failure(let e):
                firstError = firstError ?? "\(e)"
            }
        }
        let elapsed = clock.now - start
        tel.lastLatencyS = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if okCount > 0 || plan.points.isEmpty {
            tel.lastSuccess = now
            tel.consecutiveFailures = 0
        } else {
            tel.consecutiveFailures += 1
        }
        tel.lastError = firstError
        // Back off a failing device: skip 1, 2, 4 … up to 30 ticks.
        let wait = tel.consecutiveFailures == 0 ? 1 : 1 + min(30, 1 << min(tel.consecutiveFailures - 1, 5))
        let final = tel
        state.withLock { s in
            s.telemetry[t.id] = final
            s.skipUntilTick[i] = tick + wait - 1 + (final.consecutiveFailures == 0 ? 0 : 1)
        }
        return wait
    }
}
