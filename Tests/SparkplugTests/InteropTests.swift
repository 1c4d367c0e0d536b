// Our edge node against software we did not write: Debian's mosquitto as the broker and the
// pinned pysparkplug host (Tests/peers/sparkplug_host.py), which decodes every message with its
// own schema and checks seq and bdSeq.

import Foundation
import Testing
@testable import Sparkplug
import TestSupport

func nextEdgeEvent(_ it: inout AsyncStream<EdgeNodeEvent>.AsyncIterator, _ match: (EdgeNodeEvent) -> Bool) async -> EdgeNodeEvent? {
    while let e = await it.next() {
        if match(e) { return e }
    }
    return nil
}

@Suite("Sparkplug edge node against mosquitto and pysparkplug", .serialized, .timeLimit(.minutes(2)))
struct SparkplugInteropTests {
    @Test func lifecycleCheckedByAnIndependentHost() async throws {
        let broker = try await MosquittoBroker.start(debugLog: true)
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(broker.port)", "hq", "100"])
        defer { host.stop() }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = FileBdSeqStore(path: dir.appendingPathComponent("bdseq").path)
        try store.save(BdSeq(254))  // as left by an earlier run: this run's sessions are 255, then 0

        let identity = try EdgeNodeIdentity(group: "north", edge: "site-7", primaryHostID: "hq")
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-site-7"))
        let runner = try EdgeNodeRunner(client: client, identity: identity, store: store, birth: certificate,
                                        retryDelay: .milliseconds(50),
                                        now: { UInt64(Date().timeIntervalSince1970 * 1000) })
        let control = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "test-control"))
        defer { control.close() }
        var controlEvents = control.events.makeAsyncIterator()
        try await control.connect(will: nil)
        let controlUp = await nextEvent(&controlEvents, isConnected)
        #expect(controlUp == .connected)

        var events = runner.events.makeAsyncIterator()
        async let running: Void = runner.run()

        // Connected, but no birth until the primary host says online.
        let connected = await nextEdgeEvent(&events) { if case .connected = $0 { true } else { false } }
        #expect(connected == .connected(BdSeq(255)))
        #expect(await runner.session.phase == .awaitingHost)
        #expect(await runner.publishData(node: [SparkplugMetric(name: "Site/Import kW", value: .double(1))]) == false)
        try await control.publish(topic: "switchyard-test/control", payload: Array("online".utf8), qos: 1)
        let born1 = await nextEdgeEvent(&events) { if case .born = $0 { true } else { false } }
        #expect(born1 == .born(BdSeq(255)))

        func data(_ i: Int, historical: Bool = false) async -> Bool {
            await runner.publishData(
                node: [SparkplugMetric(name: "Site/Import kW", timestamp: UInt64(i), value: .double(Double(i)), isHistorical: historical)],
                devices: i % 3 == 0 ? [("c01", [SparkplugMetric(name: "Power kW", value: .double(Double(i)))])] : [])
        }
        // The host asks for a rebirth after 100 data messages.
        for i in 0..<150 { #expect(await data(i)) }
        let born2 = await nextEdgeEvent(&events) { if case .born = $0 { true } else { false } }
        #expect(born2 == .born(BdSeq(255)))
        // Enough to wrap seq past 255.
        for i in 150..<450 { #expect(await data(i)) }
        #expect(await data(450, historical: true))

        // The connection ends without DISCONNECT: the broker publishes the NDEATH will; the runner
        // starts the next session (bdSeq 0) and, the host's STATE being retained online, births at once.
        try await client.dropConnection()
        let offline = await nextEdgeEvent(&events) { if case .offline = $0 { true } else { false } }
        #expect(offline != nil)
        let born3 = await nextEdgeEvent(&events) { if case .born = $0 { true } else { false } }
        #expect(born3 == .born(BdSeq(0)))
        for i in 451..<460 { #expect(await data(i)) }
        #expect(try store.load() == BdSeq(0))

        // "done" goes through the edge node's own connection, after its data: the broker delivers one
        // client's messages in order, so the host has seen everything before it gives its verdict.
        try await client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 0)
        _ = await host.waitForExit()
        let output = host.standardOutput
        client.close()
        await running

        let (_, verdict) = try lastJSONLine(output)
        #expect(verdict["errors"] as? [String] == [])
        let counts = verdict["counts"] as? [String: Int] ?? [:]
        if counts["NBIRTH"] != 3 { print("broker log:\n\(broker.log)") }
        #expect(counts["NBIRTH"] == 3)
        #expect(counts["DBIRTH"] == 6)
        #expect(counts["NDEATH"] == 1)
        #expect(counts["NDATA"] == 460)
        #expect(counts["DDATA"] == 154)
        #expect(verdict["birth_bdseqs"] as? [Int] == [255, 255, 0])
        #expect(verdict["death_bdseqs"] as? [Int] == [255])
        #expect(verdict["birth_before_state"] as? Bool == false)
        #expect(verdict["rebirth_sent"] as? Bool == true)
        #expect((verdict["wraps"] as? Int ?? 0) >= 1)
        #expect(verdict["historical_metrics"] as? Int == 1)
        // Datatypes as the host decoded them: bdSeq Int64 (4), Double (10), Boolean (11).
        let nodeMetrics = verdict["node_metrics"] as? [String: Int] ?? [:]
        #expect(nodeMetrics == ["bdSeq": 4, "Node Control/Rebirth": 11, "Site/Import kW": 10])
        #expect((verdict["device_metrics"] as? [String: [String: Int]])?["c02"] == ["Power kW": 10])
    }
}
