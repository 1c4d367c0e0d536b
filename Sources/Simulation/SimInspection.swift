// Faults and inspection: injecting faults, and reading the simulated site's state for tests and reports.

import Foundation
import HardwareProfiles
import Modbus
import Synchronization

extension SiteSimulator {
    // MARK: Faults and inspection

    public func index(of device: String) -> Int? { deviceIndex[device] }

    public func inject(_ fault: SimFault?, device: String, for duration: Duration? = nil) {
        guard let i = deviceIndex[device] else { return }
        state.withLock { s in
            if let fault {
                let until = duration.map { s.time + Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
                inject(&s, i, fault, until: until)
            } else if s.devices[i].fault != .vanish {
                clearFault(&s, i)
            }
        }
    }

    public func setFrequency(_ hz: Double?, device: String, for seconds: Double = .infinity) {
        guard let i = deviceIndex[device] else { return }
        state.withLock { s in s.devices[i].frequencyOverride = hz.map { ($0, s.time + seconds) } }
    }

    public func fault(of i: Int) -> SimFault? {
        if faultedDevices.load(ordering: .sequentiallyConsistent) == 0 { return nil }
        return state.withLock { $0.devices[i].fault }
    }

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

    func readings(_ s: SimState) -> SimReadings {
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
