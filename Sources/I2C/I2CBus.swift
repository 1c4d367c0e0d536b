// The I2C seam: SMBus-style transfers to a 7-bit address on one bus.
// Implementations: `LinuxI2CBus` (libi2c on /dev/i2c-N, on a dedicated
// thread) and `FakeI2CBus` (simulated devices, for tests).

/// A failed I2C transfer, naming the bus, address and register.
/// Prints as one line, e.g.
/// `i2c error: /dev/i2c-1 address 0x48 register 0x00: read word failed: Remote I/O error (errno 121)`.
public struct I2CError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No device acknowledged the address (ENXIO/EREMOTEIO/EIO on Linux).
        case noAcknowledge
        /// The bus device cannot be opened (missing, permissions).
        case openFailed
        /// Any other errno from the kernel.
        case io
        /// A value or argument out of range (programmer error caught at the call).
        case invalidArgument
        /// The bus was closed.
        case closed
    }

    public var kind: Kind
    /// The bus, e.g. `/dev/i2c-1` or `fake`.
    public var bus: String
    public var address: UInt8?
    public var register: UInt8?
    /// The operation, e.g. "read word", "write byte data".
    public var operation: String
    public var errno: Int32?
    public var detail: String

    public init(_ kind: Kind, bus: String, address: UInt8? = nil, register: UInt8? = nil, operation: String, errno: Int32? = nil, detail: String) {
        self.kind = kind
        self.bus = bus
        self.address = address
        self.register = register
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var where_ = bus
        if let address { where_ += " address \(hex(address))" }
        if let register { where_ += " register \(hex(register))" }
        let e = errno.map { " (errno \($0))" } ?? ""
        return "i2c error: \(where_): \(operation) failed: \(detail)\(e)"
    }
}

func hex(_ v: UInt8) -> String {
    let s = String(v, radix: 16)
    return "0x" + (s.count < 2 ? "0" + s : s)
}

/// SMBus transfers on one I2C bus. Addresses are 7-bit (0x03…0x77).
/// Word data is in SMBus order: the low byte is sent/received first.
public protocol I2CBus: Sendable {
    /// A name for messages (`/dev/i2c-1`).
    var name: String { get }
    /// SMBus "receive byte": read one byte without a register.
    func readByte(address: UInt8) async throws(I2CError) -> UInt8
    /// SMBus "send byte": write one byte without a register (PCF8574 output latch).
    func writeByte(address: UInt8, _ value: UInt8) async throws(I2CError)
    func readByteData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt8
    func writeByteData(address: UInt8, register: UInt8, _ value: UInt8) async throws(I2CError)
    /// SMBus "read word": the first byte on the wire is the low byte of the result.
    func readWordData(address: UInt8, register: UInt8) async throws(I2CError) -> UInt16
    func writeWordData(address: UInt8, register: UInt8, _ value: UInt16) async throws(I2CError)
    /// I2C block read of `count` bytes (1…32) starting at `register`.
    func readBlockData(address: UInt8, register: UInt8, count: Int) async throws(I2CError) -> [UInt8]
    /// I2C block write of 1…32 bytes starting at `register`.
    func writeBlockData(address: UInt8, register: UInt8, _ bytes: [UInt8]) async throws(I2CError)
}

extension I2CBus {
    /// Checks a 7-bit address and a block length; throws `.invalidArgument`.
    func validate(address: UInt8, register: UInt8? = nil, count: Int? = nil, operation: String) throws(I2CError) {
        guard (0x03...0x77).contains(address) else {
            throw I2CError(.invalidArgument, bus: name, address: address, register: register, operation: operation,
                           detail: "address is outside the 7-bit range 0x03…0x77")
        }
        if let count, !(1...32).contains(count) {
            throw I2CError(.invalidArgument, bus: name, address: address, register: register, operation: operation,
                           detail: "block length \(count) is outside 1…32")
        }
    }
}
