import Foundation
import HardwareProfiles
import Modbus
import Testing
import TestSupport

/// Probes every shipped profile against a pymodbus server (Tests/peers/profile_devices.py) that holds known
/// values in the vendor's documented layout, written independently of the profile YAML.
@Suite("Shipped profiles against simulated devices")
struct DeviceProbeTests {
    /// Expected engineering values of the simulated devices; `nil` means "reads as missing".
    static let expected: [String: [String: ExpectedValue]] = [
        "eastron-sdm630": [
            "voltage_l1_v": 230.1, "voltage_l2_v": 231.2, "voltage_l3_v": 229.8,
            "current_l1_a": 10.5, "current_l2_a": 11.25, "current_l3_a": 9.75,
            "active_power_w": 7101.5, "power_factor": 0.97, "frequency_hz": 50.01,
            "import_energy_kwh": 12345.6, "export_energy_kwh": 78.9,
            "x_power_l1_w": 2400.5, "x_power_l2_w": 2500.25, "x_power_l3_w": 2200.75, "x_total_energy_kwh": 12424.5,
        ],
        "janitza-umg604": [
            "voltage_l1_v": 231.0, "voltage_l2_v": 232.5, "voltage_l3_v": 230.25,
            "current_l1_a": 100.5, "current_l2_a": 101.25, "current_l3_a": 99.75,
            "active_power_w": 69300.5, "frequency_hz": 49.98,
            "import_energy_kwh": 1234.567, "export_energy_kwh": 4.321,
            "x_power_l1_w": 23000, "x_power_l2_w": 23500, "x_power_l3_w": 22800.5,
            "x_cos_phi_l1": 0.98, "x_cos_phi_l2": 0.97, "x_cos_phi_l3": 0.99, "x_real_energy_kwh": 1230.246,
        ],
        "sunspec-meter-203": [
            "active_power_w": 8120, "import_energy_kwh": 12345.678, "export_energy_kwh": 2.5,
            "voltage_l1_v": 230.1, "voltage_l2_v": 231.5, "voltage_l3_v": 229.8,
            "current_l1_a": 12.34, "current_l2_a": 12.5, "current_l3_a": .missing,
            "frequency_hz": 50.02, "power_factor": 0.985, "x_reactive_power_var": -1500,
        ],
        "raritan-px3": [
            "voltage_l1_v": 230.5, "current_l1_a": 15.25, "active_power_w": 3400, "x_apparent_power_va": 3500,
            "power_factor": 0.971, "frequency_hz": 50,
            "outlet_1_active_power_w": 850.5, "outlet_2_active_power_w": 900.25,
            "outlet_3_active_power_w": 0, "outlet_4_active_power_w": 1649.25,
            "outlet_1_state": "on", "outlet_2_state": "on", "outlet_3_state": "off", "outlet_4_state": "on",
        ],
        "reference-asic-container": [
            "active_power_w": 1234567, "run_state": "curtailed", "alarm_bits": 5, "inlet_temperature_c": 25.3,
            "coolant_temperature_c": 41.2, "hashrate_ths": 280500, "x_miners_online": 316, "x_miners_total": 320,
            "x_watchdog_remaining_s": 42, "x_fallback_active": "no", "x_import_energy_kwh": 9876543.2,
            "power_setpoint_w": 1200000, "run_command": "run", "comm_watchdog_s": 60, "fallback_setpoint_w": 400000,
            "x_ramp_rate_w_per_s": 50000,
        ],
        "reference-gpu-container": [
            "active_power_w": 812345, "run_state": "running", "alarm_bits": 0, "inlet_temperature_c": -5.2,
            "coolant_temperature_c": 35.5, "inference_demand_w": 900000, "x_gpus_online": 254, "x_gpus_total": 256,
            "x_watchdog_remaining_s": 15, "x_fallback_active": "yes", "x_import_energy_kwh": 500,
            "power_setpoint_w": 850000, "run_command": "run", "comm_watchdog_s": 30, "fallback_setpoint_w": 200000,
            "gpu_power_cap_w": 700,
        ],
    ]

