// The simulated site: device physics on virtual time, meters that sum through
// the capacity tree, breakers with an inverse-time trip curve, and each
// device's registers laid out by its hardware profile.
//
// Files: SiteSimulator.swift (the simulator and its set-up), SimTypes.swift, SimLayout.swift (register
// layout), SimPhysics.swift (stepping), SimRegisters.swift (register emulation), SimInspection.swift.
//
// All state sits behind one mutex, so the in-memory buses, the wire host and
// the stepping loop can share one simulator. Stepping is deterministic for a
// given seed: the same spec, seed and writes give the same trajectory.

import Basics
import Foundation
import HardwareProfiles
import Modbus
import Synchronization

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
    /// How many devices have a fault now (changed only under `state`'s lock, by `setFault`): the wire host asks
    /// for a device's fault on every request from 31 serving threads, and with none injected it need not take
    /// the lock the physics and every write share (perf: 15 % of the simulated site's CPU was that lock).
    let faultedDevices = Atomic<Int>(0)

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
                               rng: SeededRandom(seed: seed)))
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
}
