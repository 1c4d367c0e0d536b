// How a Sparkplug metric value is kept in the hub store: a number (`value double precision`) or a text
// (`text_value`), with the Sparkplug datatype code beside it so that it reads back as the same `MetricValue`; and how
// a birth's metrics become JSONB.

import Foundation
import Sparkplug

/// A metric value as stored: `number` for every numeric type, Boolean (1/0) and DateTime (ms); `text` for String,
/// Text and Bytes (base64), and for a 64-bit integer a double cannot hold exactly (then `number` holds the nearest
/// double, for charts, and `text` the exact decimal). Both nil: a null value.
struct StoredValue: Sendable, Hashable {
    var datatype: Int16
    var number: Double?
    var text: String?

    init(datatype: Int16, number: Double?, text: String?) {
        self.datatype = datatype
        self.number = number
        self.text = text
    }

    init(_ value: MetricValue?, nullType: SparkplugDataType = .unknown) {
        guard let value else {
            self.init(datatype: Int16(nullType.rawValue), number: nil, text: nil)
            return
        }
        let code = Int16(value.dataType.rawValue)
        switch value {
        case .int8(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .int16(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .int32(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .uint8(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .uint16(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .uint32(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .int64(let v):
            self.init(datatype: code, number: Double(v), text: Double(exactly: v) == nil ? String(v) : nil)
        case .uint64(let v):
            self.init(datatype: code, number: Double(v), text: Double(exactly: v) == nil ? String(v) : nil)
        case .dateTime(let ms):
            self.init(datatype: code, number: Double(ms), text: Double(exactly: ms) == nil ? String(ms) : nil)
        case .float(let v): self.init(datatype: code, number: Double(v), text: nil)
        case .double(let v): self.init(datatype: code, number: v, text: nil)
        case .boolean(let v): self.init(datatype: code, number: v ? 1 : 0, text: nil)
        case .string(let s), .text(let s): self.init(datatype: code, number: nil, text: s)
        case .bytes(let b): self.init(datatype: code, number: nil, text: Data(b).base64EncodedString())
        }
    }

    /// The value back as the datatype it was stored with; nil for a null (or a row this version cannot read).
    var metricValue: MetricValue? {
        guard let type = SparkplugDataType(rawValue: UInt32(max(0, Int(datatype)))) else { return nil }
        func exact<I: FixedWidthInteger>(_: I.Type) -> I? {
            if let text, let v = I(text) { return v }
            return number.flatMap { I(exactly: $0) }
        }
        switch type {
        case .int8: return exact(Int8.self).map { .int8($0) }
        case .int16: return exact(Int16.self).map { .int16($0) }
        case .int32: return exact(Int32.self).map { .int32($0) }
        case .int64: return exact(Int64.self).map { .int64($0) }
        case .uint8: return exact(UInt8.self).map { .uint8($0) }
        case .uint16: return exact(UInt16.self).map { .uint16($0) }
        case .uint32: return exact(UInt32.self).map { .uint32($0) }
        case .uint64: return exact(UInt64.self).map { .uint64($0) }
        case .dateTime: return exact(UInt64.self).map { .dateTime(millisecondsSinceEpoch: $0) }
        case .float: return number.map { .float(Float($0)) }
        case .double: return number.map { .double($0) }
        case .boolean: return number.map { .boolean($0 != 0) }
        case .string: return text.map { .string($0) }
        case .text: return text.map { .text($0) }
        case .bytes: return text.flatMap { Data(base64Encoded: $0) }.map { .bytes([UInt8]($0)) }
        default: return nil
        }
    }
}

enum StoreJSON {
    /// A JSON value for a metric value (numbers as numbers; NaN and infinities, which JSON lacks, and bytes as
    /// strings).
    static func json(_ value: MetricValue) -> Any {
        switch value {
        case .int8(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .int64(let v): return v
        case .uint8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .uint64(let v): return v
        case .dateTime(let ms): return ms
        case .float(let v):
            if v.isFinite { return Double(v) }
            return String(describing: v)
        case .double(let v):
            if v.isFinite { return v }
            return String(describing: v)
        case .boolean(let v): return v
        case .string(let s), .text(let s): return s
        case .bytes(let b): return Data(b).base64EncodedString()
        }
    }

    /// A birth's metrics as a JSON array: name, alias, timestamp, datatype (name and code), value, flags.
    static func metrics(_ metrics: [SparkplugMetric]) -> String {
        let array: [[String: Any]] = metrics.map { m in
            var o: [String: Any] = [
                "datatype": m.dataType.description,
                "datatypeCode": Int(m.dataType.rawValue),
                "isNull": m.value == nil,
                "isHistorical": m.isHistorical,
                "isTransient": m.isTransient,
            ]
            if let name = m.name { o["name"] = name }
            if let alias = m.alias { o["alias"] = alias }
            if let ts = m.timestamp { o["timestamp"] = ts }
            if let v = m.value { o["value"] = json(v) }
            return o
        }
        return object(array)
    }

    static func object(_ value: Any) -> String {
        // Only ever called with arrays and dictionaries of JSON-representable values built above.
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
