// NCMD/DCMD decoding against a schema: every metric must be one the edge node (or device)
// accepts, with the datatype it expects. A command payload is applied whole or not at all.

/// The command metrics accepted, by name, with their datatypes.
public struct CommandSchema: Sendable, Hashable {
    public var metrics: [String: SparkplugDataType]
    /// Metrics copied into a rejection when the payload carries them with these datatypes (e.g. a command id and
    /// the sender's claimed identity), so that a refused payload can still be answered and audited by name.
    public var echo: [String: SparkplugDataType]

    public init(_ metrics: [String: SparkplugDataType], echo: [String: SparkplugDataType] = [:]) {
        self.metrics = metrics
        self.echo = echo
    }

    /// The node-level commands every edge node accepts (`Node Control/Rebirth`), plus `extra`.
    public static func node(_ extra: [String: SparkplugDataType] = [:]) -> CommandSchema {
        CommandSchema(extra.merging([SparkplugMetricName.rebirth: .boolean]) { _, fixed in fixed })
    }

    /// The `echo` metrics `bytes` carries with the expected datatype (best effort: anything else is left out).
    public func echoed(from bytes: [UInt8]) -> [String: MetricValue] {
        guard !echo.isEmpty, let p = try? PBPayload(serializedBytes: bytes) else { return [:] }
        var found: [String: MetricValue] = [:]
        for m in p.metrics where m.hasName {
            guard let type = echo[m.name], !m.isNull, !(m.hasDatatype && m.datatype != 0 && m.datatype != type.rawValue),
                  let v = MetricValue.decode(m.value, as: type) else { continue }
            found[m.name] = v
        }
        return found
    }
}

/// One validated command metric.
public struct SparkplugCommand: Sendable, Hashable {
    public var name: String
    public var value: MetricValue
    public var timestamp: UInt64?

    public init(name: String, value: MetricValue, timestamp: UInt64? = nil) {
        self.name = name
        self.value = value
        self.timestamp = timestamp
    }
}

/// Why a command payload was refused (nothing in it is applied).
public enum CommandRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case undecodable(String)
    case empty
    case unnamedMetric(index: Int)
    case unknownMetric(String)
    case wrongDataType(metric: String, expected: SparkplugDataType, received: String)
    case nullValue(metric: String)
    case unknownDevice(String)

    public var description: String {
        switch self {
        case .undecodable(let why): "command is not a Sparkplug B payload: \(why)"
        case .empty: "command carries no metric"
        case .unnamedMetric(let i): "command metric \(i) has no name (aliases are not accepted in commands)"
        case .unknownMetric(let name): "unknown command metric '\(name)'"
        case let .wrongDataType(metric, expected, received): "command metric '\(metric)' must be \(expected), got \(received)"
        case .nullValue(let metric): "command metric '\(metric)' has no value"
        case .unknownDevice(let device): "no device '\(device)' on this edge node"
        }
    }
}

extension PBMetric.OneOf_Value {
    var fieldName: String {
        switch self {
        case .intValue: "int_value"
        case .longValue: "long_value"
        case .floatValue: "float_value"
        case .doubleValue: "double_value"
        case .booleanValue: "boolean_value"
        case .stringValue: "string_value"
        case .bytesValue: "bytes_value"
        case .datasetValue: "dataset_value"
        case .templateValue: "template_value"
        case .extensionValue: "extension_value"
        }
    }
}

/// Decodes an NCMD/DCMD payload against `schema`: all metrics valid, or one typed rejection.
public func decodeCommands(_ bytes: [UInt8], schema: CommandSchema) -> Result<[SparkplugCommand], CommandRejection> {
    let p: PBPayload
    do { p = try PBPayload(serializedBytes: bytes) } catch { return .failure(.undecodable("\(error)")) }
    guard !p.metrics.isEmpty else { return .failure(.empty) }
    var commands: [SparkplugCommand] = []
    for (i, m) in p.metrics.enumerated() {
        guard m.hasName, !m.name.isEmpty else { return .failure(.unnamedMetric(index: i)) }
        guard let expected = schema.metrics[m.name] else { return .failure(.unknownMetric(m.name)) }
        if m.hasDatatype, m.datatype != 0, m.datatype != expected.rawValue {
            let got = SparkplugDataType(rawValue: m.datatype).map { "\($0)" } ?? "datatype \(m.datatype)"
            return .failure(.wrongDataType(metric: m.name, expected: expected, received: got))
        }
        if m.isNull || m.value == nil { return .failure(.nullValue(metric: m.name)) }
        guard let value = MetricValue.decode(m.value, as: expected) else {
            return .failure(.wrongDataType(metric: m.name, expected: expected, received: m.value?.fieldName ?? "no value"))
        }
        commands.append(SparkplugCommand(name: m.name, value: value, timestamp: m.hasTimestamp ? m.timestamp : nil))
    }
    return .success(commands)
}
