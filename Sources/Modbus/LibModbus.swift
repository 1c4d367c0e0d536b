// Thin, blocking wrappers over libmodbus calls. One helper per C call reads
// errno immediately and turns it into a typed `ModbusError`.
//
// A `ModbusContext` owns one `modbus_t`. libmodbus is not thread-safe, so a
// context is not Sendable: it lives on exactly one thread (a connection lane's
// executor, or a server's thread).

import Basics
import CModbus

#if canImport(Glibc)
import Glibc
#endif

// Serial parity is the shared `Parity` (Basics); libmodbus wants its letter as a C char.
extension Parity {
    var cChar: CChar { CChar(UInt8(ascii: rawValue.unicodeScalars.first!)) }
}

/// Modbus RTU line settings.
public struct RTUSettings: Sendable, Hashable, Codable {
    public var device: String
    public var baud: Int
    public var parity: Parity
    public var dataBits: Int
    public var stopBits: Int
    /// Put the port in RS-485 mode (TIOCSRS485). Only when asked: a pty refuses it.
    public var rs485: Bool

    public init(device: String, baud: Int = 9600, parity: Parity = .none, dataBits: Int = 8, stopBits: Int = 1, rs485: Bool = false) {
        self.device = device
        self.baud = baud
        self.parity = parity
        self.dataBits = dataBits
        self.stopBits = stopBits
        self.rs485 = rs485
    }
}

/// Where a Modbus device (or gateway) is.
public enum ModbusEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case rtu(RTUSettings)

    public var description: String {
        switch self {
        case let .tcp(host, port): "\(host):\(port)"
        case let .rtu(s): "\(s.device)@\(s.baud)\(s.parity.rawValue)\(s.dataBits)\(s.stopBits)"
        }
    }

    /// Parses "HOST:PORT" (IPv6 as "[::1]:502").
    public static func parseTCP(_ text: String) -> ModbusEndpoint? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return .tcp(host: host, port: port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return .tcp(host: String(parts[0]), port: port)
    }
}

/// Reads errno and maps it to a `ModbusError.Kind`.
func currentErrorKind() -> ModbusError.Kind {
    let e = cmodbus_errno()
    return errorKind(errno: e)
}

func errorKind(errno e: Int32) -> ModbusError.Kind {
    let base = cmodbus_enobase()
    if e > base, e <= base + 11, let ex = ModbusException(rawValue: UInt8(e - base)) {
        return .exception(ex)
    }
    switch e {
    case ETIMEDOUT: return .timeout
    case cmodbus_embbadcrc(): return .crc
    case cmodbus_embbaddata(): return .invalidResponse("unexpected data (wrong transaction, function or length)")
    case cmodbus_embbadexc(): return .invalidResponse("invalid exception code")
    case cmodbus_embmdata(): return .invalidResponse("too many data")
    case cmodbus_embbadslave(): return .invalidResponse("response from the wrong unit id")
    case cmodbus_embunkexc(): return .unknownException(0)
    case ECONNREFUSED: return .connectionRefused
    case EPIPE, ECONNRESET, EBADF, ENOTCONN, ECONNABORTED, ESHUTDOWN: return .connectionLost(errnoText(e))
    case EHOSTUNREACH, ENETUNREACH, ENOENT, ENODEV, EACCES, EADDRNOTAVAIL: return .unreachable(errnoText(e))
    case EINVAL: return .invalidRequest(errnoText(e))
    case EMSGSIZE: return .invalidResponse("message too long")
    default: return .io(errno: e, errnoText(e))
    }
}


/// libmodbus 3.1.6 uses select(2), so descriptors must stay below glibc's FD_SETSIZE.
let libmodbusMaxDescriptor: Int32 = 1024

/// The descriptor the next open(2) or socket(2) would get (the lowest free one), or -1 if none is free.
func lowestFreeDescriptor() -> Int32 {
    let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    if fd >= 0 { close(fd) }
    return fd
}

/// One libmodbus context. Not thread-safe, not Sendable.
final class ModbusContext {
    let ctx: OpaquePointer
    let endpoint: ModbusEndpoint
    let name: String
    // Confined to the lane's thread like the context itself (not Sendable): no dynamic exclusivity check.
    @exclusivity(unchecked) private(set) var isConnected = false
    @exclusivity(unchecked) private var currentUnit: Int32 = -1

