// The simulated fleet (`sim --fleet`): its file's errors, the site files it writes, and three sites on virtual
// time against Debian's mosquitto, each born on the bus under its region.

import Foundation
import FleetSim
import Logging
import ServiceLifecycle
import Site
import Sparkplug
import Synchronization
import Testing
import TestSupport

@Suite("Simulated fleet", .serialized, .timeLimit(.minutes(3)))
struct SimulatedFleetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let examples = root.appendingPathComponent("examples").path

    func parse(_ yaml: String) throws(LocatedError) -> FleetSpec {
        try FleetSpec.parse(yaml: yaml, file: "fleet.yaml", directory: Self.examples)
    }

    @Test func theExampleFleetIsFortySitesInFourRegions() throws {
        let spec = try FleetSpec.load(path: Self.examples + "/fleet.yaml")
        #expect(spec.sites.count == 40)
        #expect(Set(spec.sites.map(\.region)).count == 4)
        #expect(spec.sites.first?.id == "ercot-01")
        #expect(Set(spec.sites.map(\.id)).count == 40)
    }

    @Test func badFleetFilesNameTheLine() {
        func error(_ yaml: String) -> String {
            do { _ = try parse(yaml); return "no error" } catch { return "\(error)" }
        }
        #expect(error("template: demo-site.yaml\nregions: [{name: A, sites: 2}]\ncolour: red\n")
                .hasPrefix("fleet.yaml:3:1: unknown key 'colour'"))
        #expect(error("template: demo-site.yaml\nregions:\n  - {name: A/B, sites: 2}\n")
                .hasPrefix("fleet.yaml:3:12: region 'A/B' cannot be a Sparkplug group id"))
        #expect(error("template: demo-site.yaml\nregions:\n  - {name: A, sites: 2}\n  - {name: A, sites: 1}\n")
                == "fleet.yaml:4:12: region 'A' is listed twice")
        #expect(error("template: demo-site.yaml\nregions:\n  - {name: A, sites: 100}\n")
                == "fleet.yaml:3:22: sites should be 1–99, found 100")
        #expect(error("template: nowhere.yaml\nregions: [{name: A, sites: 1}]\n")
                .hasPrefix("fleet.yaml:1:11: cannot read the template site file"))
        #expect(error("template: demo-site.yaml\nroles: {hq: king}\nregions: [{name: A, sites: 1}]\n")
                == "fleet.yaml:2:13: the role of hq should be viewer, operator or admin, found 'king'")
        #expect(error("regions: [{name: A, sites: 1}]\n").contains("template"))
    }

    /// Each site file is the template under its own id and region, with a fleet section whose group id is the
    /// region (the default), and it loads as a site file.
    @Test func eachSiteFileIsTheTemplateRenamed() throws {
        let spec = try parse("template: demo-site.yaml\nprimary_host_id: hub\nroles: {switchyard-hub: admin}\nregions: [{name: PJM, sites: 2, price_usd_per_mwh: 51}]\n")
        let entry = spec.sites[1]
        #expect(entry == FleetSpec.SiteEntry(id: "pjm-02", region: "PJM", priceUsdPerMWh: 51))
        let text = spec.siteFile(entry, brokerHost: "127.0.0.1", brokerPort: 1883)
        let site = try Site.parse(yaml: text, file: "pjm-02.yaml")
        #expect(site.id == "pjm-02")
        let fleet = try #require(site.fleet)
        #expect(fleet.groupID == "PJM")
        #expect(fleet.edgeNodeID == "pjm-02")
        #expect(fleet.primaryHostID == "hub")
        #expect(fleet.brokerPort == 1883)
        let template = try Site.parse(yaml: spec.templateText, file: "demo-site.yaml")
        #expect(site.devices.map(\.id) == template.devices.map(\.id))
    }

    /// Three sites in two regions on one manual clock: every site ticks, its physics follow its setpoints, and
    /// each is born on the bus as spBv1.0/<region>/NBIRTH/<site>.
    @Test func threeSitesAreBornOnTheBusUnderTheirRegions() async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let spec = try parse("template: demo-site.yaml\nregions:\n  - {name: ERCOT, sites: 2, price_usd_per_mwh: 30}\n  - {name: PJM, sites: 1}\n")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-sim-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }

        let tap = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "fleet-sim-tap"))
        defer { tap.close() }
        var tapEvents = tap.events.makeAsyncIterator()
        try await tap.connect(will: nil)
        while let e = await tapEvents.next() { if case .connected = e { break } }
        try await tap.subscribe("spBv1.0/#", qos: 1)

        let (ticks, ticksIn) = AsyncStream.makeStream(of: (String, Double).self)
        var logger = Logger(label: "fleet-sim-test")
        logger.logLevel = .warning
        let clock = ManualClock()
        let t0 = 1_795_680_000.0
        let fleet = try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: broker.port, workDir: dir,
                                       profilesDir: Self.root.appendingPathComponent("hardware-profiles").path,
                                       clock: clock, startAt: t0, fleetRetryDelay: .milliseconds(50), logger: logger,
                                       hooks: SimulatedFleetHooks(tick: { site, report in ticksIn.yield((site, report.miningKW)) }))
        #expect(fleet.sites.map(\.entry.id) == ["ercot-01", "ercot-02", "pjm-01"])
        let group = ServiceGroup(services: [fleet], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ticks.makeAsyncIterator()
            var mining: [String: Double] = [:]
            // The first tick of each site, then ten more seconds of virtual time.
            for _ in 0..<3 { let (s, m) = try #require(await it.next()); mining[s] = m }
            for _ in 0..<10 {
                clock.advance(by: .seconds(1))
                for _ in 0..<3 { let (s, m) = try #require(await it.next()); mining[s] = m }
            }
            #expect(Set(mining.keys) == ["ercot-01", "ercot-02", "pjm-01"])
            // Every site ramped its miners from rest: the simulator stepped with the ticks.
            for (s, m) in mining { #expect(m > 1000, "\(s) mining \(m) kW after 10 s") }

            var births: Set<String> = []
            while births.count < 3, let e = await tapEvents.next() {
                if case .message(let m) = e, m.topic.contains("/NBIRTH/") { births.insert(m.topic) }
            }
            #expect(births == ["spBv1.0/ERCOT/NBIRTH/ercot-01", "spBv1.0/ERCOT/NBIRTH/ercot-02", "spBv1.0/PJM/NBIRTH/pjm-01"])
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
