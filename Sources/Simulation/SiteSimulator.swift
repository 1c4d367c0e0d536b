// The simulated site: device physics on virtual time, meters that sum through
// the capacity tree, breakers with an inverse-time trip curve, and each
// device's registers laid out by its hardware profile.
//
// All state sits behind one mutex, so the in-memory buses, the wire host and
// the stepping loop can share one simulator. Stepping is deterministic for a
// given seed: the same spec, seed and writes give the same trajectory.

import Foundation
import HardwareProfiles
import Modbus
import Synchronization

/// A fault injected into one device.
public enum SimFault: Sendable, Equatable {
    /// The device stops answering (clients time out).
    case silent
    /// The device answers every request with this exception.
    case exception(ModbusException)
    /// Garbled responses.
    case garbage
    /// Truncated responses.
    case short
    /// Responses delayed by this many milliseconds (over the wire; in memory the delay is reported, not slept).
    case delay(milliseconds: Int)
    /// The values stop changing (a stuck meter).
    case frozen
    /// The connection is dropped on each request.
    case disconnect
    /// The device is gone for good (as `silent`, never cleared).
    case vanish
    /// A container that answers every request and accepts every write (its setpoint register reads
    /// back what was written) but keeps drawing what it drew when the fault began: a silently
    /// refusing controller, or one stuck in local mode.
    case ignoreSetpoint
}

public struct BreakerTrip: Sendable, Equatable, CustomStringConvertible {
    public var node: String
    public var atSeconds: Double
    public var loadKW: Double
    public var capKW: Double
    public var description: String {
        "breaker \(node) tripped at t=\(String(format: "%.1f", atSeconds)) s: \(String(format: "%.0f", loadKW)) kW on a \(String(format: "%.0f", capKW)) kW cap"
    }
}

/// A one-line view of the site.
public struct SimSummary: Sendable, Equatable {
    public var timeSeconds: Double
    public var siteKW: Double
    public var miningKW: Double
    public var inferenceKW: Double
    public var auxiliaryKW: Double
    public var hashrateTHs: Double
    public var trips: [BreakerTrip]
    public var nodeKW: [String: Double]
}

/// The site after a step, by device and node index (the simulator's `spec` order).
public struct SimReadings: Sendable {
    public var timeSeconds: Double
    public var siteKW = 0.0
    public var miningKW = 0.0
    public var inferenceKW = 0.0
    public var auxiliaryKW = 0.0
    public var hashrateTHs = 0.0
    /// Drawn power per device, without measurement noise.
    public var powerKW: [Double]
    /// GPU containers: the inference demand in force (kW, as the device reports it); 0 for others.
    public var demandKW: [Double]
    /// ASIC containers: hashrate (TH/s) as the device reports it, noise included; 0 for others.
    public var hashrateTHsByDevice: [Double]
    /// Load per node.
    public var nodeKW: [Double] = []

    init(timeSeconds: Double, count: Int) {
        self.timeSeconds = timeSeconds
        powerKW = .init(repeating: 0, count: count)
        demandKW = powerKW
        hashrateTHsByDevice = powerKW
    }
}

struct DeviceState {
    var powerKW = 0.0
    var refKW = 0.0
    var setpointKW = 0.0
    var fallbackKW = 0.0
    var watchdogS = 60.0
    var lastWriteAt = 0.0
    var runCommand = 1  // 0 stop, 1 run, 2 sleep
    var gpuCapW = 700.0
    var rampKWPerS = 100.0
    var energyKWh = 0.0
    var fallbackActive = false
    var noiseKW = 0.0
    var demandKW = 0.0
    var fault: SimFault?
    var faultUntil: Double?
    var frozen: [String: Double]?
    /// With `ignoreSetpoint`: the power target the container keeps, whatever it is told.
    var heldTargetKW: Double?
    var frequencyOverride: (hz: Double, until: Double)?
    /// An inference demand burst: demand at this fraction of max until a time (GPU containers).
    var demandBurst: (fraction: Double, until: Double)?
    var writes = 0
}

struct SimState {
    var time = 0.0
    var devices: [DeviceState]
    var nodeLoadKW: [Double]
    var nodeHeat: [Double]
    var nodeTripped: [Bool]
    var nodeEnergyKWh: [Double]
    var trips: [BreakerTrip] = []
    var rng: SplitMix
    var scheduled: [ScheduledFault] = []
    var nextScheduled = 0
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    mutating func gaussian() -> Double {
        let u1 = max(unit(), 1e-12), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// A fault scheduled by a scenario.
public struct ScheduledFault: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case fault(SimFault)
        case frequency(hz: Double)
        /// Inference demand jumps to this fraction of the GPU container's max power (a burst).
        case inferenceBurst(fractionOfMax: Double)
        case clear
    }
    public var atSeconds: Double
    public var device: String
    public var action: Action
    public var durationSeconds: Double?

    public init(atSeconds: Double, device: String, action: Action, durationSeconds: Double? = nil) {
        self.atSeconds = atSeconds
        self.device = device
        self.action = action
        self.durationSeconds = durationSeconds
    }
}

/// One device's registers: its profile's points with fixed addresses.
struct DeviceLayout: Sendable {
    var points: [ResolvedPoint]
    /// The same points, compiled for the read path: what each measures and how it is encoded.
    var served: [ServedPoint] = []
    /// Per table, the smallest range covering every point.
    var ranges: [ModbusTable: Range<Int>]
    /// Enum code by label, for run_state / run_command.
    var stateCodes: [String: Int]
    var commandLabels: [Int: String]
    /// PDU outlet number → index of the device it feeds.
    var outletDevice: [Int: Int] = [:]
}

