// `switchyard probe --json`, built with Codable: one object, point name → value in engineering
// units, keys sorted (JSONEncoder keeps no insertion order; before Codable the keys came in the
// profile's point order). Numbers keep the tidy float32 form of `PointValue.format`
// (230.1, not 230.10000610351562): the encoder is given the Double that form spells, whose shortest
// description is that form again.

import Foundation

/// One point's value: a number, a state label (or its code when the enum does not list it), a
/// boolean, null (not implemented, or not finite), or `{"error": "…"}`.
public enum ProbeJSONValue: Encodable, Equatable, Sendable {
    case number(Double)
    case label(String)
    case code(Int)
    case bool(Bool)
    case null
    case error(String)

    public init(_ outcome: PointOutcome) {
        switch outcome {
        case .value(.number(let d)): self = d.isFinite ? .number(Double(PointValue.format(d)) ?? d) : .null
        case .value(.state(let code, let label)): self = label.map(ProbeJSONValue.label) ?? .code(code)
        case .value(.bool(let b)): self = .bool(b)
        case .missing: self = .null
        case .failed(let message): self = .error(message)
        }
    }

    private enum ErrorKey: String, CodingKey { case error }

    public func encode(to encoder: any Encoder) throws {
        if case .error(let message) = self {
            var c = encoder.container(keyedBy: ErrorKey.self)
            try c.encode(message, forKey: .error)
            return
        }
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let d): try c.encode(d)
        case .label(let s): try c.encode(s)
        case .code(let n): try c.encode(n)
        case .bool(let b): try c.encode(b)
        case .null, .error: try c.encodeNil()
        }
    }
}

/// The `probe --json` object.
public struct ProbeJSON: Encodable, Sendable {
    public var points: [(name: String, value: ProbeJSONValue)]

    public init(_ result: ProbeResult) { self.init(outcomes: result.readings.map { ($0.name, $0.outcome) }) }

    public init(outcomes: [(name: String, outcome: PointOutcome)]) {
        points = outcomes.map { ($0.name, ProbeJSONValue($0.outcome)) }
    }

    private struct Name: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Name.self)
        for (name, value) in points { try c.encode(value, forKey: Name(stringValue: name)) }
    }

    /// The one-line JSON text.
    public func text() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
