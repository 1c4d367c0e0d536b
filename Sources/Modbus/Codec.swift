// Register codecs: how a value is laid out in 16-bit Modbus registers.
//
// Floats are decoded here, in Swift, from the raw words. libmodbus 3.1.6's
// modbus_get_float_* helpers are mislabelled on little-endian hosts, so they
// are never used.

/// The four Modbus register tables.
public enum ModbusTable: String, Sendable, CaseIterable, Codable {
    case holding, input, coil, discrete

    /// Coils and discrete inputs are bits; holding and input registers are words.
    public var isBitTable: Bool { self == .coil || self == .discrete }
    public var isWritable: Bool { self == .holding || self == .coil }
}

/// The value types a point may have.
public enum RegisterType: String, Sendable, CaseIterable, Codable {
    case uint16, int16, uint32, int32, uint64, int64, float32, float64
    /// A 16-bit register whose bits are read individually (alarm words).
    case bitfield16
    /// A coil or discrete input.
    case bool

    /// How many 16-bit registers one value occupies (1 for a bit).
    public var registerCount: Int {
        switch self {
        case .uint16, .int16, .bitfield16, .bool: 1
        case .uint32, .int32, .float32: 2
        case .uint64, .int64, .float64: 4
        }
    }
}

/// Byte order within the value, written as the order of bytes A (most
/// significant) … D (or H for 64-bit values) on the wire.
///
/// - `ABCD`: big-endian words, most significant word first (Modbus default).
/// - `CDAB`: big-endian words, least significant word first ("word swap").
/// - `BADC`: bytes swapped inside each word, most significant word first.
/// - `DCBA`: fully little-endian.
///
/// For 64-bit values the same rule extends to four words: `CDAB` reverses the
/// word order, `BADC` swaps bytes within words, `DCBA` does both.
public enum WordOrder: String, Sendable, CaseIterable, Codable {
    case ABCD, CDAB, BADC, DCBA

    @usableFromInline var swapsWords: Bool { self == .CDAB || self == .DCBA }
    @usableFromInline var swapsBytes: Bool { self == .BADC || self == .DCBA }
}

/// Sentinels meaning "not implemented" or "not available", as SunSpec and
/// many vendors use them.
public enum NotImplemented {
    public static let uint16: UInt16 = 0xFFFF
    public static let int16: Int16 = Int16(bitPattern: 0x8000)
    public static let uint32: UInt32 = 0xFFFF_FFFF
    public static let int32: Int32 = Int32(bitPattern: 0x8000_0000)
    public static let uint64: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
    public static let int64: Int64 = Int64(bitPattern: 0x8000_0000_0000_0000)
    /// SunSpec's accumulator "not accumulated" value.
    public static let acc32: UInt32 = 0
}

/// A decoded raw value, before scaling.
public enum RawValue: Sendable, Equatable {
    case unsigned(UInt64)
    case signed(Int64)
    case float(Double)
    case bits(UInt16)
    case bool(Bool)

    /// The value as a Double, for scaling and display.
    public var doubleValue: Double {
        switch self {
        case .unsigned(let v): Double(v)
        case .signed(let v): Double(v)
        case .float(let v): v
        case .bits(let v): Double(v)
        case .bool(let v): v ? 1 : 0
        }
    }
}

public enum CodecError: Error, Equatable, CustomStringConvertible {
    case wrongRegisterCount(type: RegisterType, expected: Int, got: Int)
    case notRepresentable(type: RegisterType, value: Double)

    public var description: String {
        switch self {
        case let .wrongRegisterCount(type, expected, got):
            "\(type.rawValue) needs \(expected) registers, got \(got)"
        case let .notRepresentable(type, value):
            "\(value) cannot be represented as \(type.rawValue)"
        }
    }
}

public enum RegisterCodec {
    /// The value of a multi-register field: its words put in canonical big-endian (ABCD) order,
    /// most significant word first, and joined. The inverse of `wireWord`.
    @inline(__always)
    static func canonicalBits(_ words: ArraySlice<UInt16>, order: WordOrder) -> UInt64 {
        let n = words.count
        var v: UInt64 = 0
        for i in 0..<n {
            var w = words[words.startIndex + (order.swapsWords ? n - 1 - i : i)]
            if order.swapsBytes { w = w.byteSwapped }
            v = (v << 16) | UInt64(w)
        }
        return v
    }

