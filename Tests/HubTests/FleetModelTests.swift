// FleetModel on its own: pure, on injected times (ms since the epoch), no broker.

import Hub
import Sparkplug
import Testing

/// Builds the messages of one edge node, seq counted as the specification wants (or not, when a test says so).
struct NodeScript {
    let group: String
    let edge: String
    var seq: UInt8 = 0

    init(group: String = "ERCOT", edge: String = "site-1") {
        self.group = group
        self.edge = edge
    }

    var key: SiteKey { SiteKey(group: group, edge: edge) }

    func topic(_ type: SparkplugMessageType, device: String? = nil) -> String {
        device.map { "spBv1.0/\(group)/\(type.rawValue)/\(edge)/\($0)" } ?? "spBv1.0/\(group)/\(type.rawValue)/\(edge)"
    }

    mutating func nbirth(bdSeq: UInt8, at: UInt64, _ metrics: [SparkplugMetric]) -> (String, [UInt8]) {
        seq = 0
        return (topic(.nbirth), SparkplugPayloads.nbirth(timestamp: at, bdSeq: BdSeq(bdSeq), metrics: metrics).encoded())
    }

    mutating func dbirth(_ device: String, at: UInt64, _ metrics: [SparkplugMetric]) -> (String, [UInt8]) {
        seq &+= 1
        return (topic(.dbirth, device: device), SparkplugPayloads.dbirth(timestamp: at, seq: SparkplugSeq(seq), metrics: metrics).encoded())
    }

    mutating func ndata(at: UInt64, _ metrics: [SparkplugMetric], skip: UInt8 = 0) -> (String, [UInt8]) {
        seq &+= 1 &+ skip
        return (topic(.ndata), SparkplugPayloads.data(timestamp: at, seq: SparkplugSeq(seq), metrics: metrics).encoded())
    }

    mutating func ddata(_ device: String, at: UInt64, _ metrics: [SparkplugMetric]) -> (String, [UInt8]) {
        seq &+= 1
        return (topic(.ddata, device: device), SparkplugPayloads.data(timestamp: at, seq: SparkplugSeq(seq), metrics: metrics).encoded())
    }

    mutating func ddeath(_ device: String, at: UInt64) -> (String, [UInt8]) {
        seq &+= 1
        return (topic(.ddeath, device: device), SparkplugPayloads.ddeath(timestamp: at, seq: SparkplugSeq(seq)).encoded())
    }

    func ndeath(bdSeq: UInt8, at: UInt64) -> (String, [UInt8]) {
        (topic(.ndeath), SparkplugPayloads.ndeath(timestamp: at, bdSeq: BdSeq(bdSeq)).encoded())
    }
}

extension FleetModel {
    mutating func take(_ message: (String, [UInt8]), now: UInt64) -> Outcome {
        receive(topic: message.0, payload: message.1, now: now)
    }
}

func importKW(_ v: Double, at: UInt64? = nil, historical: Bool = false) -> SparkplugMetric {
    SparkplugMetric(name: FleetMetricName.importKW, timestamp: at, value: .double(v), isHistorical: historical)
}

let siteMetrics: [SparkplugMetric] = [
    importKW(31_000),
    SparkplugMetric(name: FleetMetricName.capKW, value: .double(39_500)),
    SparkplugMetric(name: FleetMetricName.miningMW, value: .double(24.5)),
    SparkplugMetric(name: FleetMetricName.inferenceMW, value: .double(6.5)),
    SparkplugMetric(name: FleetMetricName.price, value: .double(42.5)),
    SparkplugMetric(name: FleetMetricName.mode, value: .string("normal")),
    SparkplugMetric(name: FleetMetricName.configVersion, value: .int64(7)),
]

func gaps(_ records: [HubRecord]) -> [HubRecord] {
    records.filter { if case .sequenceGap = $0 { true } else { false } }
}

func samples(_ records: [HubRecord]) -> [MetricSample] {
    records.flatMap { r -> [MetricSample] in if case .samples(let s) = r { s } else { [] } }
}

