import Control
import FleetEdge
import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport
@testable import Daemon

// `serve` as a Sparkplug B edge node (issue 17): the daemon in-process on the manual clock against the simulated
// site, Debian's mosquitto on a free port, and the pinned pysparkplug host (Tests/peers/sparkplug_host.py),
// which decodes every message with its own schema and checks seq and bdSeq.

func fleetYAML(port: Int) -> String { "\nfleet:\n  broker: {host: 127.0.0.1, port: \(port)}\n  group_id: test-group\n" }

/// Every message on `spBv1.0/#`, as a test-side subscriber sees it (a second view beside the host's).
final class SparkplugTap: Sendable {
    let client: MQTTClient
    let seen = Mutex<[String]>([])

    init(port: Int) {
        client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "fleet-test-tap-\(UUID().uuidString.prefix(8))"))
    }

    /// Connects, waits for the broker's CONNACK and subscribes to `spBv1.0/#`; returns the event iterator to read.
    func subscribeToEverything() async throws -> AsyncStream<MQTTEvent>.AsyncIterator {
        var events = client.events.makeAsyncIterator()
        try await client.connect(will: nil)
        while let e = await events.next() { if case .connected = e { break } }
        try await client.subscribe("spBv1.0/#", qos: 1)
        return events
    }

    /// Waits (on the broker's traffic, not on time) until a message on a topic containing `kind` arrives; returns the
    /// topics seen up to it.
    func wait(for kind: String, _ events: inout AsyncStream<MQTTEvent>.AsyncIterator) async -> [String] {
        while let e = await events.next() {
            if case .message(let m) = e {
                let all = seen.withLock { $0.append(m.topic); return $0 }
                if m.topic.contains("/\(kind)/") { return all }
            }
        }
        return seen.withLock { $0 }
    }
}

@Suite("Daemon as a Sparkplug edge node", .serialized, .timeLimit(.minutes(2)))
struct FleetEdgeDaemonTests {
    func logger() -> Logger {
        var l = Logger(label: "fleet-test")
        l.logLevel = .warning
        return l
    }

    /// NBIRTH with the site metrics (names and datatypes), a DBIRTH per container and meter, NDATA after ticks,
    /// seq valid throughout: as decoded by pysparkplug.
    @Test func anIndependentHostDecodesBirthsAndData() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(broker.port)", "hq", "1000000"])
        defer { host.stop() }
        let rig = try FleetSiteRig("edge", extraYAML: fleetYAML(port: broker.port))
        defer { rig.close() }
        let site = rig.site
        var config = rig.config

        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()

        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            _ = try #require(await ticks.next())
            await site.step()
            // The first tick gives the births their values.
            let untilBirth = await tap.wait(for: "NBIRTH", &tapEvents)
            #expect(untilBirth.last == "spBv1.0/test-group/NBIRTH/daemon-test", "\(untilBirth)")
            // Containers ramp from rest: their power and the site's change past the deadbands.
            for _ in 0..<8 {
                clock.advance(by: .seconds(1))
                _ = try #require(await ticks.next())
                await site.step()
            }
            let untilData = await tap.wait(for: "NDATA", &tapEvents)
            let dbirths = untilData.filter { $0.contains("/DBIRTH/") }
            #expect(Set(dbirths) == Set(["site-meter", "xfmr-1-meter", "asic-1", "asic-2", "asic-3", "gpu-1"].map {
                "spBv1.0/test-group/DBIRTH/daemon-test/\($0)" }), "\(untilData)")

            // The tap saw the NDATA: the broker has passed it to the host too, before this "done".
            try await tap.client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 1)
            _ = await host.waitForExit()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let (line, verdict) = try lastJSONLine(host.standardOutput)
        #expect(verdict["errors"] as? [String] == [], "\(line)")
        let counts = verdict["counts"] as? [String: Int] ?? [:]
        #expect(counts["NBIRTH"] == 1, "\(counts)")
        #expect(counts["DBIRTH"] == 6, "\(counts)")
        #expect((counts["NDATA"] ?? 0) >= 1, "\(counts)")
        // Datatypes as the host decoded them: Int32 3, Int64 4, Double 10, Boolean 11, String 12.
        let node = verdict["node_metrics"] as? [String: Int] ?? [:]
        #expect(node == [
            "bdSeq": 4, "Node Control/Rebirth": 11,
            "Site/Import kW": 10, "Site/Cap In Force kW": 10, "Site/Mining MW": 10, "Site/Inference MW": 10,
            "Site/Price USD per MWh": 10, "Site/Hashprice USD per PH day": 10, "Site/Governor Mode": 12,
            "Site/Config Version": 4, "Site/Active Events": 3, "Site/Config SHA256": 12, "Site/Offer/Steps": 3,
        ].merging((1...10).flatMap { ["Site/Offer/Step \($0) kW", "Site/Offer/Step \($0) USD per h"] }.map { ($0, 10) }) { a, _ in a }, "\(node)")
        let devices = verdict["device_metrics"] as? [String: [String: Int]] ?? [:]
        #expect(devices["asic-1"] == ["Power kW": 10, "Setpoint kW": 10, "Up": 11, "Following": 11, "Last Error Code": 12], "\(devices)")
        #expect(devices["gpu-1"] == devices["asic-1"])
        #expect(devices["site-meter"] == ["Power kW": 10, "Up": 11, "Last Error Code": 12], "\(devices)")
        #expect(devices["cooling"] == nil, "an auxiliary load without a profile is not a device")
    }

    /// The tick hook only hands the report over: with the broker hung (SIGSTOP) and then gone, the loop keeps
    /// ticking on the manual clock, one report per advance.
    @Test func theLoopKeepsTickingWhenTheBrokerHangsOrStops() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let rig = try FleetSiteRig("edge", extraYAML: fleetYAML(port: broker.port))
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        let tap = SparkplugTap(port: broker.port)
        var tapEvents = try await tap.subscribeToEverything()

        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            var reports: [TickReport] = [try #require(await ticks.next())]
            await site.step()
            _ = await tap.wait(for: "NBIRTH", &tapEvents)
            tap.client.close()

            func tick(_ n: Int) async throws {
                for _ in 0..<n {
                    clock.advance(by: .seconds(1))
                    reports.append(try #require(await ticks.next()))
                    await site.step()
                }
            }
            try await tick(5)                          // online
            kill(broker.process.processIdentifier, SIGSTOP)
            try await tick(20)                         // hung broker: the socket accepts nothing more
            kill(broker.process.processIdentifier, SIGCONT)
            broker.stop()
            try await tick(20)                         // no broker at all: reconnect attempts fail
            #expect(reports.count == 46)
            #expect(reports.enumerated().allSatisfy { $0.element.at == t0 + Double($0.offset) }, "\(reports.map(\.at))")
            #expect(reports.last?.siteKW != nil, "the site is still read and controlled")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
