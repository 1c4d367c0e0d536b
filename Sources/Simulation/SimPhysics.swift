// Device physics on virtual time: stepping, scheduled faults, loads through the tree, breakers, and the
// engineering values of canonical points.

import Foundation
import HardwareProfiles
import Modbus
import Synchronization

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

extension SiteSimulator {
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

    func step(_ s: inout SimState, dt: Double) {
        s.time += dt
        applySchedule(&s)
        for i in s.devices.indices {
            if let until = s.devices[i].faultUntil, s.time >= until, s.devices[i].fault != .vanish {
                clearFault(&s, i)
                s.devices[i].faultUntil = nil
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

    func applySchedule(_ s: inout SimState) {
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
                if s.devices[i].fault != .vanish { clearFault(&s, i) }
                s.devices[i].frequencyOverride = nil
                s.devices[i].demandBurst = nil
            }
        }
    }

    /// Sets a device's fault (under the state lock) and keeps `faultedDevices` in step.
    func setFault(_ s: inout SimState, _ i: Int, _ fault: SimFault?) {
        let before = s.devices[i].fault != nil, after = fault != nil
        s.devices[i].fault = fault
        if before != after { faultedDevices.add(after ? 1 : -1, ordering: .sequentiallyConsistent) }
    }

    /// Ends a device's fault and what it froze or held.
    func clearFault(_ s: inout SimState, _ i: Int) {
        setFault(&s, i, nil)
        s.devices[i].frozen = nil
        s.devices[i].heldTargetKW = nil
    }

    func inject(_ s: inout SimState, _ i: Int, _ fault: SimFault, until: Double?) {
        setFault(&s, i, fault)
        s.devices[i].faultUntil = until
        s.devices[i].heldTargetKW = fault == .ignoreSetpoint ? s.devices[i].refKW : nil
        if fault == .frozen {
            var snapshot: [String: Double] = [:]
            for p in layouts[i].points { snapshot[p.name] = value(of: p.name, device: i, in: s) }
            s.devices[i].frozen = snapshot
        }
    }

    /// IT load (containers) and total load per node, bottom-up.
    func computeLoads(_ s: inout SimState) {
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
}
