// The pure edge-node lifecycle: what it publishes, in which order, with which seq and bdSeq.

import Foundation
import Testing
@testable import Sparkplug

struct Published: Equatable {
    let topic: String
    let payload: SparkplugPayload
}

func published(_ actions: [EdgeNodeSession.Action]) throws -> [Published] {
    try actions.compactMap { a in
        guard case let .publish(topic, bytes, _, _) = a else { return nil }
        return Published(topic: topic, payload: try SparkplugPayload(decoding: bytes))
    }
}

func subscriptions(_ actions: [EdgeNodeSession.Action]) -> [String] {
    actions.compactMap { if case let .subscribe(p, _) = $0 { p } else { nil } }
}

let certificate = BirthCertificate(
    node: [SparkplugMetric(name: "Site/Import kW", value: .double(1200))],
    devices: [("c01", [SparkplugMetric(name: "Power kW", value: .double(300))]),
              ("c02", [SparkplugMetric(name: "Power kW", value: .double(310))])]
)

func stateMessage(_ online: Bool, _ ts: UInt64, host: String = "hq") -> MQTTMessage {
    MQTTMessage(topic: "spBv1.0/STATE/\(host)", payload: HostState(online: online, timestamp: ts).encoded(), qos: 1, retain: true)
}

func rebirthCommand(group: String = "north", edge: String = "site-7") -> MQTTMessage {
    var m = PBMetric()
    m.name = "Node Control/Rebirth"
    m.datatype = SparkplugDataType.boolean.rawValue
    m.value = .booleanValue(true)
    var p = PBPayload()
    p.timestamp = 1
    p.metrics = [m]
    return MQTTMessage(topic: "spBv1.0/\(group)/NCMD/\(edge)", payload: (try? p.serializedBytes()) ?? [], qos: 0, retain: false)
}

@Suite("Edge node session")
struct EdgeNodeSessionTests {
    let identity = try! EdgeNodeIdentity(group: "north", edge: "site-7")
    let withHost = try! EdgeNodeIdentity(group: "north", edge: "site-7", primaryHostID: "hq")

