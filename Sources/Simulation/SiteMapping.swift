// From a site file (the same one the controller runs on) to a simulation.

import Foundation
import HardwareProfiles
import Site

extension SimSiteSpec {
    /// Builds the simulation of `site`, with each device's profile from `profiles` (by id).
    /// Meters are the devices the tree names as a node's meter; a meter whose profile is
    /// a PDU reports its node's loads as outlets. Container physics use the site limits; each
    /// container's fallback setpoint is the one the controller writes (`SiteDevice.fallbackSetpointKw`).
    /// Containers start at `start`: their full power (the default, for tests that begin on a loaded
    /// site) or their fallback setpoint (`switchyard sim`: the safe state a site starts in).
    public init(site: Site, profiles: [String: DeviceProfile], servePortsFromSite: Bool = true,
                start: SimStart = .fullPower) throws(SimSpecError) {
        var nodes: [SimNode] = []
        for n in site.nodes { nodes.append(SimNode(id: n.id, parent: n.parentID, capKW: n.capKw)) }
        var meterNode: [String: String] = [:]
        for n in site.nodes { if let m = n.meter { meterNode[m] = n.id } }
        let root = site.nodes.first { $0.parentID == nil }?.id ?? "site"
        var devices: [SimDevice] = []
        for d in site.devices {
            var profile: DeviceProfile?
            if let pid = d.profile {
                guard let p = profiles[pid] else { throw SimSpecError(message: "device '\(d.id)': profile '\(pid)' is not loaded") }
                profile = p
            }
            var address = SimAddress(port: nil, unit: d.address?.unit ?? 1)
            if servePortsFromSite, case let .tcp(_, port, unit)? = d.address { address = SimAddress(port: port, unit: unit) }
            switch d.deviceClass {
            case .mining, .inference:
                guard let limits = d.limits, let node = d.nodeID else { throw SimSpecError(message: "device '\(d.id)' has no limits or node") }
                let isGPU = d.deviceClass == .inference
                let gpus = d.gpus ?? (isGPU ? max(1, Int((limits.maxKw / (d.kwPerGpu ?? 0.7)).rounded())) : 0)
                devices.append(SimDevice(
                    id: d.id, role: isGPU ? .gpuContainer : .asicContainer, node: node, profile: profile, address: address,
                    maxKW: limits.maxKw, rampKWPerS: limits.rampKwPerS > 0 ? limits.rampKwPerS : 100, lagSeconds: 2,
                    noiseFraction: 0.002, efficiencyJPerTH: d.efficiencyJPerTH ?? 20, gpus: gpus,
                    initialSetpointKW: start == .fallback ? SiteDevice.fallbackSetpointKw : nil,
                    commWatchdogS: 0, fallbackKW: SiteDevice.fallbackSetpointKw))
            case .auxiliary:
                devices.append(SimDevice(id: d.id, role: d.fractionOfIT != nil ? .auxiliary : .fixedLoad, node: d.nodeID ?? root,
                                         profile: profile, address: address, auxFraction: d.fractionOfIT ?? 0, baseKW: d.fixedKw ?? 0))
            case .meter:
                let node = meterNode[d.id] ?? d.nodeID ?? root
                let role: SimRole = profile?.kind == .pdu ? .pdu : .meter
                devices.append(SimDevice(id: d.id, role: role, node: node, profile: profile, address: address))
            }
        }
        self.init(id: site.id, nodes: nodes, devices: devices)
    }
}

/// Where a simulated site's containers start.
public enum SimStart: String, Sendable, CaseIterable {
    /// At full power (`max_kw`; a GPU container at its inference demand).
    case fullPower = "full-power"
    /// At the fallback setpoint the controller writes with the comm watchdog (`SiteDevice.fallbackSetpointKw`).
    case fallback
}

/// Loads every profile a site names, from the standard search path.
public func loadProfiles(for site: Site, registry: ProfileRegistry = .standard()) throws -> [String: DeviceProfile] {
    try registry.load(each: site.devices.compactMap(\.profile))
}
