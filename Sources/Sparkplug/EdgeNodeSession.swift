// The edge node's Sparkplug lifecycle as a pure state machine: no I/O, no clock reads. Given
// what happened (a session start, CONNACK, a lost connection, an incoming STATE or command, new
// data), it returns what to do (save the bdSeq, connect with this will, subscribe, publish...).
// The runner that owns the MQTT client performs the actions in order.

/// The edge node's identity in the namespace, validated.
public struct EdgeNodeIdentity: Sendable, Hashable {
    public let group: String
    public let edge: String
    /// When set, births wait for this host's STATE to say online.
    public let primaryHostID: String?

    public init(group: String, edge: String, primaryHostID: String? = nil) throws(SparkplugTopicError) {
        try validateSparkplugID(group, kind: "group id")
        try validateSparkplugID(edge, kind: "edge node id")
        if let primaryHostID { try validateSparkplugID(primaryHostID, kind: "host id") }
        self.group = group
        self.edge = edge
        self.primaryHostID = primaryHostID
    }

    public func topic(_ type: SparkplugMessageType) -> String {
        "\(sparkplugNamespace)/\(group)/\(type.rawValue)/\(edge)"
    }

    public func topic(_ type: SparkplugMessageType, device: String) -> String {
        "\(sparkplugNamespace)/\(group)/\(type.rawValue)/\(edge)/\(device)"
    }
}

/// Every metric of the node and of each device, with current values: what births carry.
public struct BirthCertificate: Sendable, Hashable {
    public var node: [SparkplugMetric]
    /// Devices in birth order.
    public var devices: [(id: String, metrics: [SparkplugMetric])]

    public init(node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])]) {
        self.node = node
        self.devices = devices
    }

    public static func == (a: BirthCertificate, b: BirthCertificate) -> Bool {
        a.node == b.node && a.devices.map(\.id) == b.devices.map(\.id) && a.devices.map(\.metrics) == b.devices.map(\.metrics)
    }

    public func hash(into h: inout Hasher) {
        h.combine(node)
        for d in devices { h.combine(d.id); h.combine(d.metrics) }
    }
}

public struct EdgeNodeSession: Sendable {
    public enum Phase: Sendable, Hashable {
        /// No MQTT session (before start, or after the connection ended).
        case offline
        /// CONNECT sent with the will; waiting for CONNACK.
        case connecting
        /// Connected; waiting for the primary host's STATE online before the births.
        case awaitingHost
        /// Births published; data flows.
        case online
    }

    public enum Action: Sendable, Hashable {
        /// Persist this bdSeq before connecting (it must survive a restart).
        case saveBdSeq(BdSeq)
        /// Connect with this will (the NDEATH of the session).
        case connect(will: MQTTWill)
        case subscribe(String, qos: Int)
        case publish(topic: String, payload: [UInt8], qos: Int, retain: Bool)
        /// Send DISCONNECT (after an explicit NDEATH).
        case disconnect
        /// Valid commands for the application (device nil: node-level).
        case command(device: String?, [SparkplugCommand])
        /// A refused command: nothing in it was applied. `echo`: the schema's echo metrics the payload carried.
        case rejected(device: String?, CommandRejection, echo: [String: MetricValue] = [:])
    }

    public let identity: EdgeNodeIdentity
    public let nodeCommands: CommandSchema
    public private(set) var deviceCommands: [String: CommandSchema]
    public private(set) var phase: Phase = .offline
    /// The bdSeq of the current (or last) session; nil before the first session ever.
    public private(set) var bdSeq: BdSeq?
    /// The seq of the last message published in this session.
    public private(set) var lastSeq: SparkplugSeq?
    /// The newest STATE timestamp seen from the primary host (older ones are ignored).
    public private(set) var hostStateTimestamp: UInt64?
    public private(set) var hostOnline = false

