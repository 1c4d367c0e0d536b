// The device-profile model: a register map as data.

import Basics
import Modbus

/// What a device is; decides which canonical points a profile must define.
public enum DeviceKind: String, Sendable, CaseIterable {
    case meter
    case pdu
    case asicContainer = "asic-container"
    case gpuContainer = "gpu-container"
}

/// How often the poller reads a point.
public enum PollClass: String, Sendable, CaseIterable, Comparable {
    case fast, normal, slow

    public static func < (a: PollClass, b: PollClass) -> Bool {
        let rank: [PollClass: Int] = [.fast: 0, .normal: 1, .slow: 2]
        return rank[a]! < rank[b]!
    }
}

/// Read-only or read-write.
public enum PointAccess: String, Sendable {
    case r, rw
    public var isWritable: Bool { self == .rw }
}

public enum TransportProtocol: String, Sendable, CaseIterable {
    case tcp, rtu
}

public enum LineParity: String, Sendable, CaseIterable {
    case none, even, odd
}

/// RTU line settings a device ships with.
public struct RTULineDefaults: Sendable, Equatable {
    public var baud: Int
    public var parity: LineParity
    public var dataBits: Int
    public var stopBits: Int

    public init(baud: Int, parity: LineParity, dataBits: Int, stopBits: Int) {
        self.baud = baud
        self.parity = parity
        self.dataBits = dataBits
        self.stopBits = stopBits
    }
}

/// Transport defaults of a device: how to reach it and how hard it may be read.
public struct TransportDefaults: Sendable, Equatable {
    public var protocols: [TransportProtocol]
    public var unitID: Int
    public var tcpPort: Int?
    public var rtu: RTULineDefaults?
    /// Most registers one read may cover (the device's own limit, ≤ 125).
    public var maxRegistersPerRead: Int
    /// Largest run of unneeded registers the planner may bridge.
    public var maxGapRegisters: Int
    /// Minimum quiet time between two requests to this device.
    public var minRequestGap: Duration
    /// Default word and byte order of multi-register values.
    public var wordOrder: WordOrder
    /// Ranges that must never be read, per table (inclusive).
    public var forbidden: [ModbusTable: [ClosedRange<Int>]]
    /// The device answers FC23 (read/write multiple registers): setpoints are written and
    /// verified in one transaction. Falls back to FC16 + FC03 if it answers ILLEGAL FUNCTION.
    public var writeReadFC23 = false

    public init(protocols: [TransportProtocol] = [.tcp], unitID: Int = 1, tcpPort: Int? = 502, rtu: RTULineDefaults? = nil,
                maxRegistersPerRead: Int = 125, maxGapRegisters: Int = 8, minRequestGap: Duration = .zero,
                wordOrder: WordOrder = .ABCD, forbidden: [ModbusTable: [ClosedRange<Int>]] = [:]) {
        self.protocols = protocols
        self.unitID = unitID
        self.tcpPort = tcpPort
        self.rtu = rtu
        self.maxRegistersPerRead = maxRegistersPerRead
        self.maxGapRegisters = maxGapRegisters
        self.minRequestGap = minRequestGap
        self.wordOrder = wordOrder
        self.forbidden = forbidden
    }

    /// The planner limits for this device.
    public var readLimits: ReadLimits {
        ReadLimits(maxRegisters: maxRegistersPerRead, maxBits: 2000, maxGap: maxGapRegisters, forbidden: forbidden)
    }
}

/// Where a point lives.
public enum PointLocation: Sendable, Equatable {
    /// A fixed register (or bit) address.
    case register(table: ModbusTable, address: Int)
    /// A point of a SunSpec model, found by discovery at run time.
    case sunSpec(model: Int, point: String)
}

/// One point of a profile, as written in the YAML.
public struct PointDefinition: Sendable, Equatable {
    public var name: String
    public var location: PointLocation
    /// The register type; for SunSpec points, taken from the model definition.
    public var type: RegisterType
    /// Overrides the profile's word order for this point.
    public var order: WordOrder?
    /// A constant multiplier (applied after any scale register).
    public var scale: Double?
    /// The name of another point holding a SunSpec-style power-of-ten scale factor.
    public var scaleRegister: String?
    public var unit: String?
    public var access: PointAccess
    public var min: Double?
    public var max: Double?
    /// State codes and their labels.
    public var enumLabels: [Int: String]
    public var poll: PollClass
    /// When true, the type's "not implemented" value (0xFFFF, 0x8000, NaN …) reads as missing.
    public var notImplementedIsMissing: Bool
    public var description: String?
    /// Where the point is defined (its `name` line).
    public var definedAt: SourceLocation

    public init(name: String, location: PointLocation, type: RegisterType, order: WordOrder? = nil, scale: Double? = nil,
                scaleRegister: String? = nil, unit: String? = nil, access: PointAccess = .r, min: Double? = nil,
                max: Double? = nil, enumLabels: [Int: String] = [:], poll: PollClass = .normal,
                notImplementedIsMissing: Bool = false, description: String? = nil, definedAt: SourceLocation) {
        self.name = name
        self.location = location
        self.type = type
        self.order = order
        self.scale = scale
        self.scaleRegister = scaleRegister
        self.unit = unit
        self.access = access
        self.min = min
        self.max = max
        self.enumLabels = enumLabels
        self.poll = poll
        self.notImplementedIsMissing = notImplementedIsMissing
        self.description = description
        self.definedAt = definedAt
    }

    public var isCanonical: Bool { !name.hasPrefix("x_") }
}

/// Where the register map of a profile comes from.
public struct ProfileSource: Sendable, Equatable {
    public var document: String
    public var version: String?
    public var url: String?
    public var section: String?
}

/// SunSpec discovery settings of a profile whose points are SunSpec model points.
public struct SunSpecSettings: Sendable, Equatable {
    /// Where to look for "SunS", in order.
    public var bases: [Int]
    public static let defaultBases = [40000, 0, 50000]
}

/// A device profile.
public struct DeviceProfile: Sendable {
    public var id: String
    public var kind: DeviceKind
    public var vendor: String
    public var model: String
    public var source: ProfileSource
    /// Path of the firmware note, as written (relative to the profile file).
    public var firmwareNotes: String
    public var transport: TransportDefaults
    public var sunSpec: SunSpecSettings?
    public var points: [PointDefinition]
    /// The file the profile was loaded from.
    public var file: String
    /// SunSpec model layouts used by the profile's SunSpec points (empty otherwise).
    public var sunSpecModels: SunSpecModelLibrary

    public func point(named name: String) -> PointDefinition? { points.first { $0.name == name } }

    /// True when points need SunSpec discovery before they have addresses.
    public var needsDiscovery: Bool {
        points.contains { if case .sunSpec = $0.location { true } else { false } }
    }
}
