// Optional I2C hardware of a site: one bus, an optional cabinet temperature
// sensor and an optional heartbeat relay. When a site has no `i2c` section the
// controller runs without it.

/// The `i2c` section of a site config (snake_case keys in YAML/JSON).
public struct I2CConfig: Sendable, Hashable, Codable {
    public enum SensorModel: String, Sendable, Hashable, Codable { case tmp102, lm75 }
    public enum ExpanderModel: String, Sendable, Hashable, Codable { case pcf8574, mcp23017 }

    public struct Sensor: Sendable, Hashable, Codable {
        public var model: SensorModel
        public var address: UInt8
        /// LM75 resolution (9 or 11 …); TMP102: 13 selects extended mode.
        public var bits: Int?
        public init(model: SensorModel, address: UInt8 = 0x48, bits: Int? = nil) {
            self.model = model
            self.address = address
            self.bits = bits
        }
    }

    public struct Heartbeat: Sendable, Hashable, Codable {
        public var expander: ExpanderModel
        public var address: UInt8
        public var pin: Int
        /// The level that tells the external hardware to go to safe mode.
        public var safeLevel: Bool
        public init(expander: ExpanderModel, address: UInt8 = 0x20, pin: Int, safeLevel: Bool = false) {
            self.expander = expander
            self.address = address
            self.pin = pin
            self.safeLevel = safeLevel
        }
        enum CodingKeys: String, CodingKey { case expander, address, pin, safeLevel = "safe_level" }
    }

    /// `/dev/i2c-1`.
    public var bus: String
    public var temperature: Sensor?
    public var heartbeat: Heartbeat?

    public init(bus: String, temperature: Sensor? = nil, heartbeat: Heartbeat? = nil) {
        self.bus = bus
        self.temperature = temperature
        self.heartbeat = heartbeat
    }
}

/// The devices built from an `I2CConfig` on a bus.
public struct I2CHardware: Sendable {
    public var bus: any I2CBus
    public var temperature: (any TemperatureSensor)?
    public var heartbeat: HeartbeatRelay?

    /// Builds drivers on `bus` (a `LinuxI2CBus` or a `FakeI2CBus`). Does no I/O.
    public init(config: I2CConfig, bus: any I2CBus) throws(I2CError) {
        self.bus = bus
        if let t = config.temperature {
            try bus.validate(address: t.address, operation: "configure temperature sensor")
            switch t.model {
            case .tmp102: temperature = TMP102(bus: bus, address: t.address, extendedMode: t.bits == 13)
            case .lm75:
                let bits = t.bits ?? 9
                guard (9...12).contains(bits) else {
                    throw I2CError(.invalidArgument, bus: bus.name, address: t.address, operation: "configure LM75", detail: "bits must be 9…12, not \(bits)")
                }
                temperature = LM75(bus: bus, address: t.address, bits: bits)
            }
        }
        if let h = config.heartbeat {
            try bus.validate(address: h.address, operation: "configure heartbeat expander")
            let expander: any GPIOExpander = switch h.expander {
            case .pcf8574: PCF8574(bus: bus, address: h.address)
            case .mcp23017: MCP23017(bus: bus, address: h.address)
            }
            guard (0..<expander.pinCount).contains(h.pin) else {
                throw I2CError(.invalidArgument, bus: bus.name, address: h.address, operation: "configure heartbeat",
                               detail: "\(expander.name) has pins 0…\(expander.pinCount - 1), not \(h.pin)")
            }
            heartbeat = HeartbeatRelay(expander: expander, pin: h.pin, safeLevel: h.safeLevel)
        }
    }

    /// Opens the Linux bus named in `config` and builds the drivers.
    public static func open(_ config: I2CConfig) async throws(I2CError) -> I2CHardware {
        try I2CHardware(config: config, bus: try await LinuxI2CBus.open(config.bus))
    }
}
