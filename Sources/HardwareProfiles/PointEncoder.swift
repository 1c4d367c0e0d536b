// From engineering values to registers: the inverse of PointDecoder, used by the
// actuators (setpoints) and the simulator (measurements).

import Modbus

public enum PointEncodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case outOfLimits(point: String, value: Double, min: Double?, max: Double?)
    case notRepresentable(point: String, value: Double, type: RegisterType)

    public var description: String {
        switch self {
        case let .outOfLimits(p, v, lo, hi):
            "\(p): \(v) is outside its limits \(lo.map { "\($0)" } ?? "-∞")…\(hi.map { "\($0)" } ?? "+∞")"
        case let .notRepresentable(p, v, t):
            "\(p): \(v) cannot be written as \(t.rawValue)"
        }
    }
}

public enum PointEncoder {
    /// Encodes an engineering value (or enum code) for `point`.
    /// - Parameters:
    ///   - scaleFactor: the SunSpec scale factor in force, for points that have one.
    ///   - enforceLimits: check the profile's min/max (always true for writes to hardware).
    public static func encode(_ value: Double, for point: ResolvedPoint, scaleFactor: Int16? = nil,
                              enforceLimits: Bool = true) throws(PointEncodeError) -> [UInt16] {
        let def = point.definition
        if enforceLimits {
            if let lo = def.min, value < lo { throw .outOfLimits(point: def.name, value: value, min: def.min, max: def.max) }
            if let hi = def.max, value > hi { throw .outOfLimits(point: def.name, value: value, min: def.min, max: def.max) }
        }
        do {
            return try Encoding(point).encode(value, scaleFactor: scaleFactor)
        } catch {
            throw .notRepresentable(point: def.name, value: value, type: point.type)
        }
    }

    /// How a point's value becomes registers, without the point's name and limits: small and
    /// free of reference counting, for paths that encode many points many times (the simulator).
    public struct Encoding: Sendable, Equatable {
        public var scale: Double
        public var hasScaleFactor: Bool
        public var type: RegisterType
        public var order: WordOrder

        public init(_ point: ResolvedPoint) {
            scale = point.definition.scale ?? 1
            hasScaleFactor = point.scaleFactorAddress != nil
            type = point.type
            order = point.order
        }

        /// The registers of `value` (no limit check).
        public func encode(_ value: Double, scaleFactor: Int16? = nil) throws(CodecError) -> [UInt16] {
            try RegisterCodec.encode(raw(value, scaleFactor: scaleFactor), as: type, order: order)
        }

        /// The same, written into `out` (register `base + k` at `out[k]`) for a point at `address`.
        public func encode(_ value: Double, at address: Int, into out: inout [UInt16], base: Int) throws(CodecError) {
            try RegisterCodec.encode(raw(value, scaleFactor: nil), as: type, order: order, at: address, into: &out, base: base)
        }

        func raw(_ value: Double, scaleFactor: Int16?) -> Double {
            var raw = value
            if scale != 0 && scale != 1 { raw = raw / scale }
            if hasScaleFactor, let sf = scaleFactor { raw = raw / pow10(Int(sf)) }
            if type != .float32 && type != .float64 { raw = raw.rounded() }
            return raw
        }
    }
}
