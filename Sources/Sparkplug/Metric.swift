// Typed Sparkplug metrics and payloads over the generated protobuf types.

import Foundation
import SwiftProtobuf

typealias PBPayload = Org_Eclipse_Tahu_Protobuf_Payload
typealias PBMetric = Org_Eclipse_Tahu_Protobuf_Payload.Metric

/// The Sparkplug B datatype codes (Metric.datatype).
public enum SparkplugDataType: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case unknown = 0
    case int8 = 1, int16 = 2, int32 = 3, int64 = 4
    case uint8 = 5, uint16 = 6, uint32 = 7, uint64 = 8
    case float = 9, double = 10, boolean = 11, string = 12, dateTime = 13, text = 14, uuid = 15
    case dataSet = 16, bytes = 17, file = 18, template = 19, propertySet = 20, propertySetList = 21

    public var description: String {
        switch self {
        case .unknown: "Unknown"
        case .int8: "Int8"
        case .int16: "Int16"
        case .int32: "Int32"
        case .int64: "Int64"
        case .uint8: "UInt8"
        case .uint16: "UInt16"
        case .uint32: "UInt32"
        case .uint64: "UInt64"
        case .float: "Float"
        case .double: "Double"
        case .boolean: "Boolean"
        case .string: "String"
        case .dateTime: "DateTime"
        case .text: "Text"
        case .uuid: "UUID"
        case .dataSet: "DataSet"
        case .bytes: "Bytes"
        case .file: "File"
        case .template: "Template"
        case .propertySet: "PropertySet"
        case .propertySetList: "PropertySetList"
        }
    }
}

/// A metric value with its Sparkplug datatype. Narrow integers go in int_value (uint32), signed
/// ones sign-extended to 32 bits; 64-bit ones and DateTime (ms since the epoch) in long_value.
public enum MetricValue: Sendable, Hashable {
    case int8(Int8), int16(Int16), int32(Int32), int64(Int64)
    case uint8(UInt8), uint16(UInt16), uint32(UInt32), uint64(UInt64)
    case float(Float), double(Double), boolean(Bool), string(String), text(String)
    case dateTime(millisecondsSinceEpoch: UInt64)
    case bytes([UInt8])

    public var dataType: SparkplugDataType {
        switch self {
        case .int8: .int8
        case .int16: .int16
        case .int32: .int32
        case .int64: .int64
        case .uint8: .uint8
        case .uint16: .uint16
        case .uint32: .uint32
        case .uint64: .uint64
        case .float: .float
        case .double: .double
        case .boolean: .boolean
        case .string: .string
        case .text: .text
        case .dateTime: .dateTime
        case .bytes: .bytes
        }
    }

    var protobuf: PBMetric.OneOf_Value {
        switch self {
        case .int8(let v): .intValue(UInt32(bitPattern: Int32(v)))
        case .int16(let v): .intValue(UInt32(bitPattern: Int32(v)))
        case .int32(let v): .intValue(UInt32(bitPattern: v))
        case .int64(let v): .longValue(UInt64(bitPattern: v))
        case .uint8(let v): .intValue(UInt32(v))
        case .uint16(let v): .intValue(UInt32(v))
        case .uint32(let v): .intValue(v)
        case .uint64(let v): .longValue(v)
        case .float(let v): .floatValue(v)
        case .double(let v): .doubleValue(v)
        case .boolean(let v): .booleanValue(v)
        case .string(let v), .text(let v): .stringValue(v)
        case .dateTime(let ms): .longValue(ms)
        case .bytes(let b): .bytesValue(Data(b))
        }
    }

