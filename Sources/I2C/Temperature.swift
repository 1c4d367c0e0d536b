// Cabinet temperature sensors: TMP102 and LM75 (and its 11-bit variants such as LM75B).
// Both keep the temperature in register 0x00 as a left-aligned two's-complement
// value sent MSB first. An SMBus word read returns the first byte in the low
// half, so the driver swaps the bytes before decoding.

/// A temperature sensor.
public protocol TemperatureSensor: Sendable {
    /// A name for messages, e.g. "TMP102 at /dev/i2c-1 0x48".
    var name: String { get }
    func readCelsius() async throws(I2CError) -> Double
}

/// Decoding shared by TMP102 and LM75.
public enum TemperatureCodec {
    /// The register value (MSB first, as the chip sends it) from an SMBus word.
    public static func registerValue(fromSMBusWord word: UInt16) -> UInt16 { word.byteSwapped }

    /// °C from a left-aligned register value with `bits` significant bits (9…13):
    /// 9 bits → 0.5 °C/LSB, 11 → 0.125, 12 → 0.0625, 13 → 0.0625 with one more integer bit (TMP102 extended mode).
    public static func celsius(register: UInt16, bits: Int, extendedMode: Bool = false) -> Double {
        let shift = 16 - bits
        let counts = Int(Int16(bitPattern: register) >> shift)
        let fractionBits = extendedMode ? bits - 9 : bits - 8
        return Double(counts) / Double(1 << fractionBits)
    }

    /// The register value for `celsius` (rounded toward zero to the resolution); for simulated devices.
    public static func register(celsius: Double, bits: Int, extendedMode: Bool = false) -> UInt16 {
        let fractionBits = extendedMode ? bits - 9 : bits - 8
        let counts = Int((celsius * Double(1 << fractionBits)).rounded(.towardZero))
        return UInt16(bitPattern: Int16(truncatingIfNeeded: counts << (16 - bits)))
    }
}

/// TI TMP102: 12-bit (0.0625 °C/LSB) at register 0x00; 13-bit in extended mode (EM bit set).
public struct TMP102: TemperatureSensor {
    public static let temperatureRegister: UInt8 = 0x00
    public static let configurationRegister: UInt8 = 0x01
    public let bus: any I2CBus
    public let address: UInt8
    public let extendedMode: Bool

    /// `address` is 0x48…0x4B (ADD0 pin).
    public init(bus: any I2CBus, address: UInt8 = 0x48, extendedMode: Bool = false) {
        self.bus = bus
        self.address = address
        self.extendedMode = extendedMode
    }

    public var name: String { "TMP102 at \(bus.name) \(hex(address))" }

    public func readCelsius() async throws(I2CError) -> Double {
        let word = try await bus.readWordData(address: address, register: Self.temperatureRegister)
        let raw = TemperatureCodec.registerValue(fromSMBusWord: word)
        // In extended mode bit 0 of the register is 1; in normal mode 0.
        return TemperatureCodec.celsius(register: raw, bits: extendedMode ? 13 : 12, extendedMode: extendedMode)
    }
}

/// LM75 family: 9-bit (0.5 °C/LSB) by default; 11-bit variants (LM75B, 0.125 °C/LSB) with `bits: 11`.
public struct LM75: TemperatureSensor {
    public static let temperatureRegister: UInt8 = 0x00
    public let bus: any I2CBus
    public let address: UInt8
    public let bits: Int

    /// `address` is 0x48…0x4F; `bits` is 9 … 12 depending on the part.
    public init(bus: any I2CBus, address: UInt8 = 0x48, bits: Int = 9) {
        precondition((9...12).contains(bits), "LM75 resolution is 9…12 bits")
        self.bus = bus
        self.address = address
        self.bits = bits
    }

    public var name: String { "LM75 at \(bus.name) \(hex(address))" }

    public func readCelsius() async throws(I2CError) -> Double {
        let word = try await bus.readWordData(address: address, register: Self.temperatureRegister)
        return TemperatureCodec.celsius(register: TemperatureCodec.registerValue(fromSMBusWord: word), bits: bits)
    }
}