@Suite struct FleetModelTests {
    @Test func aBirthAndItsDataMakeASiteRow() throws {
        var model = FleetModel()
        var node = NodeScript()
        let birth = model.take(node.nbirth(bdSeq: 4, at: 1_000, siteMetrics), now: 1_010)
        #expect(birth.rebirth == nil && birth.problem == nil)
        guard case .birth(let record)? = birth.records.first else { Issue.record("no birth record"); return }
        #expect(record.bdSeq == 4 && record.device == nil && record.site == node.key)
        // bdSeq, Node Control/Rebirth and the seven site metrics, as samples too.
        #expect(samples(birth.records).count == 9)
        let dbirth = model.take(node.dbirth("c01", at: 1_000, [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(1_200))]), now: 1_020)
        #expect(dbirth.problem == nil)
        _ = model.take(node.ndata(at: 2_000, [importKW(30_500)]), now: 2_005)

        let rows = model.status(now: 2_100)
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row.region == "ERCOT" && row.edge == "site-1")
        #expect(row.importKW == 30_500 && row.capKW == 39_500 && row.miningMW == 24.5 && row.inferenceMW == 6.5)
        #expect(row.priceUsdPerMWh == 42.5 && row.governorMode == "normal" && row.configVersion == 7)
        #expect(row.lastSeen == 2_005 && row.liveness == .online && row.devices == 1 && row.devicesOnline == 1)
        #expect(row.births == 1 && row.bdSeq == 4)
        #expect(model.nodes[node.key]?.devices["c01"]?.metrics[FleetMetricName.powerKW]?.value == .double(1_200))
    }

    @Test func seqWrapsFrom255To0WithoutAGap() {
        var model = FleetModel()
        var node = NodeScript()
        _ = model.take(node.nbirth(bdSeq: 0, at: 1, siteMetrics), now: 1)
        _ = model.take(node.dbirth("c01", at: 1, [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(1))]), now: 1)
        var sawZero = false
        for i in 0..<600 {
            let message = i % 2 == 0
                ? node.ndata(at: UInt64(10 + i), [importKW(Double(i))])
                : node.ddata("c01", at: UInt64(10 + i), [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(Double(i)))])
            if node.seq == 0 { sawZero = true }
            let outcome = model.take(message, now: UInt64(10 + i))
            #expect(outcome.rebirth == nil && gaps(outcome.records).isEmpty && outcome.problem == nil)
        }
        #expect(sawZero)
        #expect(model.nodes[node.key]?.sequenceGaps == 0)
        #expect(model.nodes[node.key]?.metrics[FleetMetricName.importKW]?.value == .double(598))
    }

    @Test func aGapIsRecordedAndAsksForARebirthAtMostOncePerInterval() {
        var model = FleetModel(configuration: .init(staleAfterMS: 120_000, rebirthIntervalMS: 10_000))
        var node = NodeScript()
        _ = model.take(node.nbirth(bdSeq: 1, at: 1_000, siteMetrics), now: 1_000)
        _ = model.take(node.ndata(at: 2_000, [importKW(1)]), now: 2_000)  // seq 1
        let gap = model.take(node.ndata(at: 3_000, [importKW(2)], skip: 2), now: 3_000)  // seq 4, expected 2
        #expect(gaps(gap.records) == [.sequenceGap(site: node.key, expected: 2, received: 4, at: 3_000)])
        #expect(gap.rebirth == node.key)
        // The data itself is still used, and its seq is the new reference.
        #expect(model.nodes[node.key]?.metrics[FleetMetricName.importKW]?.value == .double(2))
        #expect(model.take(node.ndata(at: 3_500, [importKW(3)]), now: 3_500).records.count == 1)  // seq 5: fine

        // A second gap within 10 s: recorded, but no second request.
        let again = model.take(node.ndata(at: 4_000, [importKW(4)], skip: 1), now: 4_000)
        #expect(gaps(again.records).count == 1 && again.rebirth == nil)
        // After the interval: asked again.
        let later = model.take(node.ndata(at: 13_000, [importKW(5)], skip: 1), now: 13_000)
        #expect(gaps(later.records).count == 1 && later.rebirth == node.key)
        #expect(model.nodes[node.key]?.sequenceGaps == 3)

        // The rebirth: seq back to 0, no gap, births counted.
        let reborn = model.take(node.nbirth(bdSeq: 1, at: 14_000, siteMetrics), now: 14_000)
        #expect(gaps(reborn.records).isEmpty && reborn.rebirth == nil)
        #expect(model.status(now: 14_000).first?.births == 2)
    }

    @Test func dataWithoutABirthAsksForARebirthAndIsNotUsed() {
        var model = FleetModel()
        var node = NodeScript(edge: "site-9")
        node.seq = 17
        let outcome = model.take(node.ndata(at: 5_000, [importKW(12)]), now: 5_000)
        #expect(outcome.rebirth == node.key && outcome.records.isEmpty && outcome.problem != nil)
        #expect(model.status(now: 5_000).isEmpty)  // never born: no row
        #expect(model.liveness(of: node.key, now: 5_000) == .offline)

        // Born, then DDATA from a device that has no DBIRTH: not used, rebirth asked (the earlier request is 5 s old:
        // within the interval, so only after it).
        _ = model.take(node.nbirth(bdSeq: 0, at: 6_000, siteMetrics), now: 6_000)
        let stray = model.take(node.ddata("ghost", at: 7_000, [SparkplugMetric(name: "Power kW", value: .double(1))]), now: 16_000)
        #expect(stray.rebirth == node.key && samples(stray.records).isEmpty)
        #expect(model.nodes[node.key]?.devices["ghost"] == nil)
        // Its seq counted: the next message is not a gap.
        #expect(gaps(model.take(node.ndata(at: 17_000, [importKW(13)]), now: 17_000).records).isEmpty)
    }

    @Test func anNDEATHCountsOnlyWithTheSessionsBdSeq() {
        var model = FleetModel()
        var node = NodeScript()
        _ = model.take(node.nbirth(bdSeq: 8, at: 1_000, siteMetrics), now: 1_000)
        _ = model.take(node.dbirth("c01", at: 1_000, [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(1))]), now: 1_000)

        // A late will of the previous session (bdSeq 7): ignored.
        let stale = model.take(node.ndeath(bdSeq: 7, at: 1_500), now: 1_500)
        #expect(stale.records.isEmpty && stale.problem != nil)
        #expect(model.liveness(of: node.key, now: 1_600) == .online)
        #expect(model.nodes[node.key]?.devices["c01"]?.online == true)

        let death = model.take(node.ndeath(bdSeq: 8, at: 2_000), now: 2_000)
        #expect(death.records == [.death(site: node.key, device: nil, bdSeq: 8, at: 2_000)])
        #expect(model.liveness(of: node.key, now: 2_000) == .offline)
        #expect(model.status(now: 2_000).first?.devicesOnline == 0)
        // A second copy of the same NDEATH changes nothing and records nothing.
        #expect(model.take(node.ndeath(bdSeq: 8, at: 2_000), now: 2_100).records.isEmpty)
        // Data after the death: not used, rebirth asked.
        let after = model.take(node.ndata(at: 3_000, [importKW(5)]), now: 3_000)
        #expect(after.rebirth == node.key && after.records.isEmpty)
        #expect(model.status(now: 3_000).first?.importKW == 31_000)
    }

    @Test func historicalSamplesAreRecordedButNeverChangeLiveValues() {
        var model = FleetModel()
        var node = NodeScript()
        _ = model.take(node.nbirth(bdSeq: 0, at: 10_000, [importKW(100, at: 10_000)]), now: 10_000)
        // Backfill from before the birth, and one stamped after the live value: both historical.
        let backfill = model.take(node.ndata(at: 11_000, [importKW(50, at: 5_000, historical: true),
                                                          importKW(70, at: 20_000, historical: true)]), now: 11_000)
        #expect(samples(backfill.records).map(\.historical) == [true, true])
        #expect(samples(backfill.records).map(\.at) == [5_000, 20_000])
        #expect(samples(backfill.records).map(\.value) == [.double(50), .double(70)])
        #expect(model.nodes[node.key]?.metrics[FleetMetricName.importKW] == MetricState(dataType: .double, value: .double(100), at: 10_000))

        // A live value moves it; an older live value arriving late does not.
        _ = model.take(node.ndata(at: 12_000, [importKW(110, at: 12_000)]), now: 12_000)
        let late = model.take(node.ndata(at: 12_500, [importKW(90, at: 11_500)]), now: 12_500)
        #expect(samples(late.records).map(\.historical) == [false])  // recorded all the same
        #expect(model.status(now: 12_500).first?.importKW == 110)
    }

    @Test func onlineStaleAndOfflineFollowTheInjectedClock() {
        var model = FleetModel(configuration: .init(staleAfterMS: 120_000, rebirthIntervalMS: 10_000))
        var node = NodeScript()
        #expect(model.liveness(of: node.key, now: 0) == .offline)
        _ = model.take(node.nbirth(bdSeq: 0, at: 1_000, siteMetrics), now: 1_000)
        #expect(model.liveness(of: node.key, now: 1_000) == .online)
        #expect(model.liveness(of: node.key, now: 121_000) == .online)  // exactly at the bound
        #expect(model.liveness(of: node.key, now: 121_001) == .stale)
        #expect(model.status(now: 200_000).first?.liveness == .stale)
        _ = model.take(node.ndata(at: 200_000, [importKW(1)]), now: 200_000)
        #expect(model.liveness(of: node.key, now: 200_000) == .online)
        _ = model.take(node.ndeath(bdSeq: 0, at: 210_000), now: 210_000)
        #expect(model.liveness(of: node.key, now: 210_000) == .offline)
        #expect(model.status(now: 400_000).first?.liveness == .offline)
        #expect(model.status(now: 400_000).first?.lastSeen == 210_000)
    }

    @Test func aDeviceDeathAndRebirthAndTheSitesAreOrdered() {
        var model = FleetModel()
        var b = NodeScript(group: "PJM", edge: "b")
        var a = NodeScript(group: "ERCOT", edge: "z")
        _ = model.take(b.nbirth(bdSeq: 0, at: 1, siteMetrics), now: 1)
        _ = model.take(a.nbirth(bdSeq: 0, at: 1, siteMetrics), now: 1)
        _ = model.take(b.dbirth("m1", at: 1, [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(1))]), now: 1)
        let death = model.take(b.ddeath("m1", at: 2), now: 2)
        #expect(death.records == [.death(site: b.key, device: "m1", bdSeq: 0, at: 2)])
        #expect(model.nodes[b.key]?.devices["m1"]?.online == false)
        // DDATA for the dead device: not used until its DBIRTH.
        #expect(model.take(b.ddata("m1", at: 3, [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(2))]), now: 3).rebirth == b.key)
        #expect(model.status(now: 3).map(\.site) == [a.key, b.key])
    }

    @Test func malformedPayloadsAreRefusedWithAReason() {
        var model = FleetModel()
        let garbage: [UInt8] = [0xFF, 0x00, 0x13, 0x37]
        let outcome = model.receive(topic: "spBv1.0/ERCOT/NBIRTH/site-1", payload: garbage, now: 1)
        #expect(outcome.problem != nil && outcome.records.isEmpty)
        #expect(model.receive(topic: "spBv1.0/ERCOT/NBIRTH", payload: [], now: 1).problem != nil)
        #expect(model.receive(topic: "not/sparkplug", payload: [], now: 1).problem != nil)
        // An NBIRTH without bdSeq is refused.
        let noBdSeq = SparkplugPayload(timestamp: 1, seq: 0, metrics: [importKW(1)]).encoded()
        #expect(model.receive(topic: "spBv1.0/ERCOT/NBIRTH/site-1", payload: noBdSeq, now: 1).problem?.contains("bdSeq") == true)
        #expect(model.status(now: 1).isEmpty)
    }
}
