// A simulated I2C bus for tests: TMP102, LM75, PCF8574 and MCP23017 devices
// with register files, NACK for absent addresses, and injected errors.

import Basics
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A device to put on a `FakeI2CBus`.
public enum FakeI2CDevice: Sendable, Hashable {
    /// TMP102: 16-bit registers 0x00 temperature, 0x01 configuration (0x60A0), 0x02 T_LOW, 0x03 T_HIGH.
    case tmp102(celsius: Double)
    /// LM75 with `bits` of resolution (9 for LM75A, 11 for LM75B): 0x00 temperature, 0x01 config (8-bit), 0x02 T_HYST, 0x03 T_OS.
    case lm75(celsius: Double, bits: Int = 9)
    /// PCF8574: one latch byte (power-on 0xFF). `inputs` are the levels external circuits pull pins to when the latch is 1.
    case pcf8574(inputs: UInt8 = 0xFF)
    /// MCP23017 in BANK=0: 22 byte registers, IODIR power-on 0xFF. `inputs` (16 bits, port A low) feed GPIO reads of input pins.
    case mcp23017(inputs: UInt16 = 0)
    /// A plain 256-byte register file with auto-increment for word and block access.
    case registers([UInt8: UInt8] = [:])
}

/// One recorded transfer.
public struct FakeI2CTransfer: Sendable, Hashable, CustomStringConvertible {
    public var operation: String
    public var address: UInt8
    public var register: UInt8?
    /// Written bytes (for writes); read bytes (for reads), in wire order.
    public var bytes: [UInt8]

    public var description: String {
        "\(operation) \(hex(address))\(register.map { " reg \(hex($0))" } ?? "") [\(bytes.map(hex).joined(separator: " "))]"
    }
}

/// An in-memory `I2CBus`. Thread-safe; all state sits behind one mutex.
public final class FakeI2CBus: I2CBus {
    private struct Device {
        var kind: FakeI2CDevice
        /// Byte registers (MCP23017, plain register files) or, for sensors, 16-bit registers stored big-endian in pairs.
        var bytes = [UInt8](repeating: 0, count: 256)
        var words: [UInt8: UInt16] = [:]
        var latch: UInt8 = 0xFF
    }
    private struct Fault {
        var address: UInt8
        var errno: Int32
        var remaining: Int
    }
    private struct State {
        var devices: [UInt8: Device] = [:]
        var faults: [Fault] = []
        var log: [FakeI2CTransfer] = []
    }

    public let name: String
    private let state = Mutex(State())

    public init(name: String = "fake-i2c", devices: [UInt8: FakeI2CDevice] = [:]) {
        self.name = name
        for (a, d) in devices { attach(d, at: a) }
    }

    // MARK: Test controls

    /// Puts a device at `address` (replacing any).
    public func attach(_ device: FakeI2CDevice, at address: UInt8) {
        var d = Device(kind: device)
        switch device {
        case .tmp102(let c):
            d.words = [0x00: TemperatureCodec.register(celsius: c, bits: 12), 0x01: 0x60A0,
                       0x02: TemperatureCodec.register(celsius: 75, bits: 12), 0x03: TemperatureCodec.register(celsius: 80, bits: 12)]
        case .lm75(let c, let bits):
            d.words = [0x00: TemperatureCodec.register(celsius: c, bits: bits), 0x02: TemperatureCodec.register(celsius: 75, bits: 9),
                       0x03: TemperatureCodec.register(celsius: 80, bits: 9)]
        case .pcf8574:
            d.latch = 0xFF
        case .mcp23017:
            d.bytes[0x00] = 0xFF  // IODIRA
            d.bytes[0x01] = 0xFF  // IODIRB
        case .registers(let r):
            for (k, v) in r { d.bytes[Int(k)] = v }
        }
        state.withLock { $0.devices[address] = d }
    }

    /// Removes the device: later transfers to `address` are not acknowledged.
    public func detach(_ address: UInt8) { _ = state.withLock { $0.devices.removeValue(forKey: address) } }

    /// Sets a simulated sensor's temperature.
    public func setTemperature(_ celsius: Double, at address: UInt8) {
        state.withLock { s in
            guard let d = s.devices[address] else { return }
            switch d.kind {
            case .tmp102: s.devices[address]?.words[0x00] = TemperatureCodec.register(celsius: celsius, bits: 12)
            case .lm75(_, let bits): s.devices[address]?.words[0x00] = TemperatureCodec.register(celsius: celsius, bits: bits)
            default: break
            }
        }
    }