/// What a point measures, resolved from its name once (not on every read).
enum PointKind: Sendable, Equatable {
    case activePower, powerSetpoint, fallbackSetpoint, commWatchdog, runCommand, runState, alarmBits
    case inletTemperature, coolantTemperature, hashrate, gpuPowerCap, inferenceDemand
    case watchdogRemaining, fallbackActive, deviceEnergy, rampRate, minersTotal, minersOnline, gpusTotal, gpusOnline
    case importEnergy, exportEnergy, voltage, current, phasePower, frequency, powerFactor, totalEnergy
    case apparentPower, reactivePower
    case outletPower(Int), outletState(Int)
    case unknown

    init(_ name: String) {
        switch name {
        case "active_power_w": self = .activePower
        case "power_setpoint_w": self = .powerSetpoint
        case "fallback_setpoint_w": self = .fallbackSetpoint
        case "comm_watchdog_s": self = .commWatchdog
        case "run_command": self = .runCommand
        case "run_state": self = .runState
        case "alarm_bits": self = .alarmBits
        case "inlet_temperature_c": self = .inletTemperature
        case "coolant_temperature_c": self = .coolantTemperature
        case "hashrate_ths": self = .hashrate
        case "gpu_power_cap_w": self = .gpuPowerCap
        case "inference_demand_w": self = .inferenceDemand
        case "x_watchdog_remaining_s": self = .watchdogRemaining
        case "x_fallback_active": self = .fallbackActive
        case "x_import_energy_kwh": self = .deviceEnergy
        case "x_ramp_rate_w_per_s": self = .rampRate
        case "x_miners_total": self = .minersTotal
        case "x_miners_online": self = .minersOnline
        case "x_gpus_total": self = .gpusTotal
        case "x_gpus_online": self = .gpusOnline
        case "import_energy_kwh": self = .importEnergy
        case "export_energy_kwh": self = .exportEnergy
        case "voltage_l1_v", "voltage_l2_v", "voltage_l3_v": self = .voltage
        case "current_l1_a", "current_l2_a", "current_l3_a": self = .current
        case "x_power_l1_w", "x_power_l2_w", "x_power_l3_w": self = .phasePower
        case "frequency_hz": self = .frequency
        case "power_factor", "x_cos_phi_l1", "x_cos_phi_l2", "x_cos_phi_l3": self = .powerFactor
        case "x_total_energy_kwh", "x_real_energy_kwh": self = .totalEnergy
        case "x_apparent_power_va": self = .apparentPower
        case "x_reactive_power_var": self = .reactivePower
        default:
            let parts = name.split(separator: "_")
            if parts.count >= 2, parts[0] == "outlet", let n = Int(parts[1]) {
                self = name.hasSuffix("_state") ? .outletState(n) : .outletPower(n)
            } else {
                self = .unknown
            }
        }
    }
}

/// One point of a device as the simulator serves it.
struct ServedPoint: Sendable {
    var name: String
    var kind: PointKind
    var table: ModbusTable
    var address: Int
    var count: Int
    var writable: Bool
    var encoding: PointEncoder.Encoding
    /// Registers that never change (SunSpec's "SunS" marker, model headers, scale factors, end marker).
    var fixed: [UInt16]? = nil
    /// The SunSpec scale factor the point's value is served with.
    var sunSpecSF: Int16? = nil
}

/// The physics parameters of one device, flat (no profile), for the stepping loop.
struct Physics: Sendable {
    var role: SimRole
    var maxKW: Double
    var lagSeconds: Double
    var noiseFraction: Double
    var gpus: Int
    var auxFraction: Double
    var baseKW: Double
    var demandCurve: [Double]
    var efficiencyJPerTH: Double
    var isContainer: Bool { role == .asicContainer || role == .gpuContainer }
}

public final class SiteSimulator: Sendable {
    public let spec: SimSiteSpec
    let physics: [Physics]
    let nodeCaps: [Double]
    let nodeTrips: [TripCurve]
    let layouts: [DeviceLayout]
    let deviceIndex: [String: Int]
    let nodeIndex: [String: Int]
    let nodeParent: [Int?]
    /// Node indices from the device's node up to the root.
    let deviceAncestors: [[Int]]
    let nodeAncestors: [[Int]]
    /// Meters, PDUs and metered loads: how the meter is wired (nil for containers and unmetered loads).
    let wiring: [MeterWiring?]
    let state: Mutex<SimState>

