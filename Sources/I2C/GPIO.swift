// GPIO expanders for the heartbeat relay: PCF8574 (8 quasi-bidirectional pins,
// one latch byte) and MCP23017 (16 pins, BANK=0 register map).

/// Digital outputs on an I2C expander.
public protocol GPIOExpander: Sendable {
    var name: String { get }
    var pinCount: Int { get }
    /// Makes `pin` an output driving `level` (the level is set before the direction, so it does not glitch).
    func configureOutput(pin: Int, level: Bool) async throws(I2CError)
    func write(pin: Int, _ level: Bool) async throws(I2CError)
    /// The pin's level as the chip reports it.
    func read(pin: Int) async throws(I2CError) -> Bool
}

extension GPIOExpander {
    func check(pin: Int, bus: String, address: UInt8) throws(I2CError) {
        guard (0..<pinCount).contains(pin) else {
            throw I2CError(.invalidArgument, bus: bus, address: address, operation: "use pin \(pin)", detail: "\(name) has pins 0…\(pinCount - 1)")
        }
    }
}

/// NXP/TI PCF8574 (0x20…0x27) or PCF8574A (0x38…0x3F). There are no registers:
/// a written byte sets the latch; a pin written 1 is a weak pull-up (input or high
/// output), 0 drives low. The driver keeps the latch so other pins stay as they were.
public actor PCF8574: GPIOExpander {
    public nonisolated let bus: any I2CBus
    public nonisolated let address: UInt8
    /// Power-on latch is all ones.
    private var latch: UInt8 = 0xFF

    public init(bus: any I2CBus, address: UInt8 = 0x20) {
        self.bus = bus
        self.address = address
    }

    public nonisolated var name: String { "PCF8574 at \(bus.name) \(hex(address))" }
    public nonisolated var pinCount: Int { 8 }

    public func configureOutput(pin: Int, level: Bool) async throws(I2CError) {
        try await write(pin: pin, level)
    }

    public func write(pin: Int, _ level: Bool) async throws(I2CError) {
        try check(pin: pin, bus: bus.name, address: address)
        var next = latch
        if level { next |= 1 << UInt8(pin) } else { next &= ~(1 << UInt8(pin)) }
        try await bus.writeByte(address: address, next)
        latch = next
    }

    public func read(pin: Int) async throws(I2CError) -> Bool {
        try check(pin: pin, bus: bus.name, address: address)
        return try await bus.readByte(address: address) & (1 << UInt8(pin)) != 0
    }
}

/// Microchip MCP23017 (0x20…0x27), IOCON.BANK = 0 (power-on): IODIRA 0x00, IODIRB 0x01,
/// GPIOA 0x12, GPIOB 0x13, OLATA 0x14, OLATB 0x15. Pins 0…7 are port A, 8…15 port B.
public actor MCP23017: GPIOExpander {
    public static let iodir: (a: UInt8, b: UInt8) = (0x00, 0x01)
    public static let gpio: (a: UInt8, b: UInt8) = (0x12, 0x13)
    public static let olat: (a: UInt8, b: UInt8) = (0x14, 0x15)

    public nonisolated let bus: any I2CBus
    public nonisolated let address: UInt8
    /// Shadow of OLATA/OLATB, read from the chip on first use.
    private var olat: [UInt8]? = nil

    public init(bus: any I2CBus, address: UInt8 = 0x20) {
        self.bus = bus
        self.address = address
    }

    public nonisolated var name: String { "MCP23017 at \(bus.name) \(hex(address))" }
    public nonisolated var pinCount: Int { 16 }

    private func port(_ pin: Int) -> (index: Int, bit: UInt8) { (pin / 8, UInt8(1) << UInt8(pin % 8)) }

    private func latches() async throws(I2CError) -> [UInt8] {
        if let olat { return olat }
        let a = try await bus.readByteData(address: address, register: Self.olat.a)
        let b = try await bus.readByteData(address: address, register: Self.olat.b)
        olat = [a, b]
        return [a, b]
    }

    public func configureOutput(pin: Int, level: Bool) async throws(I2CError) {
        try check(pin: pin, bus: bus.name, address: address)
        try await write(pin: pin, level)
        let (i, bit) = port(pin)
        let reg = i == 0 ? Self.iodir.a : Self.iodir.b
        let dir = try await bus.readByteData(address: address, register: reg)
        if dir & bit != 0 { try await bus.writeByteData(address: address, register: reg, dir & ~bit) }
    }

    public func write(pin: Int, _ level: Bool) async throws(I2CError) {
        try check(pin: pin, bus: bus.name, address: address)
        var l = try await latches()
        let (i, bit) = port(pin)
        if level { l[i] |= bit } else { l[i] &= ~bit }
        try await bus.writeByteData(address: address, register: i == 0 ? Self.olat.a : Self.olat.b, l[i])
        olat = l
    }

    public func read(pin: Int) async throws(I2CError) -> Bool {
        try check(pin: pin, bus: bus.name, address: address)
        let (i, bit) = port(pin)
        return try await bus.readByteData(address: address, register: i == 0 ? Self.gpio.a : Self.gpio.b) & bit != 0
    }
}

/// The watchdog heartbeat: a relay (or a watchdog input) on an expander pin that
/// toggles on every healthy control-loop tick. External hardware drops the
/// containers to their safe mode when the toggling stops. `drop()` drives the
/// safe level at once (shutdown, or the loop noticing it is unhealthy).
public actor HeartbeatRelay {
    public nonisolated let expander: any GPIOExpander
    public nonisolated let pin: Int
    /// The level that means "not healthy" to the external hardware.
    public nonisolated let safeLevel: Bool
    /// The level last written (nil before `start()`).
    public private(set) var level: Bool?
    public private(set) var beats = 0

    public init(expander: any GPIOExpander, pin: Int, safeLevel: Bool = false) {
        self.expander = expander
        self.pin = pin
        self.safeLevel = safeLevel
    }

    /// Makes the pin an output at the safe level.
    public func start() async throws(I2CError) {
        try await expander.configureOutput(pin: pin, level: safeLevel)
        level = safeLevel
    }

    /// Toggles the pin (configuring it first if `start()` was not called).
    public func beat() async throws(I2CError) {
        if level == nil { try await start() }
        let next = !(level ?? safeLevel)
        try await expander.write(pin: pin, next)
        level = next
        beats += 1
    }

    /// Drives the safe level.
    public func drop() async throws(I2CError) {
        if level == nil {
            try await start()
            return
        }
        try await expander.write(pin: pin, safeLevel)
        level = safeLevel
    }
}
