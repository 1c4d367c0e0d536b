import Basics
import Signals

/// The site file: capacity tree, devices, economics, contracts. See docs/site-file.md.
public struct Site: Sendable, Equatable {
    public var id: String
    /// The operator's region (e.g. `ercot-north`): the default Sparkplug group id of the `fleet:` section.
    public var region: String? = nil
    public var importLimitKw: Double
    public var safetyMarginKw: Double
    public var tickSeconds: Double
    public var restoreRateKwPerTick: Double?
    public var staleAfterS: Double
    /// The capacity tree, root first; every node's parent appears before it.
    public var nodes: [SiteNode]
    public var devices: [SiteDevice]
    public var economics: Economics
    /// Contracts (the Signals vocabulary): a `daily` window is a weekly window on every day, in UTC unless it names a zone.
    public var contracts: [Contract]
    /// The file the site was read from (for messages).
    public var file: String
    /// Inference headroom: the reserve (kW per inference container) above its measured draw at
    /// which the governor budgets it when mining can be shed to cover the rest; nil: the default
    /// (two ticks of the container's ramp). See docs/site-file.md.
    public var inferenceReserveKw: Double? = nil
    /// The `fleet:` section: the site as a Sparkplug B edge node; nil: not one. See docs/fleet.md.
    public var fleet: FleetConfig? = nil
    /// Modbus TCP gateways the site file names in `gateways` (only those; every other endpoint gets one connection).
    public var gateways: [ModbusGatewaySpec] = []

    /// How many TCP connections the controller may open to the Modbus endpoint host:port (the site file's
    /// `gateways: [{tcp, max_connections}]`; 1 when it is not listed).
    public func maxConnections(host: String, port: Int) -> Int {
        gateways.first { $0.host == host && $0.port == port }?.maxConnections ?? 1
    }

    public func device(_ id: String) -> SiteDevice? { devices.first { $0.id == id } }
    public func node(_ id: String) -> SiteNode? { nodes.first { $0.id == id } }
}

public struct SiteNode: Sendable, Equatable {
    public var id: String
    public var parentID: String?
    public var capKw: Double
    /// Id of the meter device measuring this node, if any.
    public var meter: String?

    public init(id: String, parentID: String?, capKw: Double, meter: String? = nil) {
        self.id = id
        self.parentID = parentID
        self.capKw = capKw
        self.meter = meter
    }
}

public enum SiteDeviceClass: String, Sendable, Equatable, CaseIterable {
    case mining, inference, auxiliary, meter
}

public enum DeviceAddress: Sendable, Equatable {
    case tcp(host: String, port: Int, unit: Int)
    case rtu(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int, unit: Int)

    public var unit: Int {
        switch self {
        case .tcp(_, _, let u), .rtu(_, _, _, _, _, let u): return u
        }
    }
}

public struct DeviceLimits: Sendable, Equatable {
    public var maxKw: Double
    public var minStableKw: Double
    public var rampKwPerS: Double
    public var minOnS: Double
    public var minOffS: Double

    public init(maxKw: Double, minStableKw: Double = 0, rampKwPerS: Double = 0, minOnS: Double = 0, minOffS: Double = 0) {
        self.maxKw = maxKw
        self.minStableKw = minStableKw
        self.rampKwPerS = rampKwPerS
        self.minOnS = minOnS
        self.minOffS = minOffS
    }
}

public struct SiteDevice: Sendable, Equatable {
    public var id: String
    public var deviceClass: SiteDeviceClass
    /// Hardware profile id (e.g. "ref-asic-container", "sdm630"); resolved by HardwareProfiles.
    public var profile: String?
    public var address: DeviceAddress?
    /// The tree node the device draws from (meters need none).
    public var nodeID: String?
    /// Mining and inference devices only.
    public var limits: DeviceLimits?
    public var efficiencyJPerTH: Double?
    public var gpus: Int?
    public var kwPerGpu: Double?
    /// A value set directly for this device ($/MWh), overriding hashprice/spot.
    public var valueUsdPerMWh: Double?
    /// Auxiliary loads: a fraction of the IT load below `nodeID`, or a fixed draw.
    public var fractionOfIT: Double?
    public var fixedKw: Double?

