// What the simulator simulates: a capacity tree of nodes with caps and breakers,
// and devices (containers, meters, PDUs, auxiliary loads) described by their
// hardware profiles and a few physical parameters.

import HardwareProfiles
import Modbus

/// The role a simulated device plays in the physics.
public enum SimRole: String, Sendable, CaseIterable {
    case asicContainer = "asic-container"
    case gpuContainer = "gpu-container"
    /// A meter: sees the sum of everything below its node.
    case meter
    /// A PDU: reports the power of the devices on its node as outlets, and its inlet total.
    case pdu
    /// An auxiliary load (cooling …): draws a fraction of the IT load below its node.
    case auxiliary
    /// A fixed, uncontrollable load.
    case fixedLoad = "fixed-load"
}

/// Inverse-time breaker: a thermal accumulator rises by ((load/cap)² − 1)·dt
/// while over the cap, falls the same way below it, and trips at `threshold`
/// seconds. At 110 % of cap with threshold 10 it trips after ~48 s, at 150 %
/// after 8 s, at 200 % after 3.3 s; at or above `instantaneousRatio` at once.
public struct TripCurve: Sendable, Equatable {
    public var threshold: Double
    public var instantaneousRatio: Double

    public init(threshold: Double = 10, instantaneousRatio: Double = 3) {
        self.threshold = threshold
        self.instantaneousRatio = instantaneousRatio
    }

    /// Seconds to trip at a constant overload ratio, from cold.
    public func secondsToTrip(ratio: Double) -> Double? {
        if ratio >= instantaneousRatio { return 0 }
        guard ratio > 1 else { return nil }
        return threshold / (ratio * ratio - 1)
    }
}

public struct SimNode: Sendable, Equatable {
    public var id: String
    public var parent: String?
    public var capKW: Double
    public var trip: TripCurve

    public init(id: String, parent: String?, capKW: Double, trip: TripCurve = .init()) {
        self.id = id
        self.parent = parent
        self.capKW = capKW
        self.trip = trip
    }
}

/// Where a simulated device is served over the wire.
public struct SimAddress: Sendable, Equatable {
    public var port: Int?
    public var unit: Int

    public init(port: Int? = nil, unit: Int = 1) {
        self.port = port
        self.unit = unit
    }
}

public struct SimDevice: Sendable {
    public var id: String
    public var role: SimRole
    /// The node this device hangs under (a meter or PDU: the node it measures).
    public var node: String
    /// The register map; nil for a load that is not served over Modbus (e.g. a cooling plant).
    public var profile: DeviceProfile?
    public var address: SimAddress

    // Containers
    public var maxKW: Double
    public var rampKWPerS: Double
    /// First-order lag time constant of the power response.
    public var lagSeconds: Double
    /// Standard deviation of measurement noise, as a fraction of maxKW.
    public var noiseFraction: Double
    /// ASIC efficiency at full power.
    public var efficiencyJPerTH: Double
    /// GPU: number of GPUs (gpu_power_cap_w applies to each).
    public var gpus: Int
    /// GPU: the daily inference demand curve, as fractions of maxKW by hour 0…23.
    public var demandCurve: [Double]
    /// Auxiliary: fraction of the IT load below `node`; fixed load: ignored.
    public var auxFraction: Double
    /// Fixed load in kW (fixed-load role) or the auxiliary's base draw.
    public var baseKW: Double
    /// Initial conditions.
    public var initialSetpointKW: Double?
    public var commWatchdogS: Double
    public var fallbackKW: Double

    public init(id: String, role: SimRole, node: String, profile: DeviceProfile?, address: SimAddress = .init(),
                maxKW: Double = 0, rampKWPerS: Double = 100, lagSeconds: Double = 2, noiseFraction: Double = 0.002,
                efficiencyJPerTH: Double = 20, gpus: Int = 0, demandCurve: [Double] = SimDevice.defaultDemandCurve,
                auxFraction: Double = 0, baseKW: Double = 0, initialSetpointKW: Double? = nil,
                commWatchdogS: Double = 60, fallbackKW: Double = 0) {
        self.id = id
        self.role = role
        self.node = node
        self.profile = profile
        self.address = address
        self.maxKW = maxKW
        self.rampKWPerS = rampKWPerS
        self.lagSeconds = lagSeconds
        self.noiseFraction = noiseFraction
        self.efficiencyJPerTH = efficiencyJPerTH
        self.gpus = gpus
        self.demandCurve = demandCurve
        self.auxFraction = auxFraction
        self.baseKW = baseKW
        self.initialSetpointKW = initialSetpointKW
        self.commWatchdogS = commWatchdogS
        self.fallbackKW = fallbackKW
    }

