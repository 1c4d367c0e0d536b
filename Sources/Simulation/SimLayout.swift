// How a device's registers are laid out: its profile's points at fixed addresses, what each point means.

import Foundation
import HardwareProfiles
import Modbus
import Synchronization

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
