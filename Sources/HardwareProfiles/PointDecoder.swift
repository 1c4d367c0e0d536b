// From profile points to addresses, read spans and engineering values.

import Foundation
import Modbus

/// A point with a concrete address: fixed, or found by SunSpec discovery.
public struct ResolvedPoint: Sendable, Equatable {
    public var definition: PointDefinition
    public var table: ModbusTable
    public var address: Int
    public var type: RegisterType
    public var order: WordOrder
    /// Address (same table) of an int16 power-of-ten scale factor.
    public var scaleFactorAddress: Int?
    /// SunSpec accumulators: 0 means "not accumulated".
    public var zeroIsMissing: Bool
    /// Set when the point cannot be read at all on this device (e.g. its model is absent).
    public var unavailable: String?

    public init(definition: PointDefinition, table: ModbusTable, address: Int, type: RegisterType, order: WordOrder,
                scaleFactorAddress: Int? = nil, zeroIsMissing: Bool = false, unavailable: String? = nil) {
        self.definition = definition
        self.table = table
        self.address = address
        self.type = type
        self.order = order
        self.scaleFactorAddress = scaleFactorAddress
        self.zeroIsMissing = zeroIsMissing
        self.unavailable = unavailable
    }

    public var name: String { definition.name }
    public var span: ReadSpan { ReadSpan(table: table, address: address, count: type.registerCount) }
}

/// A value after decoding and scaling.
public enum PointValue: Sendable, Equatable {
    case number(Double)
    /// A state code and its label from the profile's enum (nil when the code is not listed).
    case state(code: Int, label: String?)
    case bool(Bool)
}

/// What reading one point gave.
public enum PointOutcome: Sendable, Equatable {
    case value(PointValue)
    /// The device says the point is not implemented (a sentinel), so there is no value.
    case missing(String)
    /// The read or decode failed.
    case failed(String)
}

public struct ResolveError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension DeviceProfile {
    /// Gives every point an address. SunSpec points need `discovery`.
    public func resolvedPoints(discovery: SunSpecDiscoveryResult? = nil) throws(ResolveError) -> [ResolvedPoint] {
        var out: [ResolvedPoint] = []
        for p in points {
            switch p.location {
            case .register(let table, let address):
                var sfAddress: Int?
                if let sr = p.scaleRegister {
                    guard let target = point(named: sr), case .register(let t2, let a2) = target.location, t2 == table else {
                        throw ResolveError(message: "point '\(p.name)': scale_register '\(sr)' must be a register of the same table")
                    }
                    sfAddress = a2
                }
                out.append(ResolvedPoint(definition: p, table: table, address: address, type: p.type,
                                         order: p.order ?? transport.wordOrder, scaleFactorAddress: sfAddress,
                                         zeroIsMissing: false, unavailable: nil))
            case .sunSpec(let modelID, let pointName):
                guard let discovery else {
                    throw ResolveError(message: "point '\(p.name)' is a SunSpec point; run discovery first")
                }
                guard let model = sunSpecModels[modelID], let mp = model.point(named: pointName) else {
                    throw ResolveError(message: "point '\(p.name)': SunSpec \(modelID).\(pointName) is not in the model library")
                }
                var rp = ResolvedPoint(definition: p, table: .holding, address: 0, type: p.type, order: p.order ?? .ABCD,
                                       scaleFactorAddress: nil, zeroIsMissing: mp.type.isAccumulator, unavailable: nil)
                if let instance = discovery.first(modelID) {
                    rp.address = instance.address + mp.offset
                    if mp.offset + mp.size > instance.length + 2 {
                        rp.unavailable = "SunSpec model \(modelID) on this device has length \(instance.length), too short for \(pointName) at offset \(mp.offset)"
                    }
                    if let sf = mp.sf, let sfp = model.point(named: sf) {
                        rp.scaleFactorAddress = instance.address + sfp.offset
                        if sfp.offset + 1 > instance.length + 2 { rp.unavailable = rp.unavailable ?? "scale factor \(sf) lies beyond model \(modelID)'s length" }
                    }
                } else {
                    let ids = discovery.models.map { String($0.id) }.joined(separator: ", ")
                    rp.unavailable = "SunSpec model \(modelID) not found on the device (it has \(ids))"
                }
                out.append(rp)
            }
        }
        return out
    }
}

/// The spans and requests that read a set of points and their scale factors.
public struct PointReadPlan: Sendable {
    public var points: [ResolvedPoint]
    /// Distinct spans: every readable point's span, then scale-factor registers.
    public var spans: [ReadSpan]
    /// For each point, its index in `spans` (nil when the point is unavailable).
    public var pointSpan: [Int?]
    /// For each point, the index of its scale-factor span.
    public var scaleSpan: [Int?]
    public var requests: [ReadRequest]

    public init(points: [ResolvedPoint], limits: ReadLimits) throws(ReadPlanError) {
        self.points = points
        var spans: [ReadSpan] = []
        var index: [ReadSpan: Int] = [:]
        func add(_ s: ReadSpan) -> Int {
            if let i = index[s] { return i }
            spans.append(s)
            index[s] = spans.count - 1
            return spans.count - 1
        }
        pointSpan = points.map { $0.unavailable == nil ? add($0.span) : nil }
        scaleSpan = points.map { p in
            guard p.unavailable == nil, let a = p.scaleFactorAddress else { return nil }
            return add(ReadSpan(table: p.table, address: a, count: 1))
        }
        self.spans = spans
        requests = try ReadPlanner.plan(spans, limits: limits)
    }
}