    public var isControllable: Bool { deviceClass == .mining || deviceClass == .inference }

    /// The fallback setpoint the controller writes to every container together with its comm
    /// watchdog: where a container goes when the controller falls silent, its safe state (kW).
    /// The simulator (`switchyard sim`) starts its containers here.
    public static let fallbackSetpointKw = 0.0

    public init(
        id: String, deviceClass: SiteDeviceClass, profile: String? = nil, address: DeviceAddress? = nil,
        nodeID: String? = nil, limits: DeviceLimits? = nil, efficiencyJPerTH: Double? = nil, gpus: Int? = nil,
        kwPerGpu: Double? = nil, valueUsdPerMWh: Double? = nil, fractionOfIT: Double? = nil, fixedKw: Double? = nil
    ) {
        self.id = id
        self.deviceClass = deviceClass
        self.profile = profile
        self.address = address
        self.nodeID = nodeID
        self.limits = limits
        self.efficiencyJPerTH = efficiencyJPerTH
        self.gpus = gpus
        self.kwPerGpu = kwPerGpu
        self.valueUsdPerMWh = valueUsdPerMWh
        self.fractionOfIT = fractionOfIT
        self.fixedKw = fixedKw
    }
}

public struct StrikeConfig: Sendable, Equatable {
    public var priceUsdPerMWh: Double
    public var hysteresisUsdPerMWh: Double
    public var minOffS: Double

    public init(priceUsdPerMWh: Double, hysteresisUsdPerMWh: Double = 0, minOffS: Double = 0) {
        self.priceUsdPerMWh = priceUsdPerMWh
        self.hysteresisUsdPerMWh = hysteresisUsdPerMWh
        self.minOffS = minOffS
    }
}

public struct Economics: Sendable, Equatable {
    public var hashpriceUsdPerPHDay: Double?
    public var miningValueUsdPerMWh: Double?
    public var strike: StrikeConfig?
    public var inferenceSpotUsdPerMWh: Double?
    public var inferenceSpotUsdPerGpuHour: Double?
    /// The energy price the loop uses while the signals have none yet and no price is known from
    /// an earlier tick ($/MWh). nil: mining is held at its current level until a price arrives.
    public var fallbackPriceUsdPerMWh: Double?

    public init(
        hashpriceUsdPerPHDay: Double? = nil, miningValueUsdPerMWh: Double? = nil, strike: StrikeConfig? = nil,
        inferenceSpotUsdPerMWh: Double? = nil, inferenceSpotUsdPerGpuHour: Double? = nil, fallbackPriceUsdPerMWh: Double? = nil
    ) {
        self.fallbackPriceUsdPerMWh = fallbackPriceUsdPerMWh
        self.hashpriceUsdPerPHDay = hashpriceUsdPerPHDay
        self.miningValueUsdPerMWh = miningValueUsdPerMWh
        self.strike = strike
        self.inferenceSpotUsdPerMWh = inferenceSpotUsdPerMWh
        self.inferenceSpotUsdPerGpuHour = inferenceSpotUsdPerGpuHour
    }
}

/// A Modbus TCP gateway as the site file declares it (`gateways:`): how many TCP connections the
/// controller may open to it at once. libmodbus does one request at a time per connection; with
/// more than one, the poller and the fast path spread the gateway's devices over them.
public struct ModbusGatewaySpec: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// 1…16; default 1.
    public var maxConnections: Int

    public init(host: String, port: Int, maxConnections: Int = 1) {
        self.host = host
        self.port = port
        self.maxConnections = maxConnections
    }
}