    static let peerDevice = [
        "eastron-sdm630": "sdm630", "janitza-umg604": "umg604", "sunspec-meter-203": "sunspec203",
        "raritan-px3": "px3", "reference-asic-container": "ref-asic", "reference-gpu-container": "ref-gpu",
    ]

    @Test("probe reads every point of the shipped profile with the documented values", arguments: shippedProfileIDs)
    func probe(_ id: String) async throws {
        let profile = try shippedProfile(id)
        let expected = try #require(Self.expected[id])
        let peer = try await PeerProcess.python("profile_devices.py", [try #require(Self.peerDevice[id])])
        defer { peer.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: peer.port))
        let result = try await ProfileProbe.read(profile: profile, bus: client.bus(unit: profile.transport.unitID))
        await client.close()

        // Every point of the profile is checked, and every canonical point the kind defines is among them.
        #expect(Set(result.readings.map(\.name)) == Set(expected.keys))
        for required in CanonicalPoints.required(for: profile.kind) {
            #expect(expected[required] != nil, "\(id) test lacks required point \(required)")
        }
        for reading in result.readings {
            let want = try #require(expected[reading.name])
            #expect(want.matches(reading.outcome), "\(id).\(reading.name): got \(reading.outcome), want \(want)")
        }
    }

    @Test("SunSpec discovery works over the wire at bases 0 and 50000 too", arguments: [0, 50000])
    func sunSpecBases(base: Int) async throws {
        let peer = try await PeerProcess.python("profile_devices.py", ["sunspec203", "--base", String(base)])
        defer { peer.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: peer.port))
        let result = try await ProfileProbe.read(profile: try shippedProfile("sunspec-meter-203"), bus: client.bus(unit: 1))
        await client.close()
        #expect(result.discovery?.base == base)
        #expect(result.discovery?.models.map(\.id) == [1, 203])
        #expect(result.reading("active_power_w")?.outcome.number == 8120)
        #expect(result.reading("voltage_l1_v")?.outcome.number == 230.1)
    }

    @Test("a profile with a wrong address fails against the documented layout")
    func wrongAddressIsCaught() async throws {
        // The same SDM630 profile with total power moved one float too far (30055 instead of 30053).
        var text = try String(contentsOf: profilesDirectory.appendingPathComponent("eastron-sdm630.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "address: 0x0034", with: "address: 0x0036")
        let (p, d) = parseProfile(text, name: "sdm630-wrong.yaml")
        #expect(d.isEmpty)
        let peer = try await PeerProcess.python("profile_devices.py", ["sdm630"])
        defer { peer.stop() }
        let client = ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: peer.port))
        let result = try await ProfileProbe.read(profile: try #require(p), bus: client.bus(unit: 1))
        await client.close()
        let want = try #require(Self.expected["eastron-sdm630"]?["active_power_w"])
        #expect(!want.matches(try #require(result.reading("active_power_w")).outcome))
    }
}

/// What a point should read.
enum ExpectedValue: Sendable, CustomStringConvertible, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByStringLiteral {
    case number(Double)
    case label(String)
    case missing

    init(floatLiteral v: Double) { self = .number(v) }
    init(integerLiteral v: Int) { self = .number(Double(v)) }
    init(stringLiteral v: String) { self = .label(v) }

    func matches(_ outcome: PointOutcome) -> Bool {
        switch (self, outcome) {
        case let (.number(want), .value(.number(got))): abs(want - got) <= 1e-9 * max(1, abs(want))
        case let (.label(want), .value(.state(_, got))): want == got
        case (.missing, .missing): true
        default: false
        }
    }

    var description: String {
        switch self {
        case .number(let v): "\(v)"
        case .label(let s): s
        case .missing: "missing"
        }
    }
}
