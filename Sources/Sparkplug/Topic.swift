// The Sparkplug B topic namespace (Sparkplug 3.0):
//   spBv1.0/<group>/NBIRTH|NDEATH|NDATA|NCMD/<edge>
//   spBv1.0/<group>/DBIRTH|DDEATH|DDATA|DCMD/<edge>/<device>
//   spBv1.0/STATE/<host_id>

/// The namespace element every Sparkplug B topic starts with.
public let sparkplugNamespace = "spBv1.0"

/// The message types of the edge-node namespace.
public enum SparkplugMessageType: String, Sendable, Hashable, CaseIterable {
    case nbirth = "NBIRTH", ndeath = "NDEATH", ndata = "NDATA", ncmd = "NCMD"
    case dbirth = "DBIRTH", ddeath = "DDEATH", ddata = "DDATA", dcmd = "DCMD"

    /// D* messages name a device after the edge node.
    public var isDeviceMessage: Bool {
        switch self {
        case .dbirth, .ddeath, .ddata, .dcmd: true
        default: false
        }
    }
}

/// Why an id or a topic is not valid Sparkplug.
public enum SparkplugTopicError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidID(kind: String, id: String, reason: String)
    case invalidTopic(String, reason: String)

    public var description: String {
        switch self {
        case let .invalidID(kind, id, reason): "invalid Sparkplug \(kind) '\(id)': \(reason)"
        case let .invalidTopic(topic, reason): "invalid Sparkplug topic '\(topic)': \(reason)"
        }
    }
}

/// Checks a group, edge node, device or host id: a non-empty UTF-8 string without the MQTT
/// separators and wildcards ('/', '+', '#'). `kind` names it in the error ("group id").
public func validateSparkplugID(_ id: String, kind: String) throws(SparkplugTopicError) {
    if id.isEmpty { throw .invalidID(kind: kind, id: id, reason: "empty") }
    for ch in id.unicodeScalars {
        switch ch {
        case "/": throw .invalidID(kind: kind, id: id, reason: "contains '/'")
        case "+", "#": throw .invalidID(kind: kind, id: id, reason: "contains the MQTT wildcard '\(ch)'")
        default:
            if ch.value < 0x20 || ch.value == 0x7F { throw .invalidID(kind: kind, id: id, reason: "contains a control character") }
        }
    }
}

/// A parsed, valid Sparkplug B topic.
public enum SparkplugTopic: Sendable, Hashable, CustomStringConvertible {
    case node(group: String, type: SparkplugMessageType, edge: String)
    case device(group: String, type: SparkplugMessageType, edge: String, device: String)
    case state(hostID: String)

    /// A node-level topic (NBIRTH, NDEATH, NDATA, NCMD); validates the ids.
    public static func node(_ type: SparkplugMessageType, group: String, edge: String) throws(SparkplugTopicError) -> SparkplugTopic {
        guard !type.isDeviceMessage else { throw .invalidTopic("\(type.rawValue)", reason: "\(type.rawValue) needs a device id") }
        try validateSparkplugID(group, kind: "group id")
        try validateSparkplugID(edge, kind: "edge node id")
        return .node(group: group, type: type, edge: edge)
    }

    /// A device-level topic (DBIRTH, DDEATH, DDATA, DCMD); validates the ids.
    public static func device(_ type: SparkplugMessageType, group: String, edge: String, device: String) throws(SparkplugTopicError) -> SparkplugTopic {
        guard type.isDeviceMessage else { throw .invalidTopic("\(type.rawValue)", reason: "\(type.rawValue) takes no device id") }
        try validateSparkplugID(group, kind: "group id")
        try validateSparkplugID(edge, kind: "edge node id")
        try validateSparkplugID(device, kind: "device id")
        return .device(group: group, type: type, edge: edge, device: device)
    }

    public static func state(host: String) throws(SparkplugTopicError) -> SparkplugTopic {
        try validateSparkplugID(host, kind: "host id")
        return .state(hostID: host)
    }

    /// Parses a topic string; anything outside the namespace, or malformed, is an error.
    public init(parsing topic: String) throws(SparkplugTopicError) {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == sparkplugNamespace else { throw .invalidTopic(topic, reason: "not in the \(sparkplugNamespace) namespace") }
        guard parts.count >= 3 else { throw .invalidTopic(topic, reason: "too few elements") }
        if parts[1] == "STATE" {
            guard parts.count == 3 else { throw .invalidTopic(topic, reason: "STATE takes exactly one host id") }
            self = try .state(host: parts[2])
            return
        }
        guard let type = SparkplugMessageType(rawValue: parts[2]) else {
            throw .invalidTopic(topic, reason: "unknown message type '\(parts[2])'")
        }
        guard parts.count >= 4 else { throw .invalidTopic(topic, reason: "missing the edge node id") }
        if type.isDeviceMessage {
            guard parts.count == 5 else { throw .invalidTopic(topic, reason: "\(type.rawValue) needs exactly group, edge node and device ids") }
            self = try .device(type, group: parts[1], edge: parts[3], device: parts[4])
        } else {
            guard parts.count == 4 else { throw .invalidTopic(topic, reason: "\(type.rawValue) takes no device id") }
            self = try .node(type, group: parts[1], edge: parts[3])
        }
    }

    public var messageType: SparkplugMessageType? {
        switch self {
        case let .node(_, type, _), let .device(_, type, _, _): type
        case .state: nil
        }
    }

    public var description: String {
        switch self {
        case let .node(group, type, edge): "\(sparkplugNamespace)/\(group)/\(type.rawValue)/\(edge)"
        case let .device(group, type, edge, device): "\(sparkplugNamespace)/\(group)/\(type.rawValue)/\(edge)/\(device)"
        case let .state(host): "\(sparkplugNamespace)/STATE/\(host)"
        }
    }
}
