import Control
import Foundation
import Logging
import ServiceLifecycle
import Signals
import Sparkplug
import Store
import Synchronization
import Testing
import TestSupport
@testable import Daemon

// A configuration applied to a running edge node that changes its devices (issue 17): the pinned pysparkplug
// host sees the device that went away die (DDEATH) and the node born again with the new set, seq valid throughout.

@Suite("Daemon edge node: a configuration that changes the devices", .serialized, .timeLimit(.minutes(2)))
struct FleetDeviceChangeDaemonTests {
    @Test func aDeviceRenamedByAnAppliedConfigurationDiesAndTheNodeIsReborn() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(broker.port)", "hq", "1000000"])
        defer { host.stop() }
        let rig = try FleetSiteRig("devices", extraYAML: fleetYAML(port: broker.port))
        defer { rig.close() }
        let token: String
        do {
            let store = try Store.open(directory: rig.config.stateDir)
            token = try Tokens.create(in: store, name: "test", role: .admin, createdBy: "test", creatorRole: "local", at: t0,
                                      validForS: nil, action: "token create", status: 0).secret
        }
        // The new configuration: asic-3 becomes asic-4 (same container, same address).
        let newYAML = try String(contentsOfFile: rig.site.siteFile, encoding: .utf8).replacingOccurrences(of: "asic-3", with: "asic-4")
        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()

        var logger = Logger(label: "fleet-devices-test")
        logger.logLevel = .warning
        let clock = ManualClock()
        let watch = DaemonWatch()
        let group = ServiceGroup(services: [SiteDaemon(config: rig.config, clock: clock, logger: logger, hooks: watch.hooks)], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            var ports = watch.ports.makeAsyncIterator()
            let port = try #require(await ports.next())
            _ = try #require(await ticks.next())
            await rig.site.step()
            _ = await tap.wait(for: "NBIRTH", &tapEvents)

            let body = try JSONEncoder().encode(["yaml": newYAML, "comment": "asic-3 is asic-4 now"])
            let put = HTTPRequest(method: "PUT", url: URL(string: "http://127.0.0.1:\(port)/v1/config")!,
                                  headers: ["Authorization": "Bearer \(token)", "If-Match": "\"1\"", "Content-Type": "application/json"],
                                  body: body)
            // The API answers once the configuration has taken over, at a tick boundary: tick while it waits.
            let answer = Mutex<HTTPResponse?>(nil)
            tasks.addTask {
                let r = try await HTTPClientTransport(client: .shared, timeout: 30).send(put)
                answer.withLock { $0 = r }
            }
            var waited = 0
            // Tick until the API has answered (it answers once a tick boundary took the configuration over).
            while answer.withLock({ $0 }) == nil && waited < 600 {
                clock.advance(by: .seconds(1))
                _ = try #require(await ticks.next())
                await rig.site.step()
                await Task.yield()
                waited += 1
            }
            let response = try #require(answer.withLock { $0 })
            #expect(response.status == 200 || response.status == 201, "\(String(decoding: response.body, as: UTF8.self))")
            // The edge node sees the new devices on a tick after the swap.
            for _ in 0..<2 {
                clock.advance(by: .seconds(1))
                _ = try #require(await ticks.next())
                await rig.site.step()
            }
            var seen: [String] = []
            while !seen.contains("spBv1.0/test-group/DBIRTH/daemon-test/asic-4") {
                let before = seen.count
                seen = await tap.wait(for: "DBIRTH", &tapEvents)
                if seen.count == before { break }  // the tap's stream ended
            }
            #expect(seen.contains("spBv1.0/test-group/DDEATH/daemon-test/asic-3"), "\(seen)")
            #expect(seen.contains("spBv1.0/test-group/DBIRTH/daemon-test/asic-4"), "\(seen)")
            // The tap saw it all: so has the host (one broker, in order); then the verdict.
            try await tap.client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 1)
            _ = await host.waitForExit()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let (line, verdict) = try lastJSONLine(host.standardOutput)
        #expect(verdict["errors"] as? [String] == [], "\(line)")
        #expect(verdict["device_deaths"] as? [String] == ["asic-3"], "\(line)")
        let counts = verdict["counts"] as? [String: Int] ?? [:]
        #expect(counts["NBIRTH"] == 2 && counts["DBIRTH"] == 12 && counts["DDEATH"] == 1, "\(counts)")
        #expect(verdict["birth_bdseqs"] as? [Int] == [0, 0], "\(line)")
    }
}
