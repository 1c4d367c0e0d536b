// Canonical point names: the vocabulary the rest of Switchyard reads and
// writes. A profile maps a device's registers onto these names; anything
// else a device offers goes under a vendor-specific name starting with `x_`.

/// The contract of one canonical point.
public struct CanonicalPoint: Sendable, Equatable {
    public var name: String
    /// The unit the value must be in after scaling ("" for dimensionless).
    public var unit: String
    /// True when the controller writes this point, so the profile must make it `rw`.
    public var mustBeWritable: Bool
    /// Labels a state point's enum must contain.
    public var requiredLabels: [String]

    init(_ name: String, _ unit: String, writable: Bool = false, labels: [String] = []) {
        self.name = name
        self.unit = unit
        self.mustBeWritable = writable
        self.requiredLabels = labels
    }
}

public enum CanonicalPoints {
    static let meterPoints: [CanonicalPoint] = [
        .init("active_power_w", "W"),
        .init("import_energy_kwh", "kWh"),
        .init("export_energy_kwh", "kWh"),
        .init("voltage_l1_v", "V"), .init("voltage_l2_v", "V"), .init("voltage_l3_v", "V"),
        .init("current_l1_a", "A"), .init("current_l2_a", "A"), .init("current_l3_a", "A"),
        .init("frequency_hz", "Hz"),
        .init("power_factor", ""),
    ]

    static let containerPoints: [CanonicalPoint] = [
        .init("active_power_w", "W"),
        .init("power_setpoint_w", "W", writable: true),
        .init("run_state", "", labels: ["running", "curtailed", "sleep", "fault"]),
        .init("run_command", "", writable: true),
        .init("comm_watchdog_s", "s", writable: true),
        .init("fallback_setpoint_w", "W", writable: true),
        .init("inlet_temperature_c", "°C"),
        .init("coolant_temperature_c", "°C"),
        .init("alarm_bits", ""),
    ]

    /// The fixed canonical points of a kind (PDU outlets are a pattern, see `outletPoint`).
    public static func points(for kind: DeviceKind) -> [CanonicalPoint] {
        switch kind {
        case .meter, .pdu: meterPoints
        case .asicContainer: containerPoints + [.init("hashrate_ths", "TH/s")]
        case .gpuContainer: containerPoints + [.init("gpu_power_cap_w", "W", writable: true), .init("inference_demand_w", "W")]
        }
    }

    /// Points a profile of this kind must define.
    public static func required(for kind: DeviceKind) -> [String] {
        switch kind {
        case .meter:
            ["active_power_w", "import_energy_kwh", "export_energy_kwh", "voltage_l1_v", "current_l1_a", "frequency_hz"]
        case .pdu:
            ["active_power_w", "voltage_l1_v", "current_l1_a"]
        case .asicContainer:
            ["active_power_w", "power_setpoint_w", "run_state", "run_command", "comm_watchdog_s", "fallback_setpoint_w",
             "inlet_temperature_c", "alarm_bits", "hashrate_ths"]
        case .gpuContainer:
            ["active_power_w", "power_setpoint_w", "run_state", "run_command", "comm_watchdog_s", "fallback_setpoint_w",
             "inlet_temperature_c", "alarm_bits", "gpu_power_cap_w", "inference_demand_w"]
        }
    }

    /// The canonical contract for `name` in a profile of `kind`, or nil if the name is not canonical there.
    public static func contract(for name: String, kind: DeviceKind) -> CanonicalPoint? {
        if let p = points(for: kind).first(where: { $0.name == name }) { return p }
        if kind == .pdu, let p = outletPoint(name) { return p }
        return nil
    }

    /// `outlet_<n>_active_power_w` and `outlet_<n>_state`, n ≥ 1.
    static func outletPoint(_ name: String) -> CanonicalPoint? {
        guard name.hasPrefix("outlet_") else { return nil }
        let rest = name.dropFirst("outlet_".count)
        guard let underscore = rest.firstIndex(of: "_") else { return nil }
        let number = rest[..<underscore]
        guard let n = Int(number), n >= 1, String(n) == number else { return nil }
        switch rest[rest.index(after: underscore)...] {
        case "active_power_w": return .init(name, "W")
        case "state": return .init(name, "")
        default: return nil
        }
    }

    /// Vendor-specific points are `x_` followed by lower-case words.
    public static func isVendorSpecific(_ name: String) -> Bool {
        name.hasPrefix("x_") && name.count > 2 && isWellFormed(name)
    }

    static func isWellFormed(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}
