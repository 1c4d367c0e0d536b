import Control
import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport
@testable import Daemon

// `serve` reaching the fleet broker over TLS with a client certificate, as docs/fleet.md tells an operator to set
// it up: the site file's `fleet.tls` (the broker's CA, the site's certificate and key), Debian's mosquitto
// requiring client certificates from the same CA. A head-office subscriber with its own certificate sees the births.

@Suite("Daemon edge node over TLS", .serialized, .timeLimit(.minutes(2)))
struct FleetTLSDaemonTests {
    func logger() -> Logger {
        var l = Logger(label: "fleet-tls-test")
        l.logLevel = .warning
        return l
    }

    func fleetTLSYAML(port: Int, pki: TestPKI, cert: String) -> String {
        """

        fleet:
          broker: {host: 127.0.0.1, port: \(port)}
          group_id: test-group
          tls: {ca_file: "\(pki.path("ca.crt"))", cert_file: "\(pki.path("\(cert).crt"))", key_file: "\(pki.path("\(cert).key"))"}

        """
    }

    @Test func aSiteWithItsCertificateIsBornOverTLS() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        let rig = try FleetSiteRig("tls", extraYAML: fleetTLSYAML(port: broker.port, pki: pki, cert: "site"))
        defer { rig.close() }
        let site = rig.site
        var config = rig.config

        let hq = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hq",
                                              tls: MQTTTLS(caFile: pki.path("ca.crt"), certFile: pki.path("hq.crt"), keyFile: pki.path("hq.key"))))
        defer { hq.close() }
        var hqEvents = hq.events.makeAsyncIterator()
        try await hq.connect(will: nil)
        while let e = await hqEvents.next() { if case .connected = e { break } }
        try await hq.subscribe("spBv1.0/#", qos: 1)

        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            _ = try #require(await ticks.next())
            await site.step()
            var birth: MQTTMessage?
            while let e = await hqEvents.next() {
                if case .message(let m) = e, m.topic.contains("/NBIRTH/") { birth = m; break }
            }
            #expect(birth?.topic == "spBv1.0/test-group/NBIRTH/daemon-test")
            let payload = try SparkplugPayload(decoding: try #require(birth).payload)
            #expect(payload.metrics.contains { $0.name == "bdSeq" })
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // mosquitto took the site's identity from its certificate (use_identity_as_username).
        #expect(broker.log.contains("site-7"), "\(broker.log)")
    }

    /// A site whose certificate the broker does not trust is never born: every attempt ends, is reported offline
    /// and retried, and the loop ticks on regardless.
    @Test func aSiteTheBrokerDoesNotTrustRetriesAndTheLoopTicksOn() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        let broker = try await MosquittoBroker.start(tls: .init(caFile: pki.path("ca.crt"), certFile: pki.path("server.crt"), keyFile: pki.path("server.key")))
        defer { broker.stop() }
        let rig = try FleetSiteRig("tls", extraYAML: fleetTLSYAML(port: broker.port, pki: pki, cert: "stranger"))
        defer { rig.close() }
        let site = rig.site
        var config = rig.config

        let (fleetEvents, fleetIn) = AsyncStream<EdgeNodeEvent>.makeStream(bufferingPolicy: .unbounded)
        let watch = DaemonWatch()
        var hooks = watch.hooks
        hooks.fleet = { fleetIn.yield($0) }
        let clock = ManualClock()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            _ = try #require(await ticks.next())
            await site.step()
            var offline = 0, born = 0
            var it = fleetEvents.makeAsyncIterator()
            while offline < 3, let e = await it.next() {
                switch e {
                case .offline: offline += 1
                case .born: born += 1
                default: break
                }
                // The loop is not held up by the failing sessions: a tick per advance.
                clock.advance(by: .seconds(1))
                _ = try #require(await ticks.next())
                await site.step()
            }
            #expect(offline == 3)
            #expect(born == 0)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
