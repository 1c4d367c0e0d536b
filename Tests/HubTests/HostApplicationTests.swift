// The primary host against Debian's mosquitto (a free loopback port per test), our own edge nodes
// (EdgeNodeRunner), and an edge node we did not write (pysparkplug 0.6.1's EdgeNode, Tests/peers/pysparkplug_edge.py).
// Every wait is on an event (the host's, the runner's, or an MQTT observer's), never on time.

import Foundation
@testable import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

func wallMS() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

/// A host in its own ServiceGroup, with its events in a stream.
struct RunningHost {
    let host: HostApplication
    let group: ServiceGroup
    let sink: MemoryRecordSink
    var events: AsyncStream<HostEvent>.AsyncIterator

    static func start(broker: MosquittoBroker, hostID: String = "hq", sink: MemoryRecordSink = MemoryRecordSink(),
                      queue: Int = 10_000) throws -> (RunningHost, ServiceGroup) {
        var logger = Logger(label: "hub-test")
        logger.logLevel = .error
        let (events, eventsIn) = AsyncStream.makeStream(of: HostEvent.self)
        let host = try HostApplication(
            configuration: HostConfiguration(hostID: hostID,
                                             mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hub-\(hostID)-\(UUID().uuidString.prefix(8))"),
                                             recordQueueCapacity: queue, retryDelay: .milliseconds(100)),
            sink: sink, logger: logger, observe: { eventsIn.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host], gracefulShutdownSignals: [], logger: logger))
        return (RunningHost(host: host, group: group, sink: sink, events: events.makeAsyncIterator()), group)
    }

    /// Waits for a host event matching `match`.
    @discardableResult
    mutating func next(_ match: (HostEvent) -> Bool) async -> HostEvent? {
        while let e = await events.next() { if match(e) { return e } }
        return nil
    }

    /// Waits (event by event) until the host's status satisfies `condition`; returns that status.
    mutating func until(_ condition: ([SiteStatus]) -> Bool) async -> [SiteStatus]? {
        let now = await host.status()
        if condition(now) { return now }
        while await events.next() != nil {
            let s = await host.status()
            if condition(s) { return s }
        }
        return nil
    }
}

func nextRunnerEvent(_ it: inout AsyncStream<EdgeNodeEvent>.AsyncIterator, _ match: (EdgeNodeEvent) -> Bool) async -> EdgeNodeEvent? {
    while let e = await it.next() { if match(e) { return e } }
    return nil
}

func isBorn(_ e: EdgeNodeEvent) -> Bool { if case .born = e { true } else { false } }
func isOnline(_ e: HostEvent) -> Bool { if case .online = e { true } else { false } }

/// A bdSeq store in memory (the runner's sessions need one).
final class MemoryBdSeqStore: BdSeqStore, @unchecked Sendable {
    private let value = Mutex<BdSeq?>(nil)
    init(_ start: BdSeq? = nil) { value.withLock { $0 = start } }
    func load() throws -> BdSeq? { value.withLock { $0 } }
    func save(_ bdSeq: BdSeq) throws { value.withLock { $0 = bdSeq } }
}

let ourBirth = BirthCertificate(
    node: [
        SparkplugMetric(name: FleetMetricName.importKW, value: .double(31_000)),
        SparkplugMetric(name: FleetMetricName.capKW, value: .double(39_500)),
        SparkplugMetric(name: FleetMetricName.miningMW, value: .double(24.5)),
        SparkplugMetric(name: FleetMetricName.inferenceMW, value: .double(6.5)),
        SparkplugMetric(name: FleetMetricName.price, value: .double(42.5)),
        SparkplugMetric(name: FleetMetricName.mode, value: .string("normal")),
        SparkplugMetric(name: FleetMetricName.configVersion, value: .int64(3)),
    ],
    devices: [
        ("c01", [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(1_200)),
                 SparkplugMetric(name: FleetMetricName.up, value: .boolean(true))]),
        ("meter", [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(31_000))]),
    ])