    /// Makes the next `count` transfers to `address` fail with `errno` (e.g. EIO, ETIMEDOUT).
    public func injectError(at address: UInt8, errno: Int32 = EIO, count: Int = 1) {
        state.withLock { $0.faults.append(Fault(address: address, errno: errno, remaining: count)) }
    }

    /// Every transfer so far, in order.
    public var transfers: [FakeI2CTransfer] { state.withLock { $0.log } }

    public func clearTransfers() { state.withLock { $0.log.removeAll() } }

    /// A byte register of a register-file device (MCP23017 or `.registers`).
    public func register(_ register: UInt8, at address: UInt8) -> UInt8? {
        state.withLock { $0.devices[address]?.bytes[Int(register)] }
    }

    /// The level of an expander pin as a meter on the pin would see it:
    /// PCF8574 latch bit AND the external input; MCP23017 OLAT for outputs, the input level otherwise.
    public func pinLevel(_ pin: Int, at address: UInt8) -> Bool? {
        state.withLock { s in
            guard let d = s.devices[address] else { return nil }
            switch d.kind {
            case .pcf8574(let inputs):
                let bit = UInt8(1) << UInt8(pin)
                return d.latch & inputs & bit != 0
            case .mcp23017(let inputs):
                let port = pin / 8, bit = UInt8(1) << UInt8(pin % 8)
                let isOutput = d.bytes[port] & bit == 0
                if isOutput { return d.bytes[0x14 + port] & bit != 0 }
                return inputs & (UInt16(1) << UInt16(pin)) != 0
            default:
                return nil
            }
        }
    }

    // MARK: Transfers

