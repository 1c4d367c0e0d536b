// The hub's fleet commands (issue 18, docs/fleet.md "Commands sent by the hub"): NCMDs to an edge node, each with
// the envelope the edge checks (`Command/ID` unique, `Command/Timestamp` = the hub's now, `Command/Client ID` = the
// hub's command client id, which the site file's `fleet.roles` must map to a role allowed for the command).
//
// - A command goes only to a site that is online in the model; otherwise it is not sent and the caller is told why.
// - It is recorded before it is published, without waiting for PostgreSQL: a `.command` record goes into the host's
//   record queue, appended to the spool and synced to disk (RecordSpool.swift), and the record writer puts it in the
//   store's `commands` table (status issued) in order with everything else, once the store answers. So a shed's caps
//   go out while PostgreSQL is down or restarting, and a hub killed before the store had them writes them at its next
//   start. A command is kept in memory past the queue's capacity when the spool cannot take it (RecordQueue.push);
//   only a hub that is not running does not send it.
//   It is published with QoS 1 through the MQTT client's own thread (never a blocking call on the cooperative pool); a
//   failed publish is recorded (`.commandOutcome`, failed) the same way.
// - The site's answer (`Command/Last ID`, `Command/Last Accepted`, `Command/Last Result` in its NDATA or NBIRTH) is
//   matched to the command by id, queued as a `.commandOutcome` record (`command_outcomes`; acknowledged or
//   rejected), and kept in memory for `reply(commandID:)`.

import Basics
import Foundation
import Sparkplug

/// The names the hub writes and reads on the wire (the edge's FleetCommandName, which the hub does not import: the
/// Hub target does not depend on FleetEdge).
public enum HubCommandName {
    public static let id = "Command/ID"
    public static let timestamp = "Command/Timestamp"
    public static let clientID = "Command/Client ID"
    public static let eventID = "DR Event/ID"
    public static let eventCapKW = "DR Event/Cap kW"
    public static let eventEnd = "DR Event/End"
    public static let eventReason = "DR Event/Reason"
    public static let cancelEventID = "DR Event/Cancel ID"
    public static let configSHA256 = "Config/Apply SHA256"
    public static let configComment = "Config/Comment"
    public static let configYAML = "Config/YAML"
    public static let lastID = "Command/Last ID"
    public static let lastAccepted = "Command/Last Accepted"
    public static let lastResult = "Command/Last Result"
}

/// A command the hub can send to a site (NCMD).
public enum FleetCommandRequest: Sendable, Hashable {
    /// A DR cap from now until `end` (seconds since 1970): the site drops it at `end` by itself.
    case createEvent(eventID: String, capKW: Double, end: Double, reason: String)
    case cancelEvent(eventID: String)
    /// A configuration rollout's apply: the site file itself, which must hash to `sha256`.
    case applyConfig(sha256: String, yaml: String, comment: String?)

    /// How long a command without its own end (cancel, config apply) is valid for in the hub's table.
    public static let defaultExpiryS: Double = 300

    /// The metrics after the envelope.
    func metrics(at ms: UInt64) -> [SparkplugMetric] {
        func m(_ n: String, _ v: MetricValue) -> SparkplugMetric { SparkplugMetric(name: n, timestamp: ms, value: v) }
        switch self {
        case let .createEvent(id, cap, end, reason):
            return [m(HubCommandName.eventID, .string(id)), m(HubCommandName.eventCapKW, .double(cap)),
                    m(HubCommandName.eventEnd, .dateTime(millisecondsSinceEpoch: UInt64(max(0, end * 1000).rounded()))),
                    m(HubCommandName.eventReason, .string(reason))]
        case .cancelEvent(let id):
            return [m(HubCommandName.cancelEventID, .string(id))]
        case let .applyConfig(sha, yaml, comment):
            var out = [m(HubCommandName.configSHA256, .string(sha)), m(HubCommandName.configYAML, .text(yaml))]
            if let comment { out.append(m(HubCommandName.configComment, .string(comment))) }
            return out
        }
    }

    /// When the command stops mattering (ms since the epoch): a DR event's end, or `defaultExpiryS` after `issued`.
    func expiry(issuedMS: UInt64) -> UInt64 {
        switch self {
        case .createEvent(_, _, let end, _): max(issuedMS + 1, UInt64(max(0, end * 1000).rounded()))
        default: issuedMS + UInt64(Self.defaultExpiryS * 1000)
        }
    }