    public init(spec: SimSiteSpec, seed: UInt64 = 1) throws(SimSpecError) {
        self.spec = spec
        var nIndex: [String: Int] = [:]
        for (i, n) in spec.nodes.enumerated() {
            guard nIndex[n.id] == nil else { throw SimSpecError(message: "node '\(n.id)' is defined twice") }
            nIndex[n.id] = i
        }
        var parents: [Int?] = []
        for n in spec.nodes {
            if let p = n.parent {
                guard let pi = nIndex[p] else { throw SimSpecError(message: "node '\(n.id)': parent '\(p)' does not exist") }
                parents.append(pi)
            } else {
                parents.append(nil)
            }
        }
        func ancestors(_ start: Int) throws(SimSpecError) -> [Int] {
            var out: [Int] = []
            var cur: Int? = start
            while let c = cur {
                if out.contains(c) { throw SimSpecError(message: "node '\(spec.nodes[c].id)' is its own ancestor") }
                out.append(c)
                cur = parents[c]
            }
            return out
        }
        var nodeAnc: [[Int]] = []
        for i in spec.nodes.indices { nodeAnc.append(try ancestors(i)) }
        var dIndex: [String: Int] = [:]
        var devAnc: [[Int]] = []
        var layouts: [DeviceLayout] = []
        var wiring: [MeterWiring?] = []
        for (i, d) in spec.devices.enumerated() {
            guard dIndex[d.id] == nil else { throw SimSpecError(message: "device '\(d.id)' is defined twice") }
            dIndex[d.id] = i
            guard let ni = nIndex[d.node] else { throw SimSpecError(message: "device '\(d.id)': node '\(d.node)' does not exist") }
            devAnc.append(nodeAnc[ni])
            let cap = spec.nodes[ni].capKW
            var w: MeterWiring?
            if d.profile != nil, ![.asicContainer, .gpuContainer].contains(d.role) {
                w = cap > spec.mediumVoltageAboveKW ? .mediumVoltage(capKW: cap, powerFactor: spec.powerFactor)
                    : .lowVoltage(lineToNeutralV: spec.nominalVoltage)
            }
            wiring.append(w)
            layouts.append(try Self.layout(for: d, wiring: w, capKW: cap, powerFactor: spec.powerFactor))
        }
        self.wiring = wiring
        // PDU outlets feed the load devices of the PDU's node, in file order.
        for (i, d) in spec.devices.enumerated() where d.role == .pdu {
            let fed = spec.devices.indices.filter {
                spec.devices[$0].node == d.node && [.asicContainer, .gpuContainer, .auxiliary, .fixedLoad].contains(spec.devices[$0].role)
            }
            for (n, di) in fed.enumerated() { layouts[i].outletDevice[n + 1] = di }
        }
        self.layouts = layouts
        self.physics = spec.devices.map {
            Physics(role: $0.role, maxKW: $0.maxKW, lagSeconds: $0.lagSeconds, noiseFraction: $0.noiseFraction, gpus: $0.gpus,
                    auxFraction: $0.auxFraction, baseKW: $0.baseKW,
                    demandCurve: $0.demandCurve.isEmpty ? SimDevice.defaultDemandCurve : $0.demandCurve,
                    efficiencyJPerTH: $0.efficiencyJPerTH)
        }
        self.deviceIndex = dIndex
        self.nodeCaps = spec.nodes.map(\.capKW)
        self.nodeTrips = spec.nodes.map(\.trip)
        self.nodeIndex = nIndex
        self.nodeParent = parents
        self.deviceAncestors = devAnc
        self.nodeAncestors = nodeAnc

        var devices: [DeviceState] = []
        for d in spec.devices {
            var s = DeviceState()
            let initial = d.initialSetpointKW ?? d.maxKW
            s.setpointKW = initial
            s.refKW = [.asicContainer, .gpuContainer].contains(d.role) ? initial : 0
            s.powerKW = s.refKW
            s.watchdogS = d.commWatchdogS
            s.fallbackKW = d.fallbackKW
            s.rampKWPerS = d.rampKWPerS
            if d.role == .gpuContainer, d.gpus > 0 { s.gpuCapW = d.maxKW * 1000 / Double(d.gpus) }
            devices.append(s)
        }
        let n = spec.nodes.count
        state = Mutex(SimState(devices: devices, nodeLoadKW: .init(repeating: 0, count: n), nodeHeat: .init(repeating: 0, count: n),
                               nodeTripped: .init(repeating: false, count: n), nodeEnergyKWh: .init(repeating: 0, count: n),
                               rng: SplitMix(state: seed)))
        // Settle the initial loads so meters read sensibly before the first step.
        state.withLock { s in
            for i in s.devices.indices where spec.devices[i].role == .gpuContainer {
                s.devices[i].demandKW = demandKW(i, at: 0)
                s.devices[i].powerKW = min(s.devices[i].powerKW, s.devices[i].demandKW)
                s.devices[i].refKW = s.devices[i].powerKW
            }
            computeLoads(&s)
        }
    }

