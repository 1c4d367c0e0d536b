// The telemetry poller: reads every device's points through its profile and
// the read planner, by poll class, and keeps each value with its age.
// A device that fails is polled less and less often (backoff in ticks), so
// one dead device never stalls the bus it shares with others.

import HardwareProfiles
import Modbus
import Synchronization

/// The latest reading of one device.
///
/// Values live in slots, one per profile point, so a poll stores by index; the name-keyed
/// tables (`values`, `labels`, `readAt`) are views built on demand for the API and tests.
public struct DeviceTelemetry: Sendable, Equatable {
    /// The device's point names and their slots (shared by every copy).
    public final class Slots: Sendable, Equatable {
        public let names: [String]
        let index: [String: Int]
        public init(_ names: [String]) {
            self.names = names
            index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        }
        public static func == (a: Slots, b: Slots) -> Bool { a === b || a.names == b.names }
        public static let empty = Slots([])
    }

    public let slots: Slots
    /// By slot: the value (nil until read), its label (enum points) and the loop time it was read.
    var slotValue: [Double?]
    var slotLabel: [String?]
    var slotReadAt: [Double?]
    /// Loop time (seconds) of the last fully or partly successful poll.
    public var lastSuccess: Double?
    /// Why the last poll failed (typed: a Modbus error, or a point that did not decode).
    public var lastError: DeviceFault?
    public var consecutiveFailures = 0
    /// Poll latency of the last poll, seconds (wall clock of the transport).
    public var lastLatencyS: Double = 0

    public init(slots: Slots = .empty) {
        self.slots = slots
        slotValue = .init(repeating: nil, count: slots.names.count)
        slotLabel = .init(repeating: nil, count: slots.names.count)
        slotReadAt = .init(repeating: nil, count: slots.names.count)
    }

    /// The latest value of a point, or nil if it was never read.
    public func value(_ point: String) -> Double? { slots.index[point].flatMap { slotValue[$0] } }

    /// Answered its last poll, and has answered at least once.
    public var isReachable: Bool { consecutiveFailures == 0 && lastSuccess != nil }

    public func age(_ point: String, now: Double) -> Double {
        guard let i = slots.index[point], let t = slotReadAt[i] else { return .infinity }
        return now - t
    }

    public var values: [String: Double] { table(slotValue) }
    /// Labels of enum points (run_state …).
    public var labels: [String: String] { table(slotLabel) }
    /// Loop time (seconds) of the last successful read of each point.
    public var readAt: [String: Double] { table(slotReadAt) }

    func table<T>(_ column: [T?]) -> [String: T] {
        var out: [String: T] = [:]
        for (i, v) in column.enumerated() { if let v { out[slots.names[i]] = v } }
        return out
    }
}

/// Read access to every device's telemetry by id, borrowing the rows (no copies).
public struct TelemetryView {
    let rows: [DeviceTelemetry]
    let index: [String: Int]

    public func value(_ device: String, _ point: String) -> Double? {
        index[device].flatMap { rows[$0].value(point) }
    }
    public func age(_ device: String, _ point: String, now: Double) -> Double {
        index[device].map { rows[$0].age(point, now: now) } ?? .infinity
    }
    /// See `DeviceTelemetry.isReachable`; false for an unknown device.
    public func isReachable(_ device: String) -> Bool {
        index[device].map { rows[$0].isReachable } ?? false
    }
}

/// Everything the poller knows, by device id.
public struct TelemetrySnapshot: Sendable {
    public var devices: [String: DeviceTelemetry]
    public var takenAt: Double
}

/// One device's poll plans, by class.
struct DevicePlans: Sendable {
    /// Plans for (fast), (fast+normal), (all).
    var byLevel: [PointReadPlan]
    /// The telemetry slot of each plan's points.
    var slotOf: [[Int]]
    var slots: DeviceTelemetry.Slots
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
    /// Telemetry by target index (an array, so readers and the poll borrow rows in place).
    let state: Mutex<(telemetry: [DeviceTelemetry], skipUntilTick: [Int], tick: Int, attempts: [Int])>
    let indexByID: [String: Int]
    let clock = ContinuousClock()