func makeRunner(broker: MosquittoBroker, group: String = "ERCOT", edge: String, primaryHost: String?,
                store: MemoryBdSeqStore = MemoryBdSeqStore()) throws -> EdgeNodeRunner {
    let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "edge-\(edge)"))
    return try EdgeNodeRunner(client: client, identity: EdgeNodeIdentity(group: group, edge: edge, primaryHostID: primaryHost),
                              store: store, birth: ourBirth, retryDelay: .milliseconds(50), now: { wallMS() })
}

func births(_ records: [HubRecord], device: String? = nil) -> [BirthRecord] {
    records.compactMap { if case .birth(let b) = $0, b.device == device { b } else { nil } }
}

@Suite("Hub primary host against mosquitto", .serialized, .timeLimit(.minutes(2)))
struct HostApplicationTests {
    @Test func ourEdgeNodeAppearsRebirthsOnAGapAndDiesByItsWill() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        var (host, group) = try RunningHost.start(broker: broker)
        async let hostDone: Void = group.run()
        #expect(await host.next(isOnline) != nil)

        let store = MemoryBdSeqStore(BdSeq(41))
        let runner = try makeRunner(broker: broker, edge: "site-7", primaryHost: "hq", store: store)
        var edgeEvents = runner.events.makeAsyncIterator()
        async let edgeDone: Void = runner.run()
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) == .born(BdSeq(42)))

        // The site, its devices and values, as the host holds them.
        let key = SiteKey(group: "ERCOT", edge: "site-7")
        let born = await host.until { $0.first?.devicesOnline == 2 }
        let row = try #require(born?.first)
        #expect(row.site == key && row.liveness == .online && row.bdSeq == 42 && row.births == 1)
        #expect(row.importKW == 31_000 && row.capKW == 39_500 && row.miningMW == 24.5 && row.inferenceMW == 6.5)
        #expect(row.priceUsdPerMWh == 42.5 && row.governorMode == "normal" && row.configVersion == 3)
        let model = await host.host.snapshot()
        #expect(model.nodes[key]?.devices["c01"]?.metrics[FleetMetricName.powerKW]?.value == .double(1_200))
        #expect(model.nodes[key]?.devices["c01"]?.metrics[FleetMetricName.up]?.dataType == .boolean)

        // Data moves the live values.
        #expect(await runner.publishData(node: [SparkplugMetric(name: FleetMetricName.importKW, timestamp: wallMS(), value: .double(30_000))],
                                         devices: [("c01", [SparkplugMetric(name: FleetMetricName.powerKW, value: .double(900))])]))
        #expect(await host.until { $0.first?.importKW == 30_000 } != nil)

        // A forced gap: an NDATA on the node's own connection with seq last + 3. The host records the gap and asks
        // for a rebirth; the node honours it (NBIRTH again, same bdSeq); the host counts a second birth.
        let last = try #require(await runner.session.lastSeq)
        let skipped = SparkplugPayloads.data(timestamp: wallMS(), seq: SparkplugSeq(last.value &+ 3),
                                             metrics: [SparkplugMetric(name: FleetMetricName.importKW, value: .double(29_000))])
        try await runner.client.publish(topic: "spBv1.0/ERCOT/NDATA/site-7", payload: skipped.encoded())
        #expect(await host.next { $0 == .rebirthRequested(key) } != nil)
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) == .born(BdSeq(42)))
        let reborn = await host.until { $0.first?.births == 2 && $0.first?.devicesOnline == 2 }
        #expect(reborn?.first?.liveness == .online)

        // The connection dropped without DISCONNECT: the broker publishes the NDEATH will (bdSeq 42); the runner's
        // next session (bdSeq 43) is born again, and the host has recorded the death between the two births.
        try await runner.client.dropConnection()
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) == .born(BdSeq(43)))
        let third = await host.until { $0.first?.births == 3 && $0.first?.bdSeq == 43 }
        #expect(third?.first?.liveness == .online)

        // The client closed (as a crash would): the will again, and this time no new session.
        await runner.client.close()
        await edgeDone
        let dead = await host.until { $0.first?.liveness == .offline }
        #expect(dead?.first?.devicesOnline == 0)

        await group.triggerGracefulShutdown()
        try await hostDone
        let records = await host.sink.records
        #expect(births(records).map(\.bdSeq) == [42, 42, 43])
        #expect(births(records, device: "c01").count == 3 && births(records, device: "meter").count == 3)
        let expected = last.value &+ 1
        let received = last.value &+ 3
        #expect(records.contains { if case let .sequenceGap(site, e, r, _) = $0 { site == key && e == expected && r == received } else { false } })
        let deaths = records.compactMap { if case let .death(site, device, bdSeq, _) = $0, site == key, device == nil { bdSeq } else { nil } }
        #expect(deaths == [42, 43])
        // The death of session 42 lies between the second and third births.
        let order = records.compactMap { r -> String? in
            switch r {
            case .birth(let b) where b.device == nil: "birth \(b.bdSeq ?? 999)"
            case let .death(_, nil, bdSeq, _): "death \(bdSeq ?? 999)"
            default: nil
            }
        }
        #expect(order == ["birth 42", "birth 42", "death 42", "birth 43", "death 43"])
        #expect(await host.host.droppedRecords == 0)
    }

    @Test func anIndependentPysparkplugEdgeNodeAppearsWithNamesValuesTypesAndDeath() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        var (host, group) = try RunningHost.start(broker: broker)
        async let hostDone: Void = group.run()
        #expect(await host.next(isOnline) != nil)

        let edge = try await PeerProcess.python("pysparkplug_edge.py", ["\(broker.port)", "PJM", "py-site"])
        defer { edge.stop() }
        let key = SiteKey(group: "PJM", edge: "py-site")
        let seen = await host.until { rows in
            rows.first?.importKW == 1500.25 && rows.first?.devicesOnline == 1
        }
        let row = try #require(seen?.first)
        #expect(row.site == key && row.liveness == .online && row.bdSeq == 0 && row.births == 1)
        #expect(row.capKW == 2000 && row.governorMode == "normal" && row.configVersion == 12)
        // DDATA arrives after the NDATA: wait for it too.
        var model = await host.host.snapshot()
        while model.nodes[key]?.devices["meter-1"]?.metrics["Power kW"]?.value != .double(510) {
            #expect(await host.events.next() != nil)
            model = await host.host.snapshot()
        }
        let node = try #require(model.nodes[key])
        // Names and datatypes as pysparkplug declared them, and the values.
        let types = node.metrics.mapValues(\.dataType)
        #expect(types == ["bdSeq": .int64, "Site/Import kW": .double, "Site/Cap In Force kW": .double,
                          "Site/Governor Mode": .string, "Site/Config Version": .int64, "Site/Active Events": .int32,
                          "Temperature C": .float, "Counter": .uint32, "Enabled": .boolean])
        #expect(node.metrics["Temperature C"]?.value == .float(21.5))
        #expect(node.metrics["Counter"]?.value == .uint32(42))
        #expect(node.metrics["Enabled"]?.value == .boolean(true))
        #expect(node.devices["meter-1"]?.metrics["Up"]?.value == .boolean(true))
        #expect(node.devices["meter-1"]?.metrics["Power kW"]?.dataType == .double)
        #expect(node.sequenceGaps == 0)

        // Killed: the broker publishes its will, NDEATH with the NBIRTH's bdSeq 0.
        edge.signal(SIGKILL)
        let dead = await host.until { $0.first?.liveness == .offline }
        #expect(dead?.first?.devicesOnline == 0)

        await group.triggerGracefulShutdown()
        try await hostDone
        let records = await host.sink.records
        #expect(births(records).map(\.bdSeq) == [0])
        #expect(births(records, device: "meter-1").count == 1)
        #expect(records.contains { if case let .death(site, device, bdSeq, _) = $0 { site == key && device == nil && bdSeq == 0 } else { false } })
        // The historical value is a historical sample; the live one stayed the live value (checked above).
        let importSamples = records.flatMap { r -> [MetricSample] in if case .samples(let s) = r { s } else { [] } }
            .filter { $0.name == "Site/Import kW" }
        #expect(importSamples.map(\.value) == [.double(1234.5), .double(1500.25), .double(999)])
        #expect(importSamples.map(\.historical) == [false, false, true])
        #expect(!records.contains { if case .sequenceGap = $0 { true } else { false } })
    }

    /// pysparkplug 0.6.1's clean disconnect publishes an NDEATH whose bdSeq is the *next* session's (its connect
    /// callback prepares the next bdSeq metric, and disconnect() sends that one), not the NBIRTH's. A host that
    /// follows the specification ignores it; the DISCONNECT discards the will, so the node stays born until stale.
    @Test func pysparkplugsCleanDisconnectSendsAnNDEATHWithTheWrongBdSeqWhichIsIgnored() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        var (host, group) = try RunningHost.start(broker: broker)
        async let hostDone: Void = group.run()
        #expect(await host.next(isOnline) != nil)

        let edge = try await PeerProcess.python("pysparkplug_edge.py", ["\(broker.port)", "PJM", "py-clean"])
        defer { edge.stop() }
        let key = SiteKey(group: "PJM", edge: "py-clean")
        #expect(await host.until { $0.first?.importKW == 1500.25 && $0.first?.devicesOnline == 1 } != nil)
        edge.signal(SIGUSR1)
        let death = await host.next { if case .received(.node(_, .ndeath, _), _) = $0 { true } else { false } }
        guard case let .received(_, problem)? = death else { Issue.record("no NDEATH"); return }
        #expect(problem?.contains("bdSeq 1, not the session's 0") == true)
        let rows = await host.host.status()
        #expect(rows.first?.site == key && rows.first?.liveness == .online && rows.first?.bdSeq == 0)

        await group.triggerGracefulShutdown()
        try await hostDone
        #expect(!(await host.sink.records).contains { if case .death = $0 { true } else { false } })
    }

    @Test func ourEdgeNodeWaitsForThisHostsStateAndDiesWhenItGoesOffline() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        // An observer of the whole namespace, to check the order of what the broker relays.
        let observer = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "observer"))
        defer { observer.close() }
        var seen = observer.events.makeAsyncIterator()
        try await observer.connect(will: nil)
        #expect(await seen.next() == .connected)
        try await observer.subscribe("spBv1.0/#", qos: 1)

        // The edge node first: connected, but waiting for host "hq".
        let runner = try makeRunner(broker: broker, edge: "site-3", primaryHost: "hq")
        var edgeEvents = runner.events.makeAsyncIterator()
        async let edgeDone: Void = runner.run()
        #expect(await nextRunnerEvent(&edgeEvents) { if case .connected = $0 { true } else { false } } == .connected(BdSeq(0)))
        #expect(await runner.session.phase == .awaitingHost)
        #expect(await runner.publishData(node: [SparkplugMetric(name: FleetMetricName.importKW, value: .double(1))]) == false)

        // The host comes up: STATE online; the node is born and appears in the host.
        var (host, group) = try RunningHost.start(broker: broker)
        async let hostDone: Void = group.run()
        guard case let .online(firstState)? = await host.next(isOnline) else { Issue.record("host not online"); return }
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) == .born(BdSeq(0)))
        #expect(await host.until { $0.first?.devicesOnline == 2 && $0.first?.liveness == .online } != nil)

        // Graceful shutdown: STATE offline (retained); the node publishes NDEATH, disconnects, and its next session
        // waits for the host again.
        await group.triggerGracefulShutdown()
        try await hostDone
        #expect(await nextRunnerEvent(&edgeEvents) { if case .offline = $0 { true } else { false } } != nil)
        #expect(await nextRunnerEvent(&edgeEvents) { if case .connected = $0 { true } else { false } } == .connected(BdSeq(1)))

        // A second host process with the same id: the node is born (bdSeq 1) only after its STATE online.
        var (second, group2) = try RunningHost.start(broker: broker)
        async let secondDone: Void = group2.run()
        #expect(await second.next(isOnline) != nil)
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) == .born(BdSeq(1)))
        #expect(await second.until { $0.first?.bdSeq == 1 && $0.first?.devicesOnline == 2 } != nil)

        // What the observer saw, in the broker's order: STATE and the node's births and deaths.
        var log: [String] = []
        while log.filter({ $0.hasPrefix("NBIRTH") }).count < 2 {
            guard case .message(let m)? = await seen.next() else { break }
            guard let topic = try? SparkplugTopic(parsing: m.topic) else { continue }
            switch topic {
            case .state:
                let state = try HostState(parsing: m.payload)
                log.append("STATE \(state.online ? "online" : "offline") \(state.timestamp == firstState ? "first" : "second")")
            case .node(_, .nbirth, _):
                log.append("NBIRTH \(try SparkplugPayload(decoding: m.payload).metric(named: "bdSeq")?.value.map { "\($0)" } ?? "?")")
            case .node(_, .ndeath, _):
                log.append("NDEATH \(try SparkplugPayload(decoding: m.payload).metric(named: "bdSeq")?.value.map { "\($0)" } ?? "?")")
            default:
                continue
            }
        }
        // The node's explicit NDEATH is QoS 1 and followed at once by DISCONNECT; when the PUBACK has not arrived by
        // then, libmosquitto sends the same message again (DUP, same message id) right after the next CONNACK, before
        // anything else of the new session (seen in mosquitto's debug log). A host sees that NDEATH twice: the same
        // bdSeq, so the second changes nothing. Consecutive repeats are counted as one here.
        log = log.enumerated().filter { $0.offset == 0 || log[$0.offset - 1] != $0.element || !$0.element.hasPrefix("NDEATH") }.map(\.element)
        #expect(log == ["STATE online first", "NBIRTH int64(0)", "STATE offline first", "NDEATH int64(0)",
                        "STATE online second", "NBIRTH int64(1)"])

        // The node first, while it is born (closed mid-reconnection, the runner would retry without end).
        await runner.client.close()
        await edgeDone
        await group2.triggerGracefulShutdown()
        try await secondDone
    }

    @Test func aSlowSinkLosesNothingSilently() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let sink = GatedSink()
        var logger = Logger(label: "hub-test")
        logger.logLevel = .critical
        let (events, eventsIn) = AsyncStream.makeStream(of: HostEvent.self)
        let host = try HostApplication(
            configuration: HostConfiguration(hostID: "slow", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hub-slow"),
                                             recordQueueCapacity: 4, retryDelay: .milliseconds(100)),
            sink: sink, logger: logger, observe: { eventsIn.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host], gracefulShutdownSignals: [], logger: logger))
        var it = events.makeAsyncIterator()
        async let hostDone: Void = group.run()
        while let e = await it.next() { if isOnline(e) { break } }

        // 20 messages while the sink is stuck on the first: the first is taken by the writer, 4 wait, 15 are dropped,
        // each counted and reported.
        let runner = try makeRunner(broker: broker, edge: "busy", primaryHost: nil)
        var edgeEvents = runner.events.makeAsyncIterator()
        async let edgeDone: Void = runner.run()
        #expect(await nextRunnerEvent(&edgeEvents, isBorn) != nil)  // NBIRTH + 2 DBIRTH: 3 messages
        for i in 0..<17 {
            #expect(await runner.publishData(node: [SparkplugMetric(name: FleetMetricName.importKW, value: .double(Double(i)))]))
        }
        var received = 0
        var droppedTotal = 0
        while received < 20, let e = await it.next() {
            if case .received = e { received += 1 }
            if case .recordsDropped(let total) = e { droppedTotal = total }
        }
        #expect(host.droppedRecords > 0 && droppedTotal == host.droppedRecords)
        // The model saw every message all the same.
        #expect(await host.status().first?.importKW == 16)
        // 23 records in all (NBIRTH and the two DBIRTHs: 2 each; 17 NDATA: 1 each). The writer holds what was queued
        // when it took its first write (every batch waiting, one write), at most 4 batches wait behind it, and the
        // rest are dropped.
        #expect(host.droppedRecords > 0)
        await sink.open()
        await group.triggerGracefulShutdown()
        try await hostDone
        await runner.client.close()
        await edgeDone
        // Nothing lost silently: what the sink got and what was counted as dropped make up every record.
        #expect(await sink.records.count + host.droppedRecords == 23)
    }
}

/// A sink whose writes wait until `open()` (then everything goes through).
actor GatedSink: FleetRecordSink {
    var records: [HubRecord] = []
    var batches = 0
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func write(_ batch: [HubRecord]) async throws {
        if !isOpen { await withCheckedContinuation { waiting.append($0) } }
        records.append(contentsOf: batch)
        batches += 1
    }

    func open() {
        isOpen = true
        for w in waiting { w.resume() }
        waiting.removeAll()
    }
}