    /// Reads a protobuf value as `type`; nil when the value field does not fit the datatype.
    /// Narrow signed integers are accepted sign-extended to 32 bits or in their own width.
    static func decode(_ value: PBMetric.OneOf_Value?, as type: SparkplugDataType) -> MetricValue? {
        switch (type, value) {
        case (.int8, .intValue(let v)?):
            if let x = Int8(exactly: Int32(bitPattern: v)) { return .int8(x) }
            return v <= 0xFF ? .int8(Int8(truncatingIfNeeded: v)) : nil
        case (.int16, .intValue(let v)?):
            if let x = Int16(exactly: Int32(bitPattern: v)) { return .int16(x) }
            return v <= 0xFFFF ? .int16(Int16(truncatingIfNeeded: v)) : nil
        case (.int32, .intValue(let v)?): return .int32(Int32(bitPattern: v))
        case (.int64, .longValue(let v)?): return .int64(Int64(bitPattern: v))
        case (.uint8, .intValue(let v)?): return UInt8(exactly: v).map { .uint8($0) }
        case (.uint16, .intValue(let v)?): return UInt16(exactly: v).map { .uint16($0) }
        case (.uint32, .intValue(let v)?): return .uint32(v)
        case (.uint64, .longValue(let v)?): return .uint64(v)
        case (.float, .floatValue(let v)?): return .float(v)
        case (.double, .doubleValue(let v)?): return .double(v)
        case (.boolean, .booleanValue(let v)?): return .boolean(v)
        case (.string, .stringValue(let v)?): return .string(v)
        case (.text, .stringValue(let v)?): return .text(v)
        case (.dateTime, .longValue(let v)?): return .dateTime(millisecondsSinceEpoch: v)
        case (.bytes, .bytesValue(let v)?): return .bytes([UInt8](v))
        default: return nil
        }
    }
}

/// One metric: a name (or an alias), a timestamp (ms since the epoch), a typed value or null.
public struct SparkplugMetric: Sendable, Hashable {
    public var name: String?
    public var alias: UInt64?
    public var timestamp: UInt64?
    public var dataType: SparkplugDataType
    /// nil with `dataType` set is a null value (is_null).
    public var value: MetricValue?
    public var isHistorical: Bool
    public var isTransient: Bool

    public init(name: String?, alias: UInt64? = nil, timestamp: UInt64? = nil, value: MetricValue,
                isHistorical: Bool = false, isTransient: Bool = false) {
        self.name = name
        self.alias = alias
        self.timestamp = timestamp
        self.dataType = value.dataType
        self.value = value
        self.isHistorical = isHistorical
        self.isTransient = isTransient
    }

    /// A null metric of `dataType`.
    public init(name: String?, alias: UInt64? = nil, timestamp: UInt64? = nil, null dataType: SparkplugDataType,
                isHistorical: Bool = false) {
        self.name = name
        self.alias = alias
        self.timestamp = timestamp
        self.dataType = dataType
        self.value = nil
        self.isHistorical = isHistorical
        self.isTransient = false
    }

    var protobuf: PBMetric {
        var m = PBMetric()
        if let name { m.name = name }
        if let alias { m.alias = alias }
        if let timestamp { m.timestamp = timestamp }
        m.datatype = dataType.rawValue
        if isHistorical { m.isHistorical = true }
        if isTransient { m.isTransient = true }
        if let value { m.value = value.protobuf } else { m.isNull = true }
        return m
    }
}

/// Why a received payload or metric cannot be used.
public enum SparkplugDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    case notProtobuf(String)
    case missingTimestamp
    case missingSeq
    case metricWithoutName(index: Int)
    case unknownDataType(metric: String, code: UInt32)
    case valueDoesNotMatchDataType(metric: String, dataType: SparkplugDataType)

    public var description: String {
        switch self {
        case .notProtobuf(let why): "not a Sparkplug B payload: \(why)"
        case .missingTimestamp: "payload has no timestamp"
        case .missingSeq: "payload has no seq"
        case .metricWithoutName(let i): "metric \(i) has neither a name nor an alias"
        case let .unknownDataType(metric, code): "metric '\(metric)': unknown datatype \(code)"
        case let .valueDoesNotMatchDataType(metric, type): "metric '\(metric)': value does not fit datatype \(type)"
        }
    }
}

extension SparkplugMetric {
    /// Decodes one protobuf metric; the datatype must be known and the value must fit it.
    /// A metric without a datatype (allowed in DATA and CMD messages) takes the one `knownType` gives for its name.
    init(_ m: PBMetric, index: Int, knownType: (String) -> SparkplugDataType?) throws(SparkplugDecodeError) {
        let label = m.hasName ? m.name : (m.hasAlias ? "alias \(m.alias)" : "#\(index)")
        guard m.hasName || m.hasAlias else { throw .metricWithoutName(index: index) }
        var code = m.datatype
        if !m.hasDatatype || code == 0, m.hasName, let known = knownType(m.name) { code = known.rawValue }
        guard let type = SparkplugDataType(rawValue: code), type != .unknown else {
            throw .unknownDataType(metric: label, code: code)
        }
        name = m.hasName ? m.name : nil
        alias = m.hasAlias ? m.alias : nil
        timestamp = m.hasTimestamp ? m.timestamp : nil
        dataType = type
        isHistorical = m.isHistorical
        isTransient = m.isTransient
        if m.isNull {
            value = nil
        } else {
            guard let v = MetricValue.decode(m.value, as: type) else { throw .valueDoesNotMatchDataType(metric: label, dataType: type) }
            value = v
        }
    }
}