    /// The command as stored in the hub's `commands.payload` (a JSON object; the YAML by its size and hash only).
    func payloadJSON(commandID: String, clientID: String) -> String {
        var o: [String: Any] = ["command_id": commandID, "client_id": clientID]
        switch self {
        case let .createEvent(id, cap, end, reason):
            o["kind"] = "dr-event-create"; o["event_id"] = id; o["cap_kw"] = cap; o["end"] = ISO8601.format(end); o["reason"] = reason
        case .cancelEvent(let id):
            o["kind"] = "dr-event-cancel"; o["event_id"] = id
        case let .applyConfig(sha, yaml, comment):
            o["kind"] = "config-apply"; o["sha256"] = sha; o["yaml_bytes"] = yaml.utf8.count
            if let comment { o["comment"] = comment }
        }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public var summary: String {
        switch self {
        case let .createEvent(id, cap, end, _): "DR event \(id) cap \(cap) kW until \(ISO8601.format(end))"
        case .cancelEvent(let id): "cancel DR event \(id)"
        case .applyConfig(let sha, _, _): "apply config sha256 \(sha.prefix(12))"
        }
    }
}

/// What became of a command the hub was asked to send.
public enum FleetSendResult: Sendable, Hashable {
    case sent(commandID: String)
    /// Not published (the site is offline, the hub is not connected, the store refused the record, or the publish
    /// failed): why.
    case notSent(commandID: String, reason: String)

    public var commandID: String {
        switch self { case .sent(let id), .notSent(let id, _): id }
    }
}

/// A site's answer to a command, as the hub read it from the site's NDATA.
public struct FleetCommandReply: Sendable, Hashable, Codable {
    public var accepted: Bool
    public var result: String
    /// When the hub saw it, ms since the epoch.
    public var at: UInt64
}

/// What `FleetOperations` needs of the hub: the fleet as the model sees it, and a way to send commands.
public protocol FleetCommandHost: Sendable {
    func status() async -> [SiteStatus]
    func shedInputs(region: String) -> (sites: [SiteKey: SiteShedInput], missing: [SiteKey: String])
    /// Sends `request` to `site` with `commandID` (nil: a fresh one).
    func send(_ request: FleetCommandRequest, to site: SiteKey, commandID: String?) async -> FleetSendResult
    /// The site's answer to the command, once it has come.
    func reply(commandID: String) -> FleetCommandReply?
}

/// The host's command bookkeeping (inside a Mutex of HostApplication).
struct HostCommandState {
    /// Sent and not answered yet: command id -> its site.
    var pending: [String: SiteKey] = [:]
    var replies: [String: FleetCommandReply] = [:]
    /// The order replies came in (the oldest are forgotten beyond `maxReplies`).
    var replyOrder: [String] = []
    var counter = 0
    static let maxReplies = 20_000

    mutating func remember(_ id: String, _ reply: FleetCommandReply) {
        replies[id] = reply
        replyOrder.append(id)
        if replyOrder.count > Self.maxReplies {
            let drop = replyOrder.count - Self.maxReplies
            for old in replyOrder.prefix(drop) { replies[old] = nil }
            replyOrder.removeFirst(drop)
        }
    }
}

extension HostApplication: FleetCommandHost {
    /// The client id the hub's commands claim (`Command/Client ID`).
    public var commandClientID: String { configuration.commandClientID ?? configuration.mqtt.clientID }

    public func reply(commandID: String) -> FleetCommandReply? { commandState.withLock { $0.replies[commandID] } }

