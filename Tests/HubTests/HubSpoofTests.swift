// A spoofed edge node (issue 18, "Bad input"): the broker's password file and ACL (docs/fleet.md, "Identity and
// trust") let each site's MQTT user publish only under its own edge node id. Another site's credentials publishing
// as it are dropped by the broker, and a client without credentials is refused at CONNECT: the hub never sees
// either, and the genuine site's values stand. Debian's mosquitto on a free port; every wait is on an event.

import Foundation
import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Testing
import TestSupport

@Suite("Hub: spoofed edge nodes", .serialized, .timeLimit(.minutes(2)))
struct HubSpoofTests {
    /// Each site's user may publish only `spBv1.0/<group>/<type>/<its user name>[/<device>]` and read its commands and
    /// the hosts' STATE; the hub's user reads everything and writes commands and its STATE.
    static let acl = """
        user hub
        topic read spBv1.0/#
        topic write spBv1.0/+/NCMD/#
        topic write spBv1.0/+/DCMD/#
        topic write spBv1.0/STATE/#

        pattern write spBv1.0/+/NBIRTH/%u
        pattern write spBv1.0/+/NDATA/%u
        pattern write spBv1.0/+/NDEATH/%u
        pattern write spBv1.0/+/DBIRTH/%u/+
        pattern write spBv1.0/+/DDATA/%u/+
        pattern write spBv1.0/+/DDEATH/%u/+
        pattern read spBv1.0/+/NCMD/%u
        pattern read spBv1.0/+/DCMD/%u/+
        pattern read spBv1.0/STATE/#

        """

    /// A client connected with `user`/`password` (nil: none), or the broker's refusal.
    func connect(_ broker: MosquittoBroker, user: String?, password: String?) async throws -> (MQTTClient, MQTTEvent?) {
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "spoof-test-\(user ?? "anonymous")-\(UUID().uuidString.prefix(6))",
                                                  username: user, password: password))
        try await client.connect(will: nil)
        var it = client.events.makeAsyncIterator()
        return (client, await it.next())
    }

    func birth(importKW: Double, at: UInt64) -> [UInt8] {
        SparkplugPayloads.nbirth(timestamp: at, bdSeq: BdSeq(0), metrics: [SparkplugMetric(name: FleetMetricName.importKW, value: .double(importKW))]).encoded()
    }

    @Test func anotherSitesCredentialsCannotPublishAsASiteAndNoCredentialsCannotConnect() async throws {
        let broker = try await MosquittoBroker.start(auth: .init(users: ["hub": "hub-secret", "site-a": "a-secret", "site-b": "b-secret"], acl: Self.acl))
        defer { broker.stop() }
        var logger = Logger(label: "hub-spoof-test")
        logger.logLevel = .error
        let (events, eventsIn) = AsyncStream.makeStream(of: HostEvent.self)
        let host = try HostApplication(
            configuration: HostConfiguration(hostID: "hq", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hub-spoof-test",
                                                                                   username: "hub", password: "hub-secret"),
                                             retryDelay: .milliseconds(100)),
            sink: MemoryRecordSink(), logger: logger, observe: { eventsIn.yield($0) })
        let group = ServiceGroup(configuration: .init(services: [host], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = events.makeAsyncIterator()
            func next(_ match: (HostEvent) -> Bool) async -> HostEvent? {
                while let e = await it.next() { if match(e) { return e } }
                return nil
            }
            #expect(await next { if case .online = $0 { true } else { false } } != nil, "the hub's own credentials are accepted")

            // No credentials: refused at CONNECT.
            let (anonymous, answer) = try await connect(broker, user: nil, password: nil)
            #expect({ if case .connectionRefused = answer { true } else { false } }(), "anonymous: \(String(describing: answer))")
            anonymous.close()
            // Wrong password for a real site: refused too.
            let (wrong, wrongAnswer) = try await connect(broker, user: "site-a", password: "guess")
            #expect({ if case .connectionRefused = wrongAnswer { true } else { false } }(), "wrong password: \(String(describing: wrongAnswer))")
            wrong.close()

            // The genuine site-a is born with 31 MW of import.
            let (a, aAnswer) = try await connect(broker, user: "site-a", password: "a-secret")
            #expect(aAnswer == .connected)
            _ = try await a.publish(topic: "spBv1.0/ERCOT/NBIRTH/site-a", payload: birth(importKW: 31_000, at: wallMS()), qos: 0)
            #expect(await next { if case .received(let t, nil) = $0 { t.description.contains("NBIRTH/site-a") } else { false } } != nil)

            // site-b's credentials publishing as site-a (a birth and data saying 99 MW), then its own birth: the broker
            // handles one connection's messages in order, so once site-b's own birth reaches the hub, the spoofed
            // ones had been dropped, not delayed.
            let (b, bAnswer) = try await connect(broker, user: "site-b", password: "b-secret")
            #expect(bAnswer == .connected)
            _ = try await b.publish(topic: "spBv1.0/ERCOT/NBIRTH/site-a", payload: birth(importKW: 99_000, at: wallMS()), qos: 1)
            _ = try await b.publish(topic: "spBv1.0/ERCOT/NDATA/site-a",
                                    payload: SparkplugPayloads.data(timestamp: wallMS(), seq: SparkplugSeq(1),
                                                                    metrics: [SparkplugMetric(name: FleetMetricName.importKW, value: .double(99_000))]).encoded(),
                                    qos: 1)
            _ = try await b.publish(topic: "spBv1.0/ERCOT/NBIRTH/site-b", payload: birth(importKW: 12_000, at: wallMS()), qos: 1)
            var seen: [String] = []
            while let e = await it.next() {
                if case .received(let t, _) = e {
                    seen.append(t.description)
                    if t.description.contains("NBIRTH/site-b") { break }
                }
            }
            #expect(seen == ["spBv1.0/ERCOT/NBIRTH/site-b"], "the hub saw \(seen)")
            let rows = Dictionary(uniqueKeysWithValues: await host.status().map { ($0.edge, $0) })
            #expect(rows["site-a"]?.importKW == 31_000)
            #expect(rows["site-a"]?.births == 1)
            #expect(rows["site-b"]?.importKW == 12_000)
            a.close()
            b.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