    /// Runs `body` on the device at `address`, or fails like the kernel would.
    private func with<T>(_ address: UInt8, _ register: UInt8?, _ operation: String,
                         _ body: (inout Device) throws(I2CError) -> (T, [UInt8])) throws(I2CError) -> T {
        try validate(address: address, register: register, operation: operation)
        let result: Result<T, I2CError> = state.withLock { s in
            if let i = s.faults.firstIndex(where: { $0.address == address }) {
                let e = s.faults[i].errno
                s.faults[i].remaining -= 1
                if s.faults[i].remaining <= 0 { s.faults.remove(at: i) }
                return .failure(I2CError(e == ENXIO || e == EREMOTEIO ? .noAcknowledge : .io, bus: name, address: address,
                                         register: register, operation: operation, errno: e, detail: errnoText(e)))
            }
            guard var d = s.devices[address] else {
                return .failure(I2CError(.noAcknowledge, bus: name, address: address, register: register, operation: operation,
                                         errno: ENXIO, detail: "no device acknowledged the address"))
            }
            do throws(I2CError) {
                let (value, wire) = try body(&d)
                s.devices[address] = d
                s.log.append(FakeI2CTransfer(operation: operation, address: address, register: register, bytes: wire))
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func unsupported(_ address: UInt8, _ register: UInt8?, _ operation: String) -> I2CError {
        // A real device NACKs a transfer it does not support.
        I2CError(.noAcknowledge, bus: name, address: address, register: register, operation: operation, errno: EREMOTEIO,
                 detail: errnoText(EREMOTEIO))
    }

    public func readByte(address: UInt8) async throws(I2CError) -> UInt8 {
        try with(address, nil, "read byte") { (d: inout Device) throws(I2CError) -> (UInt8, [UInt8]) in
            guard case .pcf8574(let inputs) = d.kind else { throw unsupported(address, nil, "read byte") }
            let v = d.latch & inputs
            return (v, [v])
        }
    }

    public func writeByte(address: UInt8, _ value: UInt8) async throws(I2CError) {
        try with(address, nil, "write byte") { (d: inout Device) throws(I2CError) -> ((), [UInt8]) in
            guard case .pcf8574 = d.kind else { throw unsupported(address, nil, "write byte") }
            d.latch = value
            return ((), [value])
        }
    }

    public func readByteData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt8 {
        try with(address, register, "read byte data") { (d: inout Device) throws(I2CError) -> (UInt8, [UInt8]) in
            let v = try readRegisterByte(&d, register, address)
            return (v, [v])
        }
    }

    public func writeByteData(address: UInt8, register: UInt8, _ value: UInt8) async throws(I2CError) {
        try with(address, register, "write byte data") { (d: inout Device) throws(I2CError) -> ((), [UInt8]) in
            try writeRegisterByte(&d, register, value, address)
            return ((), [value])
        }
    }

    public func readWordData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt16 {
        try with(address, register, "read word data") { (d: inout Device) throws(I2CError) -> (UInt16, [UInt8]) in
            switch d.kind {
            case .tmp102, .lm75:
                guard let w = d.words[register & 0x03] else { throw unsupported(address, register, "read word data") }
                let wire = [UInt8(w >> 8), UInt8(w & 0xFF)]  // the chip sends MSB first
                return (UInt16(wire[0]) | UInt16(wire[1]) << 8, wire)  // SMBus: first byte is the low byte
            default:
                let lo = try readRegisterByte(&d, register, address)
                let hi = try readRegisterByte(&d, register &+ 1, address)
                return (UInt16(lo) | UInt16(hi) << 8, [lo, hi])
            }
        }
    }

    public func writeWordData(address: UInt8, register: UInt8, _ value: UInt16) async throws(I2CError) {
        try with(address, register, "write word data") { (d: inout Device) throws(I2CError) -> ((), [UInt8]) in
            let wire = [UInt8(value & 0xFF), UInt8(value >> 8)]
            switch d.kind {
            case .tmp102, .lm75:
                guard register & 0x03 != 0 else { throw unsupported(address, register, "write word data") }  // temperature is read-only
                d.words[register & 0x03] = UInt16(wire[0]) << 8 | UInt16(wire[1])
            default:
                try writeRegisterByte(&d, register, wire[0], address)
                try writeRegisterByte(&d, register &+ 1, wire[1], address)
            }
            return ((), wire)
        }
    }

    public func readBlockData(address: UInt8, register: UInt8, count: Int) async throws(I2CError) -> [UInt8] {
        try validate(address: address, register: register, count: count, operation: "read block data")
        return try with(address, register, "read block data") { (d: inout Device) throws(I2CError) -> ([UInt8], [UInt8]) in
            var out: [UInt8] = []
            for k in 0..<count { out.append(try readRegisterByte(&d, register &+ UInt8(k), address)) }
            return (out, out)
        }
    }

    public func writeBlockData(address: UInt8, register: UInt8, _ bytes: [UInt8]) async throws(I2CError) {
        try validate(address: address, register: register, count: bytes.count, operation: "write block data")
        try with(address, register, "write block data") { (d: inout Device) throws(I2CError) -> ((), [UInt8]) in
            for (k, b) in bytes.enumerated() { try writeRegisterByte(&d, register &+ UInt8(k), b, address) }
            return ((), bytes)
        }
    }

    // MARK: Register semantics

    private func readRegisterByte(_ d: inout Device, _ r: UInt8, _ address: UInt8) throws(I2CError) -> UInt8 {
        switch d.kind {
        case .mcp23017(let inputs):
            guard r <= 0x15 else { throw unsupported(address, r, "read") }
            if r == 0x12 || r == 0x13 {  // GPIO: outputs read back OLAT, inputs the external level
                let port = Int(r - 0x12)
                let dir = d.bytes[port]
                let ext = UInt8(truncatingIfNeeded: inputs >> (8 * UInt16(port)))
                return (d.bytes[0x14 + port] & ~dir) | (ext & dir)
            }
            return d.bytes[Int(r)]
        case .registers:
            return d.bytes[Int(r)]
        case .lm75:
            guard r == 0x01 else { throw unsupported(address, r, "read byte data") }
            return d.bytes[1]
        case .tmp102, .pcf8574:
            throw unsupported(address, r, "read byte data")
        }
    }

    private func writeRegisterByte(_ d: inout Device, _ r: UInt8, _ v: UInt8, _ address: UInt8) throws(I2CError) {
        switch d.kind {
        case .mcp23017:
            guard r <= 0x15 else { throw unsupported(address, r, "write") }
            if r == 0x12 || r == 0x13 { d.bytes[Int(r) + 2] = v }  // writing GPIO writes OLAT
            else { d.bytes[Int(r)] = v }
        case .registers:
            d.bytes[Int(r)] = v
        case .lm75:
            guard r == 0x01 else { throw unsupported(address, r, "write byte data") }
            d.bytes[1] = v
        case .tmp102, .pcf8574:
            throw unsupported(address, r, "write byte data")
        }
    }
}
