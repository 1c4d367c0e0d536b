// A new configuration changes the devices while the node is born: what the session publishes.

import Foundation
import Testing
@testable import Sparkplug
import TestSupport

@Suite("Edge node session: devices that come and go")
struct DeviceChangeTests {
    let identity = try! EdgeNodeIdentity(group: "north", edge: "site-7")
    let newSet = BirthCertificate(
        node: [SparkplugMetric(name: "Site/Import kW", value: .double(1200))],
        devices: [("c01", [SparkplugMetric(name: "Power kW", value: .double(300))]),
                  ("c03", [SparkplugMetric(name: "Power kW", value: .double(0))])])
    let schema = CommandSchema(["Mode": .string])

    func born() -> EdgeNodeSession {
        var s = EdgeNodeSession(identity: identity, lastBdSeq: BdSeq(4), deviceCommands: ["c01": schema, "c02": schema])
        _ = s.start(now: 1)
        _ = s.connected(now: 2, birth: certificate)
        for _ in 0..<3 { _ = s.data(node: [SparkplugMetric(name: "Site/Import kW", value: .double(1))], devices: [], now: 3) }
        return s
    }

    func dcmd(_ device: String) -> MQTTMessage {
        var m = PBMetric()
        m.name = "Mode"
        m.value = .stringValue("auto")
        var p = PBPayload()
        p.timestamp = 1
        p.metrics = [m]
        return MQTTMessage(topic: "spBv1.0/north/DCMD/site-7/\(device)", payload: (try? p.serializedBytes()) ?? [], qos: 0, retain: false)
    }

    /// c02 gone, c03 new: DDEATH c02 (seq on from the data), then NBIRTH (seq 0, the same bdSeq) and a DBIRTH per
    /// device of the new set, in order; DCMD now goes to c03 and not to c02.
    @Test func aDeviceGoneIsDeadAndANewOneRebirthsTheNode() throws {
        var s = born()
        #expect(s.lastSeq == SparkplugSeq(5))
        let out = try published(s.devicesChanged(removed: ["c02"], added: ["c03"], deviceCommands: ["c01": schema, "c03": schema],
                                                 now: 4, birth: newSet))
        #expect(out.map(\.topic) == ["spBv1.0/north/DDEATH/site-7/c02", "spBv1.0/north/NBIRTH/site-7",
                                      "spBv1.0/north/DBIRTH/site-7/c01", "spBv1.0/north/DBIRTH/site-7/c03"])
        #expect(out.map(\.payload.seq) == [6, 0, 1, 2])
        #expect(out[1].payload.metric(named: "bdSeq")?.value == .int64(5))
        #expect(s.received(dcmd("c03"), now: 5, birth: newSet) == [.command(device: "c03", [SparkplugCommand(name: "Mode", value: .string("auto"))])])
        #expect(s.received(dcmd("c02"), now: 5, birth: newSet).first.map { if case .rejected(_, .unknownDevice, _) = $0 { true } else { false } } == true)
    }

    /// Only removals: a DDEATH each and no rebirth (the rest of the births still hold).
    @Test func onlyRemovalsSendDDeathsAndNoBirths() throws {
        var s = born()
        let out = try published(s.devicesChanged(removed: ["c02"], added: [], deviceCommands: ["c01": schema], now: 4,
                                                 birth: BirthCertificate(node: certificate.node, devices: [certificate.devices[0]])))
        #expect(out.map(\.topic) == ["spBv1.0/north/DDEATH/site-7/c02"])
        #expect(out.map(\.payload.seq) == [6])
    }

    /// Offline nothing is published; the next births carry the new set (and DCMD follows it at once).
    @Test func offlineTheNextBirthsCarryTheNewSet() throws {
        var s = born()
        s.disconnected()
        #expect(s.devicesChanged(removed: ["c02"], added: ["c03"], deviceCommands: ["c01": schema, "c03": schema], now: 4, birth: newSet).isEmpty)
        _ = s.start(now: 5)
        let births = try published(s.connected(now: 6, birth: newSet))
        #expect(births.map(\.topic).filter { $0.contains("/DBIRTH/") } == ["spBv1.0/north/DBIRTH/site-7/c01", "spBv1.0/north/DBIRTH/site-7/c03"])
    }
}

/// The same, over mosquitto, decoded and checked by the pinned pysparkplug host (seq across the DDEATH and the
/// rebirth, no data for a dead device, no DDEATH for a device it never saw born).
@Suite("Devices that come and go, checked by an independent host", .serialized, .timeLimit(.minutes(2)))
struct DeviceChangeInteropTests {
    @Test func ddeathAndRebirthAsTheHostSeesThem() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(broker.port)", "hq", "1000000"])
        defer { host.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spb-dev-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let schema = CommandSchema(["Mode": .string])
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-site-7"))
        let runner = try EdgeNodeRunner(client: client, identity: try EdgeNodeIdentity(group: "north", edge: "site-7"),
                                        store: FileBdSeqStore(path: dir.appendingPathComponent("bdseq").path), birth: certificate,
                                        deviceCommands: ["c01": schema, "c02": schema], retryDelay: .milliseconds(50),
                                        now: { UInt64(Date().timeIntervalSince1970 * 1000) })
        var events = runner.events.makeAsyncIterator()
        async let running: Void = runner.run()
        let born1 = await nextEdgeEvent(&events) { if case .born = $0 { true } else { false } }
        #expect(born1 == .born(BdSeq(0)))
        func data(_ i: Int, _ devices: [String]) async -> Bool {
            await runner.publishData(node: [SparkplugMetric(name: "Site/Import kW", value: .double(Double(i)))],
                                     devices: devices.map { ($0, [SparkplugMetric(name: "Power kW", value: .double(Double(i)))]) })
        }
        for i in 0..<5 { #expect(await data(i, ["c01", "c02"])) }

        // A new configuration: c02 gone, c03 new.
        let newSet = BirthCertificate(node: certificate.node,
                                      devices: [("c01", [SparkplugMetric(name: "Power kW", value: .double(300))]),
                                                ("c03", [SparkplugMetric(name: "Power kW", value: .double(0))])])
        await runner.devicesChanged(to: newSet, removed: ["c02"], added: ["c03"], deviceCommands: ["c01": schema, "c03": schema])
        let born2 = await nextEdgeEvent(&events) { if case .born = $0 { true } else { false } }
        #expect(born2 == .born(BdSeq(0)))
        for i in 5..<10 { #expect(await data(i, ["c01", "c03"])) }

        try await client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 0)
        _ = await host.waitForExit()
        let output = host.standardOutput
        client.close()
        await running

        let (line, verdict) = try lastJSONLine(output)
        #expect(verdict["errors"] as? [String] == [], "\(line)")
        let counts = verdict["counts"] as? [String: Int] ?? [:]
        #expect(counts["NBIRTH"] == 2 && counts["DBIRTH"] == 4 && counts["DDEATH"] == 1, "\(counts)")
        #expect(counts["DDATA"] == 20 && counts["NDATA"] == 10, "\(counts)")
        #expect(verdict["device_deaths"] as? [String] == ["c02"])
        #expect(verdict["birth_bdseqs"] as? [Int] == [0, 0])
        #expect(Set((verdict["device_metrics"] as? [String: Any] ?? [:]).keys) == ["c01", "c02", "c03"])
    }
}