    /// `lastBdSeq` is what the BdSeqStore holds from before a restart.
    public init(identity: EdgeNodeIdentity, lastBdSeq: BdSeq?, nodeCommands: CommandSchema = .node(),
                deviceCommands: [String: CommandSchema] = [:]) {
        self.identity = identity
        self.bdSeq = lastBdSeq
        var node = nodeCommands
        node.metrics[SparkplugMetricName.rebirth] = .boolean
        self.nodeCommands = node
        self.deviceCommands = deviceCommands
    }

    public var stateTopic: String? { identity.primaryHostID.map { "\(sparkplugNamespace)/STATE/\($0)" } }

    /// Starts a new MQTT session: the next bdSeq (0 for the very first), saved, then CONNECT with the NDEATH will.
    public mutating func start(now: UInt64) -> [Action] {
        let next = bdSeq.map(\.next) ?? BdSeq(0)
        bdSeq = next
        lastSeq = nil
        hostOnline = false
        phase = .connecting
        let death = SparkplugPayloads.ndeath(timestamp: now, bdSeq: next)
        return [.saveBdSeq(next), .connect(will: MQTTWill(topic: identity.topic(.ndeath), payload: death.encoded(), qos: 1, retain: false))]
    }

    /// CONNACK: subscribe to commands (and the primary host's STATE), then birth unless waiting for the host.
    public mutating func connected(now: UInt64, birth: @autoclosure () -> BirthCertificate) -> [Action] {
        guard phase == .connecting else { return [] }
        var actions: [Action] = [
            .subscribe(identity.topic(.ncmd), qos: 1),
            .subscribe("\(sparkplugNamespace)/\(identity.group)/DCMD/\(identity.edge)/+", qos: 1),
        ]
        if let stateTopic {
            phase = .awaitingHost
            actions.append(.subscribe(stateTopic, qos: 1))
        } else {
            actions += births(now: now, birth())
        }
        return actions
    }

    /// The connection ended (with or without our DISCONNECT). Call `start` to begin the next session.
    public mutating func disconnected() {
        phase = .offline
        lastSeq = nil
    }

    /// A message on one of the subscribed topics.
    public mutating func received(_ message: MQTTMessage, now: UInt64, birth: @autoclosure () -> BirthCertificate) -> [Action] {
        guard let topic = try? SparkplugTopic(parsing: message.topic) else { return [] }
        switch topic {
        case .state(let host):
            guard host == identity.primaryHostID else { return [] }
            return hostState(message.payload, now: now, birth: birth())
        case let .node(group, .ncmd, edge) where group == identity.group && edge == identity.edge:
            switch decodeCommands(message.payload, schema: nodeCommands) {
            case .failure(let why): return [.rejected(device: nil, why, echo: nodeCommands.echoed(from: message.payload))]
            case .success(let commands):
                var actions: [Action] = []
                let rebirth = commands.contains { $0.name == SparkplugMetricName.rebirth && $0.value == .boolean(true) }
                let rest = commands.filter { $0.name != SparkplugMetricName.rebirth }
                if !rest.isEmpty { actions.append(.command(device: nil, rest)) }
                if rebirth, phase == .online { actions += births(now: now, birth()) }
                return actions
            }
        case let .device(group, .dcmd, edge, device) where group == identity.group && edge == identity.edge:
            guard let schema = deviceCommands[device] else {
                return [.rejected(device: device, .unknownDevice(device), echo: nodeCommands.echoed(from: message.payload))]
            }
            switch decodeCommands(message.payload, schema: schema) {
            case .failure(let why): return [.rejected(device: device, why, echo: schema.echoed(from: message.payload))]
            case .success(let commands): return [.command(device: device, commands)]
            }
        default:
            return []
        }
    }