    public func send(_ request: FleetCommandRequest, to site: SiteKey, commandID: String? = nil) async -> FleetSendResult {
        let t = now()
        let id = commandID ?? commandState.withLock { s -> String in
            s.counter += 1
            return "hub-\(session.withLock { $0 })-\(s.counter)"
        }
        let liveness = model.withLock { $0.liveness(of: site, now: t) }
        guard liveness == .online else {
            logger.warning("hub: command not sent: site is \(liveness)", metadata: ["sparkplug.node": "\(site)", "hub.command": "\(id)"])
            return .notSent(commandID: id, reason: "site \(site) is \(liveness): the command is not sent")
        }
        guard connected.load(ordering: .acquiring), let client = currentClient.withLock({ $0 }) else {
            return .notSent(commandID: id, reason: "the hub is not connected to the broker: the command is not sent")
        }
        let clientID = commandClientID
        let command = HubCommand(id: id, site: site, issuedAt: t, expiresAt: request.expiry(issuedMS: t),
                                 payloadJSON: request.payloadJSON(commandID: id, clientID: clientID))
        guard let records = recordQueue.withLock({ $0 }), enqueue([.command(command)], into: records, command: true, sync: true) else {
            logger.error("hub: command not recorded, so not sent", metadata: ["hub.command": "\(id)"])
            return .notSent(commandID: id, reason: "the hub's record queue is not running, so the command was not recorded and not sent")
        }
        let metrics = [SparkplugMetric(name: HubCommandName.id, timestamp: t, value: .string(id)),
                       SparkplugMetric(name: HubCommandName.timestamp, timestamp: t, value: .dateTime(millisecondsSinceEpoch: t)),
                       SparkplugMetric(name: HubCommandName.clientID, timestamp: t, value: .string(clientID))] + request.metrics(at: t)
        let payload = SparkplugPayload(timestamp: t, seq: nil, metrics: metrics).encoded()
        let topic = SparkplugTopic.node(group: site.group, type: .ncmd, edge: site.edge).description
        // Pending before the publish: the answer may come back before the acknowledgement does.
        commandState.withLock { $0.pending[id] = site }
        let (acks, ackIn) = AsyncStream.makeStream(of: MosquittoError?.self)
        client.submitAcknowledged([.publish(topic: topic, payload: payload, qos: 1, retain: false)]) { ackIn.yield($0); ackIn.finish() }
        var failure: MosquittoError? = MosquittoError(call: "mosquitto_publish", code: MosquittoError.noConnection)
        for await r in acks { failure = r }
        if let failure {
            commandState.withLock { $0.pending[id] = nil }
            logger.warning("hub: command not published", metadata: ["hub.command": "\(id)", "mqtt.error": "\(failure)"])
            enqueue([.commandOutcome(commandID: id, status: .failed, outcome: "not published: \(failure)", at: now())], into: records, command: true)
            return .notSent(commandID: id, reason: "the publish failed: \(failure)")
        }
        logger.info("hub: command sent", metadata: ["sparkplug.node": "\(site)", "hub.command": "\(id)", "hub.summary": "\(request.summary)"])
        observe(.commandSent(site, commandID: id))
        return .sent(commandID: id)
    }

    /// After a node's NDATA or NBIRTH: if its last answer is to one of our pending commands, take it.
    func takeReply(_ key: SiteKey, now t: UInt64, records: RecordQueue) {
        guard commandState.withLock({ !$0.pending.isEmpty }) else { return }
        let answer = model.withLock { m -> (String, Bool, String)? in
            guard let metrics = m.nodes[key]?.metrics, case .string(let id)? = metrics[HubCommandName.lastID]?.value else { return nil }
            var accepted = false, result = ""
            if case .boolean(let b)? = metrics[HubCommandName.lastAccepted]?.value { accepted = b }
            if case .string(let s)? = metrics[HubCommandName.lastResult]?.value { result = s }
            if case .text(let s)? = metrics[HubCommandName.lastResult]?.value { result = s }
            return (id, accepted, result)
        }
        guard let (id, accepted, result) = answer else { return }
        let reply = FleetCommandReply(accepted: accepted, result: result, at: t)
        let taken = commandState.withLock { s -> Bool in
            guard s.pending[id] == key else { return false }
            s.pending[id] = nil
            s.remember(id, reply)
            return true
        }
        guard taken else { return }
        logger.info("hub: command answered", metadata: ["sparkplug.node": "\(key)", "hub.command": "\(id)", "hub.accepted": "\(accepted)",
                                                        "hub.result": "\(result)"])
        enqueue([.commandOutcome(commandID: id, status: accepted ? .acknowledged : .rejected, outcome: result, at: t)], into: records, command: true)
        observe(.commandAnswered(key, commandID: id, accepted: accepted))
    }
}