    @Test func firstSessionUsesBdSeqZeroAndRegistersTheNDeathWill() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: nil)
        let actions = s.start(now: 100)
        #expect(actions.first == .saveBdSeq(BdSeq(0)))
        guard case .connect(let will) = actions.last else { Issue.record("no connect"); return }
        #expect(will.topic == "spBv1.0/north/NDEATH/site-7")
        #expect(will.qos == 1 && !will.retain)
        let death = try SparkplugPayload(decoding: will.payload)
        #expect(death.seq == nil)
        #expect(death.metric(named: "bdSeq")?.value == .int64(0))
        #expect(s.phase == .connecting)
    }

    @Test func birthsWithoutAPrimaryHost() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: BdSeq(6))
        _ = s.start(now: 1)
        let actions = s.connected(now: 2, birth: certificate)
        #expect(subscriptions(actions) == ["spBv1.0/north/NCMD/site-7", "spBv1.0/north/DCMD/site-7/+"])
        let out = try published(actions)
        #expect(out.map(\.topic) == ["spBv1.0/north/NBIRTH/site-7", "spBv1.0/north/DBIRTH/site-7/c01", "spBv1.0/north/DBIRTH/site-7/c02"])
        #expect(out.map(\.payload.seq) == [0, 1, 2])
        #expect(out[0].payload.metric(named: "bdSeq")?.value == .int64(7))
        #expect(out[0].payload.metric(named: "Site/Import kW")?.value == .double(1200))
        #expect(s.phase == .online)
    }

    @Test func waitsForThePrimaryHostOnline() throws {
        var s = EdgeNodeSession(identity: withHost, lastBdSeq: nil)
        _ = s.start(now: 1)
        let connected = s.connected(now: 2, birth: certificate)
        #expect(try published(connected).isEmpty)
        #expect(subscriptions(connected).contains("spBv1.0/STATE/hq"))
        #expect(s.phase == .awaitingHost)
        let offline = s.received(stateMessage(false, 10), now: 3, birth: certificate)
        #expect(offline.isEmpty)
        let otherHost = s.received(stateMessage(true, 10, host: "other"), now: 3, birth: certificate)
        #expect(otherHost.isEmpty)
        let early = s.data(node: [SparkplugMetric(name: "x", value: .int32(1))], devices: [], now: 4)
        #expect(early.isEmpty)
        // An older STATE (a stale retained one) does not count.
        let stale = s.received(stateMessage(true, 9), now: 4, birth: certificate)
        #expect(stale.isEmpty)
        let births = try published(s.received(stateMessage(true, 11), now: 5, birth: certificate))
        #expect(births.map(\.payload.seq) == [0, 1, 2])
        #expect(s.phase == .online)
    }

    @Test func primaryHostOfflineEndsTheSessionWithAnNDeath() throws {
        var s = EdgeNodeSession(identity: withHost, lastBdSeq: BdSeq(3))
        _ = s.start(now: 1)
        _ = s.connected(now: 2, birth: certificate)
        _ = s.received(stateMessage(true, 10), now: 3, birth: certificate)
        let actions = s.received(stateMessage(false, 20), now: 4, birth: certificate)
        let out = try published(actions)
        #expect(out.map(\.topic) == ["spBv1.0/north/NDEATH/site-7"])
        #expect(out[0].payload.metric(named: "bdSeq")?.value == .int64(4))
        #expect(actions.last == .disconnect)
        #expect(s.phase == .offline)
    }

    @Test func rebirthOnNodeControlRebirthKeepsTheBdSeqAndRestartsSeq() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: BdSeq(1))
        _ = s.start(now: 1)
        _ = s.connected(now: 2, birth: certificate)
        for _ in 0..<10 { _ = s.data(node: [SparkplugMetric(name: "Site/Import kW", value: .double(1))], devices: [], now: 3) }
        #expect(s.lastSeq == SparkplugSeq(12))
        let out = try published(s.received(rebirthCommand(), now: 4, birth: certificate))
        #expect(out.map(\.payload.seq) == [0, 1, 2])
        #expect(out[0].payload.metric(named: "bdSeq")?.value == .int64(2))
        // Another edge node's NCMD is not ours.
        let notOurs = s.received(rebirthCommand(edge: "site-8"), now: 5, birth: certificate)
        #expect(notOurs.isEmpty)
    }

    @Test func seqRunsOnAcrossDataAndWraps() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: nil)
        _ = s.start(now: 1)
        var seqs = try published(s.connected(now: 2, birth: certificate)).compactMap(\.payload.seq)
        for i in 0..<200 {
            let actions = s.data(node: [SparkplugMetric(name: "Site/Import kW", value: .double(Double(i)))],
                                 devices: [("c01", [SparkplugMetric(name: "Power kW", value: .double(Double(i)))])], now: 3)
            seqs += try published(actions).compactMap(\.payload.seq)
        }
        seqs += try published(s.deviceDeath("c02", now: 4)).compactMap(\.payload.seq)
        #expect(seqs.count == 3 + 400 + 1)
        for (i, seq) in seqs.enumerated() { #expect(seq == UInt8(i % 256)) }
    }

    @Test func bdSeqIncrementsPerSessionAndWrapsAcrossRestarts() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: BdSeq(253))
        var births: [Int64] = []
        var wills: [Int64] = []
        for _ in 0..<4 {
            let start = s.start(now: 1)
            if case .connect(let will) = start.last, case .int64(let b)? = try SparkplugPayload(decoding: will.payload).metric(named: "bdSeq")?.value {
                wills.append(b)
            }
            if case .int64(let b)? = try published(s.connected(now: 2, birth: certificate))[0].payload.metric(named: "bdSeq")?.value {
                births.append(b)
            }
            s.disconnected()
        }
        #expect(wills == [254, 255, 0, 1])
        #expect(births == wills)
        // A restart resumes from what was saved.
        var restarted = EdgeNodeSession(identity: identity, lastBdSeq: s.bdSeq)
        let resumed = restarted.start(now: 1)
        #expect(resumed.first == .saveBdSeq(BdSeq(2)))
    }

    @Test func commandsAreValidatedAndRoutedByDevice() throws {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: nil, nodeCommands: .node(["Site/Cap kW": .double]),
                                deviceCommands: ["c01": CommandSchema(["Mode": .string])])
        _ = s.start(now: 1)
        _ = s.connected(now: 2, birth: certificate)
        func cmd(_ topic: String, _ name: String, _ value: PBMetric.OneOf_Value) -> MQTTMessage {
            var m = PBMetric()
            m.name = name
            m.value = value
            var p = PBPayload()
            p.timestamp = 1
            p.metrics = [m]
            return MQTTMessage(topic: topic, payload: (try? p.serializedBytes()) ?? [], qos: 0, retain: false)
        }
        let a = s.received(cmd("spBv1.0/north/NCMD/site-7", "Site/Cap kW", .doubleValue(8000)), now: 3, birth: certificate)
        #expect(a == [.command(device: nil, [SparkplugCommand(name: "Site/Cap kW", value: .double(8000))])])
        let b = s.received(cmd("spBv1.0/north/NCMD/site-7", "Site/Cap MW", .doubleValue(8)), now: 3, birth: certificate)
        #expect(b == [.rejected(device: nil, .unknownMetric("Site/Cap MW"))])
        let c = s.received(cmd("spBv1.0/north/DCMD/site-7/c01", "Mode", .stringValue("curtail")), now: 3, birth: certificate)
        #expect(c == [.command(device: "c01", [SparkplugCommand(name: "Mode", value: .string("curtail"))])])
        let d = s.received(cmd("spBv1.0/north/DCMD/site-7/c01", "Mode", .booleanValue(true)), now: 3, birth: certificate)
        #expect(d == [.rejected(device: "c01", .wrongDataType(metric: "Mode", expected: .string, received: "boolean_value"))])
        let e = s.received(cmd("spBv1.0/north/DCMD/site-7/c99", "Mode", .stringValue("x")), now: 3, birth: certificate)
        #expect(e == [.rejected(device: "c99", .unknownDevice("c99"))])
        // A rejected command publishes nothing and leaves seq where it was.
        #expect(s.lastSeq == SparkplugSeq(2))
    }

    /// A refused payload still names itself: the schema's echo metrics it carried with the right datatype come back in
    /// the rejection (a mistyped one does not), for the node and for a device (known or not).
    @Test func rejectionsEchoTheSchemasEchoMetrics() throws {
        let echo: [String: SparkplugDataType] = ["Command/ID": .string, "Command/Timestamp": .dateTime]
        var s = EdgeNodeSession(identity: identity, lastBdSeq: nil,
                                nodeCommands: CommandSchema(["Site/Cap kW": .double, "Command/ID": .string, "Command/Timestamp": .dateTime], echo: echo),
                                deviceCommands: ["c01": CommandSchema(["Mode": .string, "Command/ID": .string], echo: echo)])
        func message(_ topic: String, _ metrics: [SparkplugMetric]) -> MQTTMessage {
            MQTTMessage(topic: topic, payload: SparkplugPayload(timestamp: 1, seq: nil, metrics: metrics).encoded(), qos: 0, retain: false)
        }
        let id = SparkplugMetric(name: "Command/ID", value: .string("cmd-9"))
        let badTime = SparkplugMetric(name: "Command/Timestamp", value: .int64(5))
        let a = s.received(message("spBv1.0/north/NCMD/site-7", [id, badTime, SparkplugMetric(name: "Site/Cap MW", value: .double(8))]),
                           now: 3, birth: certificate)
        // Refused for its first problem (the mistyped timestamp), which is not echoed.
        #expect(a == [.rejected(device: nil, .wrongDataType(metric: "Command/Timestamp", expected: .dateTime, received: "Int64"),
                                echo: ["Command/ID": .string("cmd-9")])])
        let b = s.received(message("spBv1.0/north/DCMD/site-7/c01", [id, SparkplugMetric(name: "Mode", value: .boolean(true))]),
                           now: 3, birth: certificate)
        #expect(b == [.rejected(device: "c01", .wrongDataType(metric: "Mode", expected: .string, received: "Boolean"),
                                echo: ["Command/ID": .string("cmd-9")])])
        let c = s.received(message("spBv1.0/north/DCMD/site-7/c99", [id]), now: 3, birth: certificate)
        #expect(c == [.rejected(device: "c99", .unknownDevice("c99"), echo: ["Command/ID": .string("cmd-9")])])
        // Node Control/Rebirth stays in a schema given with an echo.
        #expect(s.nodeCommands.metrics[SparkplugMetricName.rebirth] == .boolean && s.nodeCommands.echo == echo)
    }
}