    static func layout(for d: SimDevice, wiring: MeterWiring? = nil, capKW: Double = 0,
                       powerFactor: Double = 0.98) throws(SimSpecError) -> DeviceLayout {
        guard let profile = d.profile else { return DeviceLayout(points: [], ranges: [:], stateCodes: [:], commandLabels: [:]) }
        let points: [ResolvedPoint]
        // A SunSpec device is laid out as a real one is: "SunS" at 40000, model 1 (common), the
        // profile's models in id order, then the end marker; scale factors sized to the wiring.
        var fixedPoints: [ServedPoint] = []
        var sfByAddress: [Int: Int16] = [:]
        let sunSpecIDs = Set(profile.points.compactMap { p -> Int? in
            if case .sunSpec(let model, _) = p.location { return model } else { return nil }
        }).sorted()
        do {
            if sunSpecIDs.isEmpty {
                points = try profile.resolvedPoints().filter { $0.unavailable == nil }
            } else {
                let base = 40000
                var models = [SunSpecModelInstance(id: 1, address: base + 2, length: 66)]
                var at = base + 2 + 2 + 66
                for id in sunSpecIDs {
                    guard let m = profile.sunSpecModels[id] else {
                        throw SimSpecError(message: "device '\(d.id)': SunSpec model \(id) is not in the model library")
                    }
                    models.append(SunSpecModelInstance(id: id, address: at, length: m.length))
                    at += 2 + m.length
                }
                func fixed(_ address: Int, _ words: [UInt16]) -> ServedPoint {
                    ServedPoint(name: "sunspec@\(address)", kind: .unknown, table: .holding, address: address, count: words.count,
                                writable: false, encoding: PointEncoder.Encoding(ResolvedPoint(
                                    definition: PointDefinition(name: "sunspec@\(address)", location: .register(table: .holding, address: address), type: .uint16,
                                                                definedAt: SourceLocation(file: profile.id, line: 0, column: 0)),
                                    table: .holding, address: address, type: .uint16, order: .ABCD, scaleFactorAddress: nil,
                                    zeroIsMissing: false, unavailable: nil)),
                                fixed: words)
                }
                fixedPoints.append(fixed(base, SunSpecDiscovery.marker))
                for m in models { fixedPoints.append(fixed(m.address, [UInt16(m.id), UInt16(m.length)])) }
                fixedPoints.append(fixed(at, [UInt16(SunSpecDiscovery.endID), 0]))
                let discovery = SunSpecDiscoveryResult(base: base, models: models, endMarkerFound: true, note: nil)
                points = try profile.resolvedPoints(discovery: discovery).filter { $0.unavailable == nil }
                // Each scale factor holds the largest value any of its points can take (3 × the node's cap).
                let w = wiring ?? .lowVoltage()
                let maxW = 3 * max(capKW, 1) * 1000
                for p in points {
                    guard let sfAddress = p.scaleFactorAddress else { continue }
                    let engineering: Double
                    switch PointKind(p.name) {
                    case .voltage: engineering = 1.2 * w.lineToLineV
                    case .current: engineering = maxW / (3 * w.lineToNeutralV * powerFactor)
                    case .frequency: engineering = 100
                    case .powerFactor: engineering = 1
                    case .importEnergy, .exportEnergy, .totalEnergy: engineering = maxW / 3 * 24 * 3650 / 1000  // kWh, ten years at cap
                    default: engineering = maxW
                    }
                    let raw = engineering / (p.definition.scale ?? 1)
                    let limit = p.type.registerCount == 2 ? 4.0e9 : 32_000.0
                    let sf = Int16(max(-3, Int((log10(raw / limit)).rounded(.up))))
                    sfByAddress[sfAddress] = max(sfByAddress[sfAddress] ?? -3, sf)
                }
                for (a, sf) in sfByAddress { fixedPoints.append(fixed(a, [UInt16(bitPattern: sf)])) }
            }
        } catch let e as SimSpecError {
            throw e
        } catch {
            throw SimSpecError(message: "device '\(d.id)': profile \(profile.id) cannot be laid out: \(error)")
        }
        var ranges: [ModbusTable: Range<Int>] = [:]
        for r in points.map({ ($0.table, $0.address..<($0.address + $0.type.registerCount)) })
            + fixedPoints.map({ ($0.table, $0.address..<($0.address + $0.count)) }) {
            if let old = ranges[r.0] {
                ranges[r.0] = min(old.lowerBound, r.1.lowerBound)..<max(old.upperBound, r.1.upperBound)
            } else {
                ranges[r.0] = r.1
            }
        }
        var codes: [String: Int] = [:]
        var commands: [Int: String] = [:]
        if let rs = points.first(where: { $0.name == "run_state" }) {
            for (code, label) in rs.definition.enumLabels { codes[label.lowercased()] = code }
        }
        if let rc = points.first(where: { $0.name == "run_command" }) {
            commands = rc.definition.enumLabels.mapValues { $0.lowercased() }
        }
        let served = points.map {
            ServedPoint(name: $0.name, kind: PointKind($0.name), table: $0.table, address: $0.address, count: $0.type.registerCount,
                        writable: $0.definition.access.isWritable, encoding: PointEncoder.Encoding($0),
                        sunSpecSF: $0.scaleFactorAddress.flatMap { sfByAddress[$0] })
        } + fixedPoints
        return DeviceLayout(points: points, served: served, ranges: ranges, stateCodes: codes, commandLabels: commands)
    }

    // MARK: Time

    public var timeSeconds: Double { state.withLock { $0.time } }

    /// Adds scheduled faults (from a scenario).
    public func schedule(_ faults: [ScheduledFault]) throws(SimSpecError) {
        for f in faults where deviceIndex[f.device] == nil {
            throw SimSpecError(message: "scenario names device '\(f.device)', which the site does not have")
        }
        for f in faults {
            if case .inferenceBurst = f.action, let i = deviceIndex[f.device], physics[i].role != .gpuContainer {
                throw SimSpecError(message: "scenario: inference_burst on '\(f.device)', which is not a GPU container")
            }
        }
        state.withLock { s in
            s.scheduled.append(contentsOf: faults)
            s.scheduled.sort { $0.atSeconds < $1.atSeconds }
            s.nextScheduled = 0
            while s.nextScheduled < s.scheduled.count, s.scheduled[s.nextScheduled].atSeconds < s.time { s.nextScheduled += 1 }
        }
    }

    /// Advances the physics by `dt` (virtual time).
    public func step(_ dt: Duration) {
        let secs = Double(dt.components.seconds) + Double(dt.components.attoseconds) / 1e18
        state.withLock { s in step(&s, dt: secs) }
    }

    /// Advances by `total` in steps of `dt`.
    public func run(for total: Duration, step dt: Duration = .seconds(1)) {
        var elapsed = Duration.zero
        while elapsed < total {
            step(dt)
            elapsed += dt
        }
    }

    func demandKW(_ i: Int, at t: Double) -> Double {
        let d = physics[i]
        let curve = d.demandCurve
        let dayT = (spec.startSeconds + t).truncatingRemainder(dividingBy: 86_400)
        let hour = ((dayT < 0 ? dayT + 86_400 : dayT) / 3600).truncatingRemainder(dividingBy: 24)
        let h0 = Int(hour) % curve.count, h1 = (h0 + 1) % curve.count
        let frac = hour - Double(Int(hour))
        return d.maxKW * (curve[h0] * (1 - frac) + curve[h1] * frac)
    }