    /// Decodes `type` from `registers` (exactly `type.registerCount` words).
    public static func decode(_ registers: ArraySlice<UInt16>, as type: RegisterType, order: WordOrder = .ABCD) throws(CodecError) -> RawValue {
        guard registers.count == type.registerCount else {
            throw .wrongRegisterCount(type: type, expected: type.registerCount, got: registers.count)
        }
        let bits = canonicalBits(registers, order: order)
        switch type {
        case .uint16, .uint32, .uint64: return .unsigned(bits)
        case .int16: return .signed(Int64(Int16(bitPattern: UInt16(truncatingIfNeeded: bits))))
        case .int32: return .signed(Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: bits))))
        case .int64: return .signed(Int64(bitPattern: bits))
        case .float32: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits))))
        case .float64: return .float(Double(bitPattern: bits))
        case .bitfield16: return .bits(UInt16(truncatingIfNeeded: bits))
        case .bool: return .bool(bits != 0)
        }
    }

    public static func decode(_ registers: [UInt16], as type: RegisterType, order: WordOrder = .ABCD) throws(CodecError) -> RawValue {
        try decode(registers[...], as: type, order: order)
    }

    /// Encodes an engineering-free raw number into wire registers.
    /// Integers are rounded to nearest and must fit the type.
    public static func encode(_ value: Double, as type: RegisterType, order: WordOrder = .ABCD) throws(CodecError) -> [UInt16] {
        let bits = try bits(of: value, as: type)
        let n = type.registerCount
        return (0..<n).map { wireWord(bits, $0, of: n, type: type, order: order) }
    }

    /// The same, written into `out` where `out[k]` is register `base + k`; registers outside `out` are skipped.
    public static func encode(_ value: Double, as type: RegisterType, order: WordOrder, at address: Int,
                              into out: inout [UInt16], base: Int) throws(CodecError) {
        let bits = try bits(of: value, as: type)
        let n = type.registerCount
        for j in 0..<n where address + j >= base && address + j < base + out.count {
            out[address + j - base] = wireWord(bits, j, of: n, type: type, order: order)
        }
    }

    /// Wire register `j` of `n` holding `bits` (big-endian words, then the device's order; a bit has no order).
    @inline(__always)
    static func wireWord(_ bits: UInt64, _ j: Int, of n: Int, type: RegisterType, order: WordOrder) -> UInt16 {
        if type == .bool { return UInt16(truncatingIfNeeded: bits) }
        let i = order.swapsWords ? n - 1 - j : j
        let w = UInt16(truncatingIfNeeded: bits >> (16 * UInt64(n - 1 - i)))
        return order.swapsBytes ? w.byteSwapped : w
    }

    /// The value's bits, right-aligned in the type's width.
    static func bits(of value: Double, as type: RegisterType) throws(CodecError) -> UInt64 {
        let bits: UInt64
        switch type {
        case .float32:
            guard value.isNaN || value.isInfinite || abs(value) <= Double(Float.greatestFiniteMagnitude) else {
                throw .notRepresentable(type: type, value: value)
            }
            bits = UInt64(Float(value).bitPattern)
        case .float64:
            bits = value.bitPattern
        case .bool:
            bits = value != 0 ? 1 : 0
        default:
            let r = value.rounded()
            guard r.isFinite else { throw .notRepresentable(type: type, value: value) }
            switch type {
            case .uint16, .bitfield16:
                guard let v = UInt16(exactly: r) else { throw .notRepresentable(type: type, value: value) }
                bits = UInt64(v)
            case .int16:
                guard let v = Int16(exactly: r) else { throw .notRepresentable(type: type, value: value) }
                bits = UInt64(UInt16(bitPattern: v))
            case .uint32:
                guard let v = UInt32(exactly: r) else { throw .notRepresentable(type: type, value: value) }
                bits = UInt64(v)
            case .int32:
                guard let v = Int32(exactly: r) else { throw .notRepresentable(type: type, value: value) }
                bits = UInt64(UInt32(bitPattern: v))
            case .uint64:
                guard r >= 0, r < 18_446_744_073_709_551_616.0, let v = UInt64(exactly: r) else {
                    throw .notRepresentable(type: type, value: value)
                }
                bits = v
            case .int64:
                guard r >= -9_223_372_036_854_775_808.0, r < 9_223_372_036_854_775_808.0, let v = Int64(exactly: r) else {
                    throw .notRepresentable(type: type, value: value)
                }
                bits = UInt64(bitPattern: v)
            default: preconditionFailure("unreachable: float and bool handled above")
            }
        }
        return bits
    }

    /// True when `raw` is the type's "not implemented" sentinel.
    public static func isNotImplemented(_ raw: RawValue, type: RegisterType) -> Bool {
        switch (type, raw) {
        case (.uint16, .unsigned(let v)): v == UInt64(NotImplemented.uint16)
        case (.int16, .signed(let v)): v == Int64(NotImplemented.int16)
        case (.uint32, .unsigned(let v)): v == UInt64(NotImplemented.uint32)
        case (.int32, .signed(let v)): v == Int64(NotImplemented.int32)
        case (.uint64, .unsigned(let v)): v == NotImplemented.uint64
        case (.int64, .signed(let v)): v == NotImplemented.int64
        case (.float32, .float(let v)), (.float64, .float(let v)): v.isNaN
        default: false
        }
    }
}

/// How a raw value becomes an engineering value.
public enum Scaling: Sendable, Equatable {
    case none
    /// value × factor
    case factor(Double)
    /// value × 10^sf, where sf is read from a SunSpec-style scale-factor register.
    case sunSpecFactor(Int16)

    public func apply(_ raw: Double) -> Double {
        switch self {
        case .none: raw
        case .factor(let f): raw * f
        case .sunSpecFactor(let sf): raw * pow10(Int(sf))
        }
    }

    public func unapply(_ engineering: Double) -> Double {
        switch self {
        case .none: engineering
        case .factor(let f): engineering / f
        case .sunSpecFactor(let sf): engineering / pow10(Int(sf))
        }
    }
}

/// 10^n for integer n, exact for the small exponents Modbus devices use.
@inlinable
public func pow10(_ n: Int) -> Double {
    var r = 1.0
    if n >= 0 { for _ in 0..<n { r *= 10 } } else { for _ in 0..<(-n) { r /= 10 } }
    return r
}

/// A SunSpec scale-factor register value: int16 in -10...10, 0x8000 if not implemented.
public func validSunSpecScaleFactor(_ register: UInt16) -> Int16? {
    let sf = Int16(bitPattern: register)
    guard sf != NotImplemented.int16, (-10...10).contains(sf) else { return nil }
    return sf
}
