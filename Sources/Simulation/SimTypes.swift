// The simulator's public and state types: faults, trips, summaries, readings, device and site state,
// the seeded noise generator, scheduled faults.

import Basics
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
    var rng: SeededRandom
    var scheduled: [ScheduledFault] = []
    var nextScheduled = 0
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