    private func step(_ s: inout SimState, dt: Double) {
        s.time += dt
        applySchedule(&s)
        for i in s.devices.indices {
            if let until = s.devices[i].faultUntil, s.time >= until, s.devices[i].fault != .vanish {
                s.devices[i].fault = nil
                s.devices[i].faultUntil = nil
                s.devices[i].frozen = nil
                s.devices[i].heldTargetKW = nil
            }
            if let f = s.devices[i].frequencyOverride, s.time >= f.until { s.devices[i].frequencyOverride = nil }
            if let b = s.devices[i].demandBurst, s.time >= b.until { s.devices[i].demandBurst = nil }
        }
        // Containers.
        let anyTripped = !s.trips.isEmpty
        for i in s.devices.indices {
            let d = physics[i]
            guard d.isContainer else { continue }
            let deenergised = anyTripped && deviceAncestors[i].contains { s.nodeTripped[$0] }
            var dev = s.devices[i]
            if dev.watchdogS > 0, s.time - dev.lastWriteAt > dev.watchdogS { dev.fallbackActive = true }
            var target = dev.fallbackActive ? dev.fallbackKW : dev.setpointKW
            if dev.runCommand != 1 { target = 0 }
            if dev.fault == .ignoreSetpoint, let held = dev.heldTargetKW { target = held }
            target = max(0, min(target, d.maxKW))
            if d.role == .gpuContainer {
                dev.demandKW = dev.demandBurst.map { d.maxKW * $0.fraction } ?? demandKW(i, at: s.time)
                let capKW = d.gpus > 0 ? dev.gpuCapW * Double(d.gpus) / 1000 : d.maxKW
                target = min(target, capKW, dev.demandKW)
            }
            if case .exception = dev.fault {} // a faulting controller still runs its container
            if deenergised { target = 0 }
            let maxStep = dev.rampKWPerS * dt
            dev.refKW += max(-maxStep, min(maxStep, target - dev.refKW))
            if deenergised { dev.refKW = 0; dev.powerKW = 0 }
            let alpha = d.lagSeconds > 0 ? 1 - exp(-dt / d.lagSeconds) : 1
            dev.powerKW += (dev.refKW - dev.powerKW) * alpha
            if deenergised { dev.powerKW = 0 }
            dev.noiseKW = dev.powerKW > 0.01 ? s.rng.gaussian() * d.noiseFraction * d.maxKW : 0
            dev.energyKWh += max(0, dev.powerKW) * dt / 3600
            s.devices[i] = dev
        }
        computeLoads(&s)
        // Breakers.
        for n in nodeCaps.indices where !s.nodeTripped[n] {
            let cap = nodeCaps[n]
            guard cap > 0 else { continue }
            let ratio = s.nodeLoadKW[n] / cap
            s.nodeHeat[n] = max(0, s.nodeHeat[n] + (ratio * ratio - 1) * dt)
            let curve = nodeTrips[n]
            if ratio >= curve.instantaneousRatio || s.nodeHeat[n] >= curve.threshold {
                s.nodeTripped[n] = true
                s.trips.append(BreakerTrip(node: spec.nodes[n].id, atSeconds: s.time, loadKW: s.nodeLoadKW[n], capKW: cap))
            }
        }
        if s.trips.count > 0 {
            for i in s.devices.indices where deviceAncestors[i].contains(where: { s.nodeTripped[$0] }) {
                s.devices[i].powerKW = 0
                s.devices[i].refKW = 0
            }
            computeLoads(&s)
        }
        for n in spec.nodes.indices { s.nodeEnergyKWh[n] += s.nodeLoadKW[n] * dt / 3600 }
        for i in s.devices.indices where physics[i].role == .auxiliary || physics[i].role == .fixedLoad {
            s.devices[i].energyKWh += max(0, s.devices[i].powerKW) * dt / 3600
        }
    }

    private func applySchedule(_ s: inout SimState) {
        while s.nextScheduled < s.scheduled.count, s.scheduled[s.nextScheduled].atSeconds <= s.time {
            let f = s.scheduled[s.nextScheduled]
            s.nextScheduled += 1
            guard let i = deviceIndex[f.device] else { continue }
            let until = f.durationSeconds.map { f.atSeconds + $0 }
            switch f.action {
            case .fault(let fault): inject(&s, i, fault, until: until)
            case .frequency(let hz): s.devices[i].frequencyOverride = (hz, until ?? .infinity)
            case .inferenceBurst(let fraction): s.devices[i].demandBurst = (fraction, until ?? .infinity)
            case .clear:
                if s.devices[i].fault != .vanish { s.devices[i].fault = nil; s.devices[i].frozen = nil; s.devices[i].heldTargetKW = nil }
                s.devices[i].frequencyOverride = nil
                s.devices[i].demandBurst = nil
            }
        }
    }

    private func inject(_ s: inout SimState, _ i: Int, _ fault: SimFault, until: Double?) {
        s.devices[i].fault = fault
        s.devices[i].faultUntil = until
        s.devices[i].heldTargetKW = fault == .ignoreSetpoint ? s.devices[i].refKW : nil
        if fault == .frozen {
            var snapshot: [String: Double] = [:]
            for p in layouts[i].points { snapshot[p.name] = value(of: p.name, device: i, in: s) }
            s.devices[i].frozen = snapshot
        }
    }

    /// IT load (containers) and total load per node, bottom-up.
    private func computeLoads(_ s: inout SimState) {
        for n in s.nodeLoadKW.indices { s.nodeLoadKW[n] = 0 }
        var itLoad = [Double](repeating: 0, count: spec.nodes.count)
        let anyTripped = !s.trips.isEmpty
        for i in s.devices.indices {
            guard physics[i].isContainer else { continue }
            let p = max(0, s.devices[i].powerKW + s.devices[i].noiseKW)
            for n in deviceAncestors[i] { itLoad[n] += p; s.nodeLoadKW[n] += p }
        }
        for i in s.devices.indices {
            let d = physics[i]
            guard d.role == .auxiliary || d.role == .fixedLoad else { continue }
            let deenergised = anyTripped && deviceAncestors[i].contains { s.nodeTripped[$0] }
            var p = 0.0
            switch d.role {
            case .auxiliary:
                p = deenergised ? 0 : d.baseKW + d.auxFraction * itLoad[deviceAncestors[i][0]]
            case .fixedLoad:
                p = deenergised ? 0 : d.baseKW
            default:
                continue
            }
            s.devices[i].powerKW = p
            for n in deviceAncestors[i] { s.nodeLoadKW[n] += p }
        }
    }