    /// Poll devices one after another instead of all at once: for in-memory buses (replays,
    /// soaks), where concurrency buys nothing and costs task switches and lock contention.
    public let serial: Bool

    /// Counts failed polls and times answered ones, as they happen.
    let metrics: ControlMetrics?

    public init(targets: [Target], normalEvery: Int = 5, slowEvery: Int = 60, serial: Bool = false, metrics: ControlMetrics? = nil) throws {
        self.targets = targets
        self.metrics = metrics
        self.serial = serial
        self.normalEvery = max(1, normalEvery)
        self.slowEvery = max(1, slowEvery)
        var plans: [DevicePlans] = []
        // Devices of one profile share its plans (and their telemetry rows share its slot table): a site of 1,000
        // containers has three or four profiles, and a plan of its own for each device cost about 7 KB a device.
        // Shared only for the very same profile value (same id, file, limits and point storage), never for two
        // profiles that merely share an id.
        var byProfile: [String: (points: [PointDefinition], limits: ReadLimits, plans: DevicePlans)] = [:]
        func sameStorage(_ a: [PointDefinition], _ b: [PointDefinition]) -> Bool {
            a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.baseAddress == y.baseAddress && x.count == y.count } }
        }
        for t in targets {
            let limits = t.profile.transport.readLimits
            let key = t.profile.id + "\u{0}" + t.profile.file
            if let known = byProfile[key], known.limits == limits, sameStorage(known.points, t.profile.points) {
                plans.append(known.plans)
                continue
            }
            let points = try t.profile.resolvedPoints().filter { $0.unavailable == nil }
            func plan(_ classes: Set<PollClass>) throws -> PointReadPlan {
                try PointReadPlan(points: points.filter { classes.contains($0.definition.poll) }, limits: limits)
            }
            let levels = [try plan([.fast]), try plan([.fast, .normal]), try plan([.fast, .normal, .slow])]
            let slots = DeviceTelemetry.Slots(points.map(\.name))
            let made = DevicePlans(byLevel: levels, slotOf: levels.map { $0.points.map { slots.index[$0.name]! } }, slots: slots)
            byProfile[key] = (t.profile.points, limits, made)
            plans.append(made)
        }
        self.plans = plans
        state = Mutex((plans.map { DeviceTelemetry(slots: $0.slots) },
                       [Int](repeating: 0, count: targets.count), 0, [Int](repeating: 0, count: targets.count)))
        indexByID = Dictionary(targets.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public var snapshot: TelemetrySnapshot {
        state.withLock { s in
            TelemetrySnapshot(devices: Dictionary(zip(targets, s.telemetry).map { ($0.id, $1) }, uniquingKeysWith: { a, _ in a }), takenAt: 0)
        }
    }

    public func telemetry(_ id: String) -> DeviceTelemetry? {
        guard let i = indexByID[id] else { return nil }
        return state.withLock { $0.telemetry[i] }
    }

    /// Reads several devices' telemetry under one lock, without copying it out.
    public func withTelemetry<T>(_ body: (TelemetryView) -> T) -> T {
        state.withLock { body(TelemetryView(rows: $0.telemetry, index: indexByID)) }
    }

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
            for i in targets.indices where skip[i] <= tick && (only?.contains(targets[i].id) ?? true) {
                await pollDevice(i, now: now, level: lvl, tick: tick)
            }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for i in targets.indices where skip[i] <= tick && (only?.contains(targets[i].id) ?? true) {
                // On the device's connection thread where it has one: its requests go out in place, no hop each.
                group.addTask(executorPreference: targets[i].bus.preferredExecutor()) {
                    await self.pollDevice(i, now: now, level: lvl, tick: tick)
                }
            }
        }
    }

    static func level(tick: Int, normalEvery: Int, slowEvery: Int) -> Int {
        tick == 1 || tick % slowEvery == 1 ? 2 : tick % normalEvery == 1 ? 1 : 0
    }

    /// Devices that have not answered a single poll yet, in target order.
    public var neverAnswered: [String] {
        state.withLock { s in targets.indices.filter { s.telemetry[$0].lastSuccess == nil }.map { targets[$0].id } }
    }

    /// Attempts per device so far (for tests and metrics).
    public func attempts(_ id: String) -> Int {
        guard let i = indexByID[id] else { return 0 }
        return state.withLock { $0.attempts[i] }
    }

    /// Polls one device and records the result; returns the ticks to wait before the next
    /// attempt (1 when healthy, growing while it fails).
    @discardableResult
    public func pollDevice(_ i: Int, now: Double, level lvl: Int, tick: Int) async -> Int {
        let start = clock.now
        let results = await targets[i].bus.execute(plans[i].byLevel[lvl].requests, spans: plans[i].byLevel[lvl].spans)
        let elapsed = clock.now - start
        let latency = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return record(i, level: lvl, results, now: now, tick: tick, latency: latency)
    }

    /// Decodes a poll's results (outside the lock), then updates the stored telemetry in place.
    func record(_ i: Int, level lvl: Int, _ results: [SpanResult?], now: Double, tick: Int, latency: Double) -> Int {
        let plan = plans[i].byLevel[lvl]
        let slotOf = plans[i].slotOf[lvl]
        var outcomes: [(Int, PointOutcome)] = []
        outcomes.reserveCapacity(plan.points.count)
        var transportError: DeviceFault?
        for pi in plan.points.indices {
            guard let si = plan.pointSpan[pi], let r = results[si] else { continue }
            switch r {
            case .success(let words):
                var sfWord: UInt16?
                if let sfi = plan.scaleSpan[pi], case .success(let w)? = results[sfi] { sfWord = w.first }
                outcomes.append((pi, PointDecoder.decode(plan.points, pi, words: words, scaleFactor: sfWord)))
            case .failure(let e):
                transportError = transportError ?? .modbus(e)
            }
        }
        let (wait, answered, fault) = state.withLock { s -> (Int, Bool, DeviceFault?) in
            s.attempts[i] += 1
            var okCount = 0
            var firstError: DeviceFault?
            s.telemetry[i].record { tel in
                for (pi, outcome) in outcomes {
                    let k = slotOf[pi]
                    switch outcome {
                    case .value(.number(let v)): tel.slotValue[k] = v; tel.slotReadAt[k] = now; okCount += 1
                    case .value(.state(let c, let label)):
                        tel.slotValue[k] = Double(c); tel.slotLabel[k] = label; tel.slotReadAt[k] = now; okCount += 1
                    case .value(.bool(let b)): tel.slotValue[k] = b ? 1 : 0; tel.slotReadAt[k] = now; okCount += 1
                    case .missing: okCount += 1
                    case .failed(let why): firstError = firstError ?? .point(plan.points[pi].name, reason: why)
                    }
                }
                firstError = firstError ?? transportError
                tel.lastLatencyS = latency
                if okCount > 0 || plan.points.isEmpty {
                    tel.lastSuccess = now
                    tel.consecutiveFailures = 0
                } else {
                    tel.consecutiveFailures += 1
                }
                tel.lastError = firstError
            }
            // Back off a failing device: skip 1, 2, 4 … up to 30 ticks.
            let failures = s.telemetry[i].consecutiveFailures
            let wait = failures == 0 ? 1 : 1 + min(30, 1 << min(failures - 1, 5))
            s.skipUntilTick[i] = tick + wait - 1 + (failures == 0 ? 0 : 1)
            return (wait, failures == 0, s.telemetry[i].lastError)
        }
        // Every failed poll counts here, whatever the streak does before anyone looks.
        if answered {
            metrics?.pollAnswered(targets[i].id, latencyS: latency)
        } else {
            metrics?.pollFailed(targets[i].id, fault ?? .other("no answer"))
        }
        return wait
    }
}

extension DeviceTelemetry {
    /// Changes the telemetry in place, through the array's element accessor (no copy of its columns).
    mutating func record(_ body: (inout DeviceTelemetry) -> Void) { body(&self) }
}