public enum PointDecoder {
    /// Decodes one point from its words and, if it has one, its scale-factor register.
    public static func decode(_ point: ResolvedPoint, words: [UInt16], scaleFactor: UInt16? = nil) -> PointOutcome {
        decode(point, words: words[...], scaleFactor: scaleFactor)
    }

    /// The same, for a slice of a larger response.
    public static func decode(_ point: ResolvedPoint, words: ArraySlice<UInt16>, scaleFactor: UInt16? = nil) -> PointOutcome {
        decode([point], 0, words: words, scaleFactor: scaleFactor)
    }

    /// Decodes `points[index]`. The poller's hot path: the point's fields are read in place, where
    /// passing the point itself would copy it (and retain every field) on each call.
    public static func decode(_ points: [ResolvedPoint], _ index: Int, words: ArraySlice<UInt16>, scaleFactor: UInt16? = nil) -> PointOutcome {
        let raw: RawValue
        do {
            raw = try RegisterCodec.decode(words, as: points[index].type, order: points[index].order)
        } catch {
            return .failed("cannot decode: \(error)")
        }
        if points[index].definition.notImplementedIsMissing && isNotImplemented(raw, type: points[index].type) {
            return .missing("not implemented (\(hex(Array(words))))")
        }
        if points[index].zeroIsMissing && raw.doubleValue == 0 {
            return .missing("not accumulated (0)")
        }
        if !points[index].definition.enumLabels.isEmpty {
            let code: Int
            switch raw {
            case .unsigned(let v): code = Int(clamping: v)
            case .signed(let v): code = Int(v)
            case .bits(let v): code = Int(v)
            case .bool(let b): code = b ? 1 : 0
            case .float(let v): code = Int(v)
            }
            return .value(.state(code: code, label: points[index].definition.enumLabels[code]))
        }
        if case .bool(let b) = raw { return .value(.bool(b)) }

        var value = raw.doubleValue
        if case .float(let f) = raw, points[index].type == .float32, f.isFinite {
            // A float32 carries ~7 digits; print the value the device meant (230.1, not 230.10000610351562).
            value = shortestDecimal(Float(f))
        }
        if points[index].scaleFactorAddress != nil {
            guard let word = scaleFactor else { return .failed("scale factor was not read") }
            guard let sf = validSunSpecScaleFactor(word) else {
                return .missing("scale factor not implemented or out of range (\(hex([word])))")
            }
            value = applyPowerOfTen(value, Int(sf))
        }
        if let scale = points[index].definition.scale { value = applyScale(value, scale) }
        return .value(.number(value))
    }

    /// The double nearest the shortest decimal that reads back as the same float32: the number
    /// `"\(f)"` prints, found without formatting and parsing text (this runs for every float read).
    static func shortestDecimal(_ f: Float) -> Double {
        let x = Double(f)
        guard x != 0, x.isFinite else { return x }
        let magnitude = Int(log10(abs(x)).rounded(.down))
        for digits in 1...9 {
            let e = digits - 1 - magnitude  // N = x × 10^e, rounded, has `digits` digits
            guard abs(e) <= 22 else { break }  // 10^e exact: N ÷ 10^e is then correctly rounded
            let candidate = e >= 0 ? (x * pow10(e)).rounded(.toNearestOrEven) / pow10(e) : (x / pow10(-e)).rounded(.toNearestOrEven) * pow10(-e)
            if Float(candidate) == f { return candidate }
        }
        return Double("\(f)") ?? x
    }

    /// The SunSpec-style sentinels: 0xFFFF, 0x8000, 0xFFFFFFFF, 0x80000000, NaN; also 0xFFFF in a bitfield.
    public static func isNotImplemented(_ raw: RawValue, type: RegisterType) -> Bool {
        if type == .bitfield16, case .bits(let v) = raw { return v == 0xFFFF }
        return RegisterCodec.isNotImplemented(raw, type: type)
    }

    /// v × 10^n, dividing for negative n so 2301 × 10^-1 is exactly 230.1.
    static func applyPowerOfTen(_ v: Double, _ n: Int) -> Double {
        n >= 0 ? v * pow10(n) : v / pow10(-n)
    }

    /// v × scale, dividing by the reciprocal when the scale is 1/k (0.1, 0.001 …) for exact decimals.
    static func applyScale(_ v: Double, _ scale: Double) -> Double {
        let reciprocal = 1 / scale
        if abs(scale) < 1, abs(reciprocal - reciprocal.rounded()) < 1e-9 { return v / reciprocal.rounded() }
        return v * scale
    }

    static func hex(_ words: [UInt16]) -> String { SunSpecDiscovery.hex(words) }
}

extension PointValue {
    /// The value as text: numbers with up to 12 significant digits, states by label.
    public var text: String {
        switch self {
        case .number(let v): PointValue.format(v)
        case .state(let code, let label): label ?? "unknown(\(code))"
        case .bool(let b): b ? "true" : "false"
        }
    }

    /// Formats a number for people and JSON: integers without a fraction, others with ≤ 12 significant digits.
    public static func format(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "Infinity" : "-Infinity") }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        let s = String(format: "%.12g", v)
        // %g may give exponent notation; Double's description is JSON-compatible for those.
        if s.contains("e") { return "\(Double(s) ?? v)" }
        return s
    }
}