    /// What a meter wired as `w` reads for `kw` (its phases balanced), `pf` and `energyKWh`; nil for a
    /// quantity it does not measure. De-energised (an upstream breaker open), it reads 0 V, 0 A, 0 Hz.
    func meterValue(_ kind: PointKind, kw: Double, energyKWh: Double, energised: Bool, wiring w: MeterWiring,
                    singleInlet: Bool, frequency: Double) -> Double? {
        let pf = spec.powerFactor
        let watts = energised ? max(0, kw) * 1000 : 0
        switch kind {
        case .activePower: return watts
        case .phasePower: return watts / 3
        case .apparentPower: return watts / pf
        case .reactivePower: return watts * (1 - pf * pf).squareRoot() / pf
        case .powerFactor: return pf
        case .voltage: return energised ? (singleInlet ? w.lineToLineV : w.lineToNeutralV) : 0
        case .current: return watts / (3 * w.lineToNeutralV * pf)
        case .frequency: return energised ? frequency : 0
        case .importEnergy, .totalEnergy: return energyKWh
        case .exportEnergy: return 0
        default: return nil
        }
    }

    // MARK: Canonical values

    /// The engineering value of a canonical (or known vendor) point of a device now.
    func value(of name: String, device i: Int, in s: SimState) -> Double? {
        value(of: PointKind(name), name: name, device: i, in: s)
    }

    /// The same, for a point whose kind is already resolved (the read path).
    func value(of kind: PointKind, name: String, device i: Int, in s: SimState) -> Double? {
        if let frozen = s.devices[i].frozen { return frozen[name] }
        // Flat parameters only: no copy of the device's profile or layout on this hot path.
        let d = physics[i]
        let dev = s.devices[i]
        switch d.role {
        case .asicContainer, .gpuContainer:
            let p = max(0, dev.powerKW + dev.noiseKW)
            switch kind {
            case .activePower: return p * 1000
            case .powerSetpoint: return dev.setpointKW * 1000
            case .fallbackSetpoint: return dev.fallbackKW * 1000
            case .commWatchdog: return dev.watchdogS
            case .runCommand: return Double(dev.runCommand)
            case .runState:
                let label: String
                if dev.fault != nil { label = "fault" }
                else if dev.runCommand == 2 || (dev.runCommand == 1 && dev.refKW < 0.005 * d.maxKW && p < 0.01 * d.maxKW) { label = "sleep" }
                else if dev.runCommand == 0 { label = "stopped" }
                else if dev.refKW < 0.99 * d.maxKW { label = "curtailed" }
                else { label = "running" }
                return Double(layouts[i].stateCodes[label] ?? layouts[i].stateCodes["running"] ?? 0)
            case .alarmBits: return dev.fault != nil ? 1 : 0
            case .inletTemperature: return 24 + 8 * (d.maxKW > 0 ? p / d.maxKW : 0)
            case .coolantTemperature: return 30 + 12 * (d.maxKW > 0 ? p / d.maxKW : 0)
            case .hashrate:
                // Efficiency worsens a little at partial load.
                let frac = d.maxKW > 0 ? p / d.maxKW : 0
                let jPerTH = d.efficiencyJPerTH * (1 + 0.15 * (1 - frac) * (1 - frac))
                return jPerTH > 0 ? p * 1000 / jPerTH : 0
            case .gpuPowerCap: return dev.gpuCapW
            case .inferenceDemand: return dev.demandKW * 1000
            case .watchdogRemaining: return max(0, dev.watchdogS - (s.time - dev.lastWriteAt)).rounded(.down)
            case .fallbackActive: return dev.fallbackActive ? 1 : 0
            case .deviceEnergy: return dev.energyKWh
            case .rampRate: return dev.rampKWPerS * 1000
            case .minersTotal: return (d.maxKW / 3.5).rounded()
            case .minersOnline: return (p / 3.5).rounded()
            case .gpusTotal, .gpusOnline: return Double(d.gpus)
            default: return nil
            }
        case .meter, .pdu:
            let n = deviceAncestors[i][0]
            let kw = s.nodeLoadKW[n]
            let energised = !deviceAncestors[i].contains { s.nodeTripped[$0] }
            switch kind {
            case .outletState(let o):
                guard let di = layouts[i].outletDevice[o] else { return nil }
                return deviceAncestors[di].contains { s.nodeTripped[$0] } ? 0 : 1
            case .outletPower(let o):
                guard let di = layouts[i].outletDevice[o] else { return nil }
                return max(0, s.devices[di].powerKW + s.devices[di].noiseKW) * 1000
            default:
                return meterValue(kind, kw: kw, energyKWh: s.nodeEnergyKWh[n], energised: energised,
                                  wiring: wiring[i] ?? .lowVoltage(lineToNeutralV: spec.nominalVoltage), singleInlet: d.role == .pdu,
                                  frequency: dev.frequencyOverride?.hz ?? spec.nominalFrequency)
            }
        case .auxiliary, .fixedLoad:
            // A load with its own meter (the demo's cooling plant on an SDM630) reads like any meter.
            guard let w = wiring[i] else { return kind == .activePower ? dev.powerKW * 1000 : nil }
            return meterValue(kind, kw: dev.powerKW, energyKWh: dev.energyKWh, energised: !deviceAncestors[i].contains { s.nodeTripped[$0] },
                              wiring: w, singleInlet: false, frequency: dev.frequencyOverride?.hz ?? spec.nominalFrequency)
        }
    }