    private mutating func hostState(_ payload: [UInt8], now: UInt64, birth: @autoclosure () -> BirthCertificate) -> [Action] {
        guard let state = try? HostState(parsing: payload) else { return [] }
        if let seen = hostStateTimestamp, state.timestamp < seen { return [] }
        hostStateTimestamp = state.timestamp
        hostOnline = state.online
        switch (phase, state.online) {
        case (.awaitingHost, true):
            return births(now: now, birth())
        case (.online, false):
            // The primary host went offline: NDEATH, then disconnect; the next session waits for it again.
            guard let bdSeq else { return [] }
            phase = .offline
            lastSeq = nil
            let death = SparkplugPayloads.ndeath(timestamp: now, bdSeq: bdSeq)
            return [.publish(topic: identity.topic(.ndeath), payload: death.encoded(), qos: 1, retain: false), .disconnect]
        default:
            return []
        }
    }

    /// NBIRTH (seq 0, this session's bdSeq) then one DBIRTH per device.
    private mutating func births(now: UInt64, _ birth: BirthCertificate) -> [Action] {
        guard let bdSeq else { return [] }
        phase = .online
        var seq = SparkplugSeq(0)
        lastSeq = seq
        var actions: [Action] = [.publish(topic: identity.topic(.nbirth),
                                          payload: SparkplugPayloads.nbirth(timestamp: now, bdSeq: bdSeq, metrics: birth.node).encoded(),
                                          qos: 0, retain: false)]
        for device in birth.devices {
            seq = seq.next
            lastSeq = seq
            actions.append(.publish(topic: identity.topic(.dbirth, device: device.id),
                                    payload: SparkplugPayloads.dbirth(timestamp: now, seq: seq, metrics: device.metrics).encoded(),
                                    qos: 0, retain: false))
        }
        return actions
    }

    private mutating func nextSeq() -> SparkplugSeq {
        let s = lastSeq.map(\.next) ?? SparkplugSeq(0)
        lastSeq = s
        return s
    }

    /// NDATA (if `node` is not empty) and DDATA per device with changes; nothing unless online
    /// (the caller keeps what it could not send).
    public mutating func data(node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])], now: UInt64) -> [Action] {
        guard phase == .online else { return [] }
        var actions: [Action] = []
        if !node.isEmpty {
            actions.append(.publish(topic: identity.topic(.ndata),
                                    payload: SparkplugPayloads.data(timestamp: now, seq: nextSeq(), metrics: node).encoded(),
                                    qos: 0, retain: false))
        }
        for device in devices where !device.metrics.isEmpty {
            actions.append(.publish(topic: identity.topic(.ddata, device: device.id),
                                    payload: SparkplugPayloads.data(timestamp: now, seq: nextSeq(), metrics: device.metrics).encoded(),
                                    qos: 0, retain: false))
        }
        return actions
    }

    /// The set of devices changed (a new configuration): a DDEATH for each device that went away; and, if any
    /// device is new, the births again (NBIRTH with this session's bdSeq and seq 0, then every DBIRTH), because
    /// Sparkplug wants every DBIRTH right after the NBIRTH, before any data. DCMD is checked against
    /// `deviceCommands` from now on. Offline, only the schema changes: the next births carry the new set.
    public mutating func devicesChanged(removed: [String], added: [String], deviceCommands: [String: CommandSchema], now: UInt64,
                                        birth: @autoclosure () -> BirthCertificate) -> [Action] {
        self.deviceCommands = deviceCommands
        guard phase == .online else { return [] }
        var actions = removed.flatMap { deviceDeath($0, now: now) }
        if !added.isEmpty { actions += births(now: now, birth()) }
        return actions
    }

    /// DDEATH for a device that went away (its next DBIRTH comes with the next births).
    public mutating func deviceDeath(_ device: String, now: UInt64) -> [Action] {
        guard phase == .online else { return [] }
        return [.publish(topic: identity.topic(.ddeath, device: device),
                         payload: SparkplugPayloads.ddeath(timestamp: now, seq: nextSeq()).encoded(), qos: 0, retain: false)]
    }
}