/// A Sparkplug B payload: timestamp (ms since the epoch), seq (absent in NDEATH), metrics.
public struct SparkplugPayload: Sendable, Hashable {
    public var timestamp: UInt64?
    public var seq: UInt8?
    public var metrics: [SparkplugMetric]

    public init(timestamp: UInt64?, seq: UInt8?, metrics: [SparkplugMetric]) {
        self.timestamp = timestamp
        self.seq = seq
        self.metrics = metrics
    }

    public func encoded() -> [UInt8] {
        var p = PBPayload()
        if let timestamp { p.timestamp = timestamp }
        if let seq { p.seq = UInt64(seq) }
        p.metrics = metrics.map(\.protobuf)
        // Serialising a message built only from our own typed fields cannot fail.
        return (try? p.serializedBytes()) ?? []
    }

    /// Decodes and validates every metric (known datatype, value fitting it). A seq above 255 is an error.
    /// `knownType` supplies the datatype of a metric sent without one (from the birth or a command schema).
    public init(decoding bytes: [UInt8], knownType: (String) -> SparkplugDataType? = { _ in nil }) throws(SparkplugDecodeError) {
        let p: PBPayload
        do { p = try PBPayload(serializedBytes: bytes) } catch { throw .notProtobuf("\(error)") }
        timestamp = p.hasTimestamp ? p.timestamp : nil
        if p.hasSeq {
            guard let s = UInt8(exactly: p.seq) else { throw .notProtobuf("seq \(p.seq) is outside 0-255") }
            seq = s
        } else {
            seq = nil
        }
        var metrics: [SparkplugMetric] = []
        metrics.reserveCapacity(p.metrics.count)
        for (i, m) in p.metrics.enumerated() { metrics.append(try SparkplugMetric(m, index: i, knownType: knownType)) }
        self.metrics = metrics
    }

    public func metric(named name: String) -> SparkplugMetric? { metrics.first { $0.name == name } }
}

/// Metric names the specification fixes.
public enum SparkplugMetricName {
    public static let bdSeq = "bdSeq"
    public static let rebirth = "Node Control/Rebirth"
}

/// Builders for the edge node's messages. Births must list every metric with its datatype and value.
public enum SparkplugPayloads {
    /// NBIRTH: seq 0, the session's bdSeq (Int64, as the specification's examples use),
    /// `Node Control/Rebirth` = false, then the node's metrics.
    public static func nbirth(timestamp: UInt64, bdSeq: BdSeq, metrics: [SparkplugMetric]) -> SparkplugPayload {
        var all = [
            SparkplugMetric(name: SparkplugMetricName.bdSeq, timestamp: timestamp, value: .int64(Int64(bdSeq.value))),
            SparkplugMetric(name: SparkplugMetricName.rebirth, timestamp: timestamp, value: .boolean(false)),
        ]
        all.append(contentsOf: metrics)
        return SparkplugPayload(timestamp: timestamp, seq: 0, metrics: all)
    }

    /// NDEATH, registered as the will: only the bdSeq metric, no seq.
    public static func ndeath(timestamp: UInt64?, bdSeq: BdSeq) -> SparkplugPayload {
        SparkplugPayload(timestamp: timestamp, seq: nil, metrics: [
            SparkplugMetric(name: SparkplugMetricName.bdSeq, value: .int64(Int64(bdSeq.value))),
        ])
    }

    public static func dbirth(timestamp: UInt64, seq: SparkplugSeq, metrics: [SparkplugMetric]) -> SparkplugPayload {
        SparkplugPayload(timestamp: timestamp, seq: seq.value, metrics: metrics)
    }

    public static func data(timestamp: UInt64, seq: SparkplugSeq, metrics: [SparkplugMetric]) -> SparkplugPayload {
        SparkplugPayload(timestamp: timestamp, seq: seq.value, metrics: metrics)
    }

    public static func ddeath(timestamp: UInt64, seq: SparkplugSeq) -> SparkplugPayload {
        SparkplugPayload(timestamp: timestamp, seq: seq.value, metrics: [])
    }
}