    // MARK: Registers

    /// What a read of `device` sees now (after faults), or the error a client would get.
    public func read(device i: Int, _ table: ModbusTable, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try state.withLock { s throws(ModbusError) -> [UInt16] in try read(device: i, table, address: address, count: count, in: s) }
    }

    func read(device i: Int, _ table: ModbusTable, address: Int, count: Int, in s: SimState) throws(ModbusError) -> [UInt16] {
        func err(_ k: ModbusError.Kind) -> ModbusError {
            ModbusError(k, device: spec.devices[i].id, unit: spec.devices[i].address.unit, function: .read(table), address: address, count: count)
        }
        switch s.devices[i].fault {
        case .silent?, .vanish?: throw err(.timeout)
        case .exception(let e)?: throw err(.exception(e))
        case .garbage?: throw err(.invalidResponse("garbled response"))
        case .short?: throw err(.invalidResponse("short response"))
        case .disconnect?: throw err(.connectionLost("connection reset by peer"))
        default: break
        }
        guard let range = layouts[i].ranges[table], address >= range.lowerBound, address + count <= range.upperBound else {
            throw err(.exception(.illegalDataAddress))
        }
        return words(device: i, table, address: address, count: count, in: s)
    }

    func words(device i: Int, _ table: ModbusTable, address: Int, count: Int, in s: SimState) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: count)
        layouts[i].served.withUnsafeBufferPointer { points in
            for k in points.indices where points[k].table == table {
                let n = points[k].count
                let at = points[k].address
                guard at < address + count, at + n > address else { continue }
                encode(points[k], device: i, in: s, into: &out, base: address)
            }
        }
        return out
    }

    /// One point's registers now, written into `out` (register `base + k` at `out[k]`); a value the
    /// point cannot hold reads as 0.
    func encode(_ p: ServedPoint, device i: Int, in s: SimState, into out: inout [UInt16], base: Int) {
        if let words = p.fixed {
            for (k, w) in words.enumerated() where p.address + k - base >= 0 && p.address + k - base < out.count { out[p.address + k - base] = w }
            return
        }
        var v = value(of: p.kind, name: p.name, device: i, in: s) ?? 0
        if let sf = p.sunSpecSF { v /= pow(10, Double(sf)) }
        do {
            try p.encoding.encode(v, at: p.address, into: &out, base: base)
        } catch {
            try? p.encoding.encode(0, at: p.address, into: &out, base: base)
        }
    }

    /// One point's registers now.
    func encode(_ p: ServedPoint, device i: Int, in s: SimState) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: p.count)
        encode(p, device: i, in: s, into: &out, base: p.address)
        return out
    }

    /// Reads every request of a plan under one lock (the in-memory bus's `execute`).
    func execute(device i: Int, _ plan: [ReadRequest], spans: [ReadSpan]) -> [SpanResult?] {
        let results = state.withLock { s in
            plan.map { request -> Result<[UInt16], ModbusError> in
                Result { () throws(ModbusError) in try read(device: i, request.table, address: request.address, count: request.count, in: s) }
            }
        }
        return spanResults(plan, spans: spans, results)
    }

    /// Applies a client's write to `device`, as its controller would.
    public func write(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16]) throws(ModbusError) {
        let d = spec.devices[i]
        try state.withLock { s throws(ModbusError) in
            let fc: FunctionCode = table == .coil ? .writeMultipleCoils : .writeMultipleRegisters
            let err = { (k: ModbusError.Kind) in ModbusError(k, device: d.id, unit: d.address.unit, function: fc, address: address, count: values.count) }
            switch s.devices[i].fault {
            case .silent?, .vanish?: throw err(.timeout)
            case .exception(let e)?: throw err(.exception(e))
            case .garbage?: throw err(.invalidResponse("garbled response"))
            case .short?: throw err(.invalidResponse("short response"))
            case .disconnect?: throw err(.connectionLost("connection reset by peer"))
            default: break
            }
            let decoded = try check(device: i, table, address: address, values: values, err)
            apply(&s, device: i, decoded)
        }
    }

    /// What a write would set, point by point, as the device's controller checks it before applying
    /// anything: every written register must belong to a whole writable point (else ILLEGAL DATA ADDRESS)
    /// and every value must lie within the point's documented limits (else ILLEGAL DATA VALUE, and
    /// nothing of the write is applied). The over-the-wire host answers with the same check.
    func check(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16],
               _ err: (ModbusError.Kind) -> ModbusError) throws(ModbusError) -> [(String, Double)] {
        let targets = layouts[i].points.filter {
            $0.table == table && $0.address >= address && $0.address + $0.type.registerCount <= address + values.count
        }
        // Half of a 32-bit point is never written on its own (the controller would apply a torn value).
        let torn = layouts[i].points.contains {
            $0.table == table && $0.address < address + values.count && $0.address + $0.type.registerCount > address
                && ($0.address < address || $0.address + $0.type.registerCount > address + values.count)
        }
        guard !targets.isEmpty, !torn, targets.allSatisfy({ $0.definition.access.isWritable }) else {
            throw err(.exception(.illegalDataAddress))
        }
        var decoded: [(String, Double)] = []
        for p in targets {
            let lo = p.address - address
            let w = Array(values[lo..<(lo + p.type.registerCount)])
            let v: Double
            switch PointDecoder.decode(p, words: w) {
            case .value(.number(let x)): v = x
            case .value(.state(let code, _)): v = Double(code)
            case .value(.bool(let b)): v = b ? 1 : 0
            default: throw err(.exception(.illegalDataValue))
            }
            if let lo = p.definition.min, v < lo { throw err(.exception(.illegalDataValue)) }
            if let hi = p.definition.max, v > hi { throw err(.exception(.illegalDataValue)) }
            decoded.append((p.name, v))
        }
        return decoded
    }

    /// The exception a device's controller answers a register write with, or nil when it accepts it
    /// (the wire host's hook, before the server's tables change).
    public func refusal(device i: Int, _ table: ModbusTable, address: Int, values: [UInt16]) -> ModbusException? {
        let d = spec.devices[i]
        do {
            _ = try check(device: i, table, address: address, values: values) {
                ModbusError($0, device: d.id, unit: d.address.unit, function: .writeMultipleRegisters, address: address, count: values.count)
            }
            return nil
        } catch {
            if case .exception(let e) = error.kind { return e }
            return .serverDeviceFailure
        }
    }

    /// Applies decoded point writes; any write restarts the comm watchdog.
    func apply(_ s: inout SimState, device i: Int, _ points: [(String, Double)]) {
        var dev = s.devices[i]
        for (name, v) in points {
            switch name {
            case "power_setpoint_w": dev.setpointKW = v / 1000
            case "fallback_setpoint_w": dev.fallbackKW = v / 1000
            case "comm_watchdog_s": dev.watchdogS = v
            case "run_command":
                let label = layouts[i].commandLabels[Int(v)] ?? ""
                dev.runCommand = label == "stop" ? 0 : label == "sleep" ? 2 : 1
            case "gpu_power_cap_w": dev.gpuCapW = v
            case "x_ramp_rate_w_per_s": dev.rampKWPerS = v / 1000
            default: break
            }
        }
        dev.lastWriteAt = s.time
        dev.fallbackActive = false
        dev.writes += 1
        s.devices[i] = dev
    }

    // MARK: Faults and inspection

    public func index(of device: String) -> Int? { deviceIndex[device] }

    public func inject(_ fault: SimFault?, device: String, for duration: Duration? = nil) {
        guard let i = deviceIndex[device] else { return }
        state.withLock { s in
            if let fault {
                let until = duration.map { s.time + Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
                inject(&s, i, fault, until: until)
            } else if s.devices[i].fault != .vanish {
                s.devices[i].fault = nil
                s.devices[i].frozen = nil
                s.devices[i].heldTargetKW = nil
            }
        }
    }

    public func setFrequency(_ hz: Double?, device: String, for seconds: Double = .infinity) {
        guard let i = deviceIndex[device] else { return }
        state.withLock { s in s.devices[i].frequencyOverride = hz.map { ($0, s.time + seconds) } }
    }

    public func fault(of i: Int) -> SimFault? { state.withLock { $0.devices[i].fault } }

    /// Power of a device (kW, without measurement noise).
    public func powerKW(_ device: String) -> Double {
        guard let i = deviceIndex[device] else { return 0 }
        return state.withLock { $0.devices[i].powerKW }
    }

    public func setpointKW(_ device: String) -> Double {
        guard let i = deviceIndex[device] else { return 0 }
        return state.withLock { $0.devices[i].setpointKW }
    }

    public func isFallbackActive(_ device: String) -> Bool {
        guard let i = deviceIndex[device] else { return false }
        return state.withLock { $0.devices[i].fallbackActive }
    }

    public func nodeLoadKW(_ node: String) -> Double {
        guard let n = nodeIndex[node] else { return 0 }
        return state.withLock { $0.nodeLoadKW[n] }
    }

    public func nodeEnergyKWh(_ node: String) -> Double {
        guard let n = nodeIndex[node] else { return 0 }
        return state.withLock { $0.nodeEnergyKWh[n] }
    }

    public var trips: [BreakerTrip] { state.withLock { $0.trips } }

    /// Engineering value of a point as a client would decode it (no faults applied).
    public func pointValue(_ device: String, _ point: String) -> Double? {
        guard let i = deviceIndex[device] else { return nil }
        return state.withLock { value(of: point, device: i, in: $0) }
    }

    public func summary() -> SimSummary {
        let (r, trips) = state.withLock { s in (readings(s), s.trips) }
        var nodes: [String: Double] = [:]
        for (n, node) in spec.nodes.enumerated() { nodes[node.id] = r.nodeKW[n] }
        return SimSummary(timeSeconds: r.timeSeconds, siteKW: r.siteKW, miningKW: r.miningKW, inferenceKW: r.inferenceKW,
                          auxiliaryKW: r.auxiliaryKW, hashrateTHs: r.hashrateTHs, trips: trips, nodeKW: nodes)
    }

    /// Everything a replay's accounting needs after a step, under one lock, indexed like `spec`.
    public func readings() -> SimReadings { state.withLock { readings($0) } }

    private func readings(_ s: SimState) -> SimReadings {
        var r = SimReadings(timeSeconds: s.time, count: s.devices.count)
        for i in s.devices.indices {
            let p = s.devices[i].powerKW
            r.powerKW[i] = p
            switch physics[i].role {
            case .asicContainer:
                r.miningKW += p
                let h = value(of: .hashrate, name: "hashrate_ths", device: i, in: s) ?? 0
                r.hashrateTHsByDevice[i] = h
                r.hashrateTHs += h
            case .gpuContainer:
                r.inferenceKW += p
                r.demandKW[i] = (value(of: .inferenceDemand, name: "inference_demand_w", device: i, in: s) ?? 0) / 1000
            case .auxiliary, .fixedLoad: r.auxiliaryKW += p
            default: break
            }
        }
        r.nodeKW = s.nodeLoadKW
        r.siteKW = spec.nodes.indices.reduce(0) { nodeParent[$1] == nil ? $0 + s.nodeLoadKW[$1] : $0 }
        return r
    }
}