    /// Creates (but does not connect) a context for `endpoint`.
    init(endpoint: ModbusEndpoint, name: String, responseTimeout: Duration) throws(ModbusError) {
        self.endpoint = endpoint
        self.name = name
        let made: OpaquePointer?
        switch endpoint {
        case let .tcp(host, port):
            made = modbus_new_tcp_pi(host, String(port))
        case let .rtu(s):
            guard [5, 6, 7, 8].contains(s.dataBits), [1, 2].contains(s.stopBits), s.baud > 0 else {
                throw ModbusError(.invalidRequest("unsupported line settings \(s.baud) \(s.dataBits)\(s.parity.rawValue)\(s.stopBits)"), device: name)
            }
            made = modbus_new_rtu(s.device, Int32(s.baud), s.parity.cChar, Int32(s.dataBits), Int32(s.stopBits))
        }
        guard let made else {
            throw ModbusError(currentErrorKind(), device: name)
        }
        ctx = made
        // Never use libmodbus's own link recovery: it misbehaves in 3.1.6.
        modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE)
        setResponseTimeout(responseTimeout)
    }

    deinit {
        if isConnected { modbus_close(ctx) }
        modbus_free(ctx)
    }

    func setResponseTimeout(_ d: Duration) {
        let (sec, usec) = d.secondsAndMicroseconds
        modbus_set_response_timeout(ctx, sec, usec)
        // Byte timeout: gap allowed inside one frame.
        let (bs, bu) = min(d, .milliseconds(500)).secondsAndMicroseconds
        modbus_set_byte_timeout(ctx, bs, bu)
    }

    func connect() throws(ModbusError) {
        if isConnected { return }
        // modbus_connect itself waits for a TCP connect with select(2), on the socket it has just opened: the
        // lowest free descriptor. At or above FD_SETSIZE, glibc aborts the whole process in FD_SET ("bit out of
        // range 0 - FD_SETSIZE on fd_set") before the check below can run, so look first.
        if case .tcp = endpoint {
            let lowest = lowestFreeDescriptor()
            if lowest >= libmodbusMaxDescriptor {
                throw ModbusError(.io(errno: EMFILE, "the next file descriptor would be \(lowest) ≥ FD_SETSIZE (\(libmodbusMaxDescriptor)): libmodbus uses select(2); this process holds too many open files to connect"),
                                  device: name)
            }
        }
        if modbus_connect(ctx) == -1 {
            let kind = currentErrorKind()
            throw ModbusError(kind, device: name)
        }
        // libmodbus waits with select(2): a descriptor at or above FD_SETSIZE would overflow its
        // fd_set and abort the process. Refuse it with a clear error instead.
        let fd = modbus_get_socket(ctx)
        if fd >= libmodbusMaxDescriptor {
            modbus_close(ctx)
            throw ModbusError(.io(errno: EMFILE, "file descriptor \(fd) ≥ FD_SETSIZE (\(libmodbusMaxDescriptor)): libmodbus uses select(2); use fewer connections (Modbus gateways) per process"),
                              device: name)
        }
        if case let .rtu(s) = endpoint, s.rs485 {
            if modbus_rtu_set_serial_mode(ctx, Int32(MODBUS_RTU_RS485)) == -1 {
                let kind = currentErrorKind()
                modbus_close(ctx)
                throw ModbusError(kind, device: name)
            }
        }
        isConnected = true
        currentUnit = -1
    }

    func close() {
        if isConnected { modbus_close(ctx) }
        isConnected = false
        currentUnit = -1
    }

    /// Discards any bytes waiting on the link (a late answer to a timed-out request).
    func flush() {
        if isConnected { _ = modbus_flush(ctx) }
    }

    private func select(unit: Int) {
        let u = Int32(unit)
        if u != currentUnit {
            modbus_set_slave(ctx, u)
            currentUnit = u
        }
    }

    private func fail(_ fc: FunctionCode, _ unit: Int, _ address: Int, _ count: Int) -> ModbusError {
        ModbusError(currentErrorKind(), device: name, unit: unit, function: fc, address: address, count: count)
    }

    func read(_ table: ModbusTable, unit: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        // Validate before allocating: a bad count must be an error, not a huge or negative array.
        try validateRead(table, unit: unit, address: address, count: count)
        var words = [UInt16](repeating: 0, count: count)
        try words.withUnsafeMutableBufferPointer { buf throws(ModbusError) in
            try readValidated(table, unit: unit, address: address, into: buf)
        }
        return words
    }

    /// Reads `words.count` registers (bit tables: one 0/1 word per bit) into `words`. Allocates nothing for a
    /// register table: a new `[UInt16]` costs about 700 instructions (malloc, and a generic-metadata lookup for its
    /// storage class on every allocation), as much as half of libmodbus's own work for the request (callgrind,
    /// Benchmarks/README.md).
    func read(_ table: ModbusTable, unit: Int, address: Int, into words: UnsafeMutableBufferPointer<UInt16>) throws(ModbusError) {
        try validateRead(table, unit: unit, address: address, count: words.count)
        try readValidated(table, unit: unit, address: address, into: words)
    }

    /// The most registers (125) or bits (2,000) one read of `table` may ask for.
    @inline(__always)
    static func readLimit(_ table: ModbusTable) -> Int {
        switch table {
        case .holding, .input: 125
        case .coil, .discrete: 2000
        }
    }

    @inline(__always)
    private func validateRead(_ table: ModbusTable, unit: Int, address: Int, count: Int) throws(ModbusError) {
        try validate(.read(table), unit: unit, address: address, count: count, limit: Self.readLimit(table))
    }

    private func readValidated(_ table: ModbusTable, unit: Int, address: Int, into words: UnsafeMutableBufferPointer<UInt16>) throws(ModbusError) {
        let count = words.count
        select(unit: unit)
        let result: Int32
        switch table {
        case .holding:
            result = modbus_read_registers(ctx, Int32(address), Int32(count), words.baseAddress)
        case .input:
            result = modbus_read_input_registers(ctx, Int32(address), Int32(count), words.baseAddress)
        case .coil, .discrete:
            result = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { bits in
                let r = table == .coil
                    ? modbus_read_bits(ctx, Int32(address), Int32(count), bits.baseAddress)
                    : modbus_read_input_bits(ctx, Int32(address), Int32(count), bits.baseAddress)
                if r == Int32(count) { for i in 0..<count { words[i] = bits[i] != 0 ? 1 : 0 } }
                return r
            }
        }
        if result == -1 { throw fail(.read(table), unit, address, count) }
        if result != Int32(count) {
            throw ModbusError(.invalidResponse("short response: \(result) of \(count)"), device: name, unit: unit, function: .read(table),
                              address: address, count: count)
        }
    }

    func writeRegisters(unit: Int, address: Int, values: [UInt16]) throws(ModbusError) {
        let fc: FunctionCode = values.count == 1 ? .writeSingleRegister : .writeMultipleRegisters
        try validate(fc, unit: unit, address: address, count: values.count, limit: 123)
        select(unit: unit)
        let r: Int32 = values.count == 1
            ? modbus_write_register(ctx, Int32(address), values[0])
            : values.withUnsafeBufferPointer { modbus_write_registers(ctx, Int32(address), Int32(values.count), $0.baseAddress) }
        if r == -1 { throw fail(fc, unit, address, values.count) }
    }

    /// FC23: writes `values` at `address` and, in the same transaction, reads the same registers
    /// back (the device performs the write first).
    func writeAndReadRegisters(unit: Int, address: Int, values: [UInt16]) throws(ModbusError) -> [UInt16] {
        let fc: FunctionCode = .writeAndReadRegisters
        try validate(fc, unit: unit, address: address, count: values.count, limit: 121)
        select(unit: unit)
        var back = [UInt16](repeating: 0, count: values.count)
        let r: Int32 = values.withUnsafeBufferPointer { src in
            back.withUnsafeMutableBufferPointer { dest in
                modbus_write_and_read_registers(ctx, Int32(address), Int32(values.count), src.baseAddress,
                                                Int32(address), Int32(values.count), dest.baseAddress)
            }
        }
        if r == -1 { throw fail(fc, unit, address, values.count) }
        if r != Int32(values.count) {
            throw ModbusError(.invalidResponse("short response: \(r) of \(values.count)"), device: name, unit: unit, function: fc,
                              address: address, count: values.count)
        }
        return back
    }

    func writeCoils(unit: Int, address: Int, values: [Bool]) throws(ModbusError) {
        let fc: FunctionCode = values.count == 1 ? .writeSingleCoil : .writeMultipleCoils
        try validate(fc, unit: unit, address: address, count: values.count, limit: 1968)
        select(unit: unit)
        let bytes = values.map { UInt8($0 ? 1 : 0) }
        let r: Int32 = values.count == 1
            ? modbus_write_bit(ctx, Int32(address), Int32(bytes[0]))
            : bytes.withUnsafeBufferPointer { modbus_write_bits(ctx, Int32(address), Int32(values.count), $0.baseAddress) }
        if r == -1 { throw fail(fc, unit, address, values.count) }
    }

    /// The common case (a valid request) is one inlined range test; the message is built only for a bad one.
    @inline(__always)
    private func validate(_ fc: FunctionCode, unit: Int, address: Int, count: Int, limit: Int) throws(ModbusError) {
        if count >= 1 && count <= limit && address >= 0 && address + count <= 65536 && unit >= 0 && unit <= 255 { return }
        throw invalid(fc, unit: unit, address: address, count: count, limit: limit)
    }

    @inline(never)
    private func invalid(_ fc: FunctionCode, unit: Int, address: Int, count: Int, limit: Int) -> ModbusError {
        let problem =
            count < 1 ? "count must be at least 1"
            : count > limit ? "count \(count) exceeds the Modbus limit of \(limit) for \(fc)"
            : address < 0 || address > 65535 ? "address \(address) is outside 0…65535"
            : address + count > 65536 ? "range \(address)+\(count) runs past register 65535"
            : "unit id \(unit) is outside 0…255"
        return ModbusError(.invalidRequest(problem), device: name, unit: unit, function: fc, address: address, count: count)
    }
}

@available(*, unavailable)
extension ModbusContext: Sendable {}

extension Duration {
    var secondsAndMicroseconds: (UInt32, UInt32) {
        let (s, atto) = components
        let clampedS = max(0, min(Int64(UInt32.max), s))
        return (UInt32(clampedS), UInt32(max(0, atto / 1_000_000_000_000)))
    }

    var milliseconds: Int {
        let (s, atto) = components
        return Int(s) * 1000 + Int(atto / 1_000_000_000_000_000)
    }
}