    /// A daily inference load curve: low before dawn, peak in the afternoon.
    public static let defaultDemandCurve: [Double] = [
        0.55, 0.50, 0.48, 0.46, 0.46, 0.50, 0.58, 0.68, 0.78, 0.85, 0.90, 0.93,
        0.95, 0.96, 0.97, 0.96, 0.94, 0.92, 0.90, 0.86, 0.80, 0.72, 0.65, 0.60,
    ]
}

public struct SimSiteSpec: Sendable {
    public var id: String
    public var nodes: [SimNode]
    public var devices: [SimDevice]
    /// Nominal line-to-neutral voltage and frequency of the meters.
    public var nominalVoltage: Double
    public var nominalFrequency: Double
    public var powerFactor: Double
    /// Scenario time at simulated t = 0, in Unix seconds (UTC). The GPU demand curve reads its hour
    /// of day from `startSeconds + t`, so a simulator started for `--start-at 14:01Z` sees the
    /// afternoon's demand, not midnight's. 0: t = 0 is midnight UTC.
    public var startSeconds: Double
    /// Nodes whose cap is above this are metered at medium voltage (through PTs and CTs);
    /// the others at low voltage. See `MeterWiring`.
    public var mediumVoltageAboveKW: Double

    public init(id: String, nodes: [SimNode], devices: [SimDevice], nominalVoltage: Double = 277,
                nominalFrequency: Double = 60, powerFactor: Double = 0.98, startSeconds: Double = 0,
                mediumVoltageAboveKW: Double = 2500) {
        self.id = id
        self.nodes = nodes
        self.devices = devices
        self.nominalVoltage = nominalVoltage
        self.nominalFrequency = nominalFrequency
        self.powerFactor = powerFactor
        self.startSeconds = startSeconds
        self.mediumVoltageAboveKW = mediumVoltageAboveKW
    }
}

/// How a simulated meter is wired, which fixes what its volts and amps read for a given power.
///
/// - Low voltage: connected directly to a 480 V wye system (277 V line-to-neutral).
/// - Medium voltage: connected through PTs (13 800 V : 120 V) and CTs (sized to the node's cap, secondary
///   5 A), with the ratios programmed into the meter, so it reads primary values: 7 967 V line-to-neutral
///   and primary amps.
///
/// In both cases P = Σ Vₚₕ·Iₚₕ·PF = √3·V_LL·I·PF (balanced phases), the apparent power is P / PF, and a
/// single-inlet PDU (Raritan PX3) reports its line-to-line voltage and line current.
public struct MeterWiring: Sendable, Equatable {
    public var lineToNeutralV: Double
    public var ptRatio: Double?
    public var ctPrimaryA: Double?

    public var lineToLineV: Double { lineToNeutralV * 3.0.squareRoot() }

    public static func lowVoltage(lineToNeutralV: Double = 277) -> MeterWiring {
        MeterWiring(lineToNeutralV: lineToNeutralV, ptRatio: nil, ctPrimaryA: nil)
    }

    /// 13.8 kV through PTs and CTs whose primary covers `capKW` at `powerFactor`, rounded up to 100 A.
    public static func mediumVoltage(capKW: Double, powerFactor: Double, lineToLineV: Double = 13_800) -> MeterWiring {
        let ln = lineToLineV / 3.0.squareRoot()
        let amps = capKW * 1000 / (3 * ln * powerFactor)
        return MeterWiring(lineToNeutralV: ln, ptRatio: lineToLineV / 120, ctPrimaryA: (amps / 100).rounded(.up) * 100)
    }
}

public struct SimSpecError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
