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
        var raw = value
        if let scale = def.scale, scale != 0 { raw = raw / scale }
        if point.scaleFactorAddress != nil, let sf = scaleFactor { raw = raw / pow10(Int(sf)) }
        if point.type != .float32 && point.type != .float64 { raw = raw.rounded() }
        do {
            return try RegisterCodec.encode(raw, as: point.type, order: point.order)
        } catch {
            throw .notRepresentable(point: def.name, value: value, type: point.type)
        }
    }
}
