// The hub end to end: a throwaway PostgreSQL, Debian's mosquitto, `HubService` (primary host, store, fleet API) and a
// simulated fleet of three sites on virtual time whose edge nodes wait for the hub's STATE. `switchyard fleet
// status` (the built binary) shows every site, `psql` reads the same import from the hub's tables, and `fleet history
// --svg` draws the samples the API gives.

import Foundation
import FleetSim
import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

@Suite("Hub end to end", .serialized, .timeLimit(.minutes(4)))
struct HubEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func fleetStatusShowsEverySiteAndPsqlReadsTheSame() async throws {
        try await withPostgres { pg in
            let broker = try await MosquittoBroker.start()
            defer { broker.stop() }
            let storeConfig = StoreFixture.configuration(pg)
            let logger = StoreFixture.logger
            let secret = try await HubStore.withRunning(storeConfig, logger: logger) { s in
                try await s.migrate()
                return try await s.createToken(name: "e2e", role: .viewer).secret
            }

            let (ports, portsIn) = AsyncStream.makeStream(of: Int.self)
            let (received, receivedIn) = AsyncStream.makeStream(of: String.self)
            let hub = HubService(
                configuration: HubConfiguration(
                    host: HostConfiguration(hostID: "hub", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-hub"),
                                            retryDelay: .milliseconds(50)),
                    store: storeConfig, apiHost: "127.0.0.1", apiPort: 0),
                logger: logger, onListening: { portsIn.yield($0) },
                observe: { e in if case .received(let topic, nil) = e { receivedIn.yield(topic.description) } })

            let spec = try FleetSpec.parse(yaml: "template: demo-site.yaml\nprimary_host_id: hub\nregions:\n  - {name: ERCOT, sites: 2, price_usd_per_mwh: 30}\n  - {name: PJM, sites: 1}\n",
                                           file: "fleet.yaml", directory: Self.root.appendingPathComponent("examples").path)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-hub-e2e-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let (ticks, ticksIn) = AsyncStream.makeStream(of: String.self)
            let clock = ManualClock()
            let fleet = try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: broker.port, workDir: dir,
                                           profilesDir: Self.root.appendingPathComponent("hardware-profiles").path, clock: clock,
                                           startAt: 1_795_680_000, fleetRetryDelay: .milliseconds(50), logger: logger,
                                           hooks: SimulatedFleetHooks(tick: { site, _ in ticksIn.yield(site) }))
            let group = ServiceGroup(services: [hub, fleet], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                var portIt = ports.makeAsyncIterator()
                let apiPort = try #require(await portIt.next())
                var tickIt = ticks.makeAsyncIterator()
                var recIt = received.makeAsyncIterator()
                // Every node's birth (they wait for the hub's STATE), then 15 s of virtual time: data from all three.
                for _ in 0..<3 { _ = await tickIt.next() }
                var births: Set<String> = []
                while births.count < 3, let t = await recIt.next() { if t.contains("/NBIRTH/") { births.insert(t) } }
                #expect(births == ["spBv1.0/ERCOT/NBIRTH/ercot-01", "spBv1.0/ERCOT/NBIRTH/ercot-02", "spBv1.0/PJM/NBIRTH/pjm-01"])
                for _ in 0..<15 {
                    clock.advance(by: .seconds(1))
                    for _ in 0..<3 { _ = await tickIt.next() }
                }
                var data: Set<String> = []
                while data.count < 3, let t = await recIt.next() { if t.contains("/NDATA/") { data.insert(t) } }

                // The CLI's view, through the API.
                let server = "http://127.0.0.1:\(apiPort)"
                let json = try await runCommand(switchyardExecutable(), ["fleet", "status", "--json", "--server", server, "--token", secret])
                #expect(json.status == 0, "\(json.stderr)")
                let rows = try JSONDecoder().decode(FleetStatusWire.self, from: Data(json.stdout.utf8)).sites
                #expect(rows.map(\.site) == ["ercot-01", "ercot-02", "pjm-01"])
                #expect(rows.map(\.region) == ["ERCOT", "ERCOT", "PJM"])
                for r in rows {
                    #expect(r.liveness == "online")
                    #expect((r.importKw ?? 0) > 1000, "\(r.site) import \(String(describing: r.importKw))")
                    #expect(r.capKw == 40_000)
                    // Each site offers to shed part of its import (its broker's ranking), and says which configuration
                    // is in force.
                    let offer = try #require(r.offerMw, "\(r.site) publishes no offer")
                    #expect(offer > 0 && offer * 1000 <= (r.importKw ?? 0), "\(r.site) offers \(offer) MW of \(r.importKw ?? 0) kW")
                    #expect(r.configSha256?.count == 64, "\(r.site) config sha \(String(describing: r.configSha256))")
                }
                let table = try await runCommand(switchyardExecutable(), ["fleet", "status", "--server", server, "--token", secret])
                #expect(table.status == 0 && table.stdout.contains("ercot-02") && table.stdout.contains("PJM"), "\(table.stdout)\(table.stderr)")
                let refused = try await runCommand(switchyardExecutable(), ["fleet", "status", "--server", server, "--token", "sy_wrong"])
                #expect(refused.status == 77, "\(refused.stderr)")

                // psql reads the same current import from the hub's tables (the sink writes behind the model: the
                // ticks have stopped, so the tables catch up and stay).
                let expected = Dictionary(uniqueKeysWithValues: rows.map { ($0.site, $0.importKw ?? .nan) })
                var stored: [String: Double] = [:]
                for _ in 0..<500 {
                    let out = try await pg.psql("""
                        SELECT s.edge_id, l.value FROM latest l JOIN sites s ON s.id = l.site_id
                        WHERE l.device = '' AND l.metric = 'Site/Import kW' ORDER BY s.edge_id
                        """)
                    stored = Dictionary(uniqueKeysWithValues: out.split(separator: "\n").compactMap { line -> (String, Double)? in
                        let f = line.split(separator: "|")
                        return f.count == 2 ? (String(f[0]), Double(f[1]) ?? .nan) : nil
                    })
                    if stored == expected { break }
                    await Task.yield()
                }
                #expect(stored == expected)

                // `fleet history --svg`: the chart of the samples the API gives (JSON), one polyline point each.
                let svgPath = dir.appendingPathComponent("ercot-01.svg").path
                let historyArgs = ["fleet", "history", "ercot-01", "--metric", "site_import_kw", "--since", "2026-11-26T00:00:00Z",
                                   "--server", server, "--token", secret]
                // (Nothing here throws: a failure is recorded and the services still shut down below.)
                let history = try await runCommand(switchyardExecutable(), historyArgs + ["--json"])
                #expect(history.status == 0, "\(history.stderr)")
                let samples = (try? JSONDecoder().decode(HistoryDTO.self, from: Data(history.stdout.utf8)))?.samples ?? []
                #expect(samples.count >= 3, "\(history.stdout)\(history.stderr)")
                let chart = try await runCommand(switchyardExecutable(), historyArgs + ["--svg", svgPath])
                #expect(chart.status == 0 && chart.stdout.hasPrefix("wrote \(svgPath): Site/Import kW of ERCOT/ercot-01"), "\(chart.stdout)\(chart.stderr)")
                let drawn = (try? String(contentsOfFile: svgPath, encoding: .utf8)).flatMap { try? ChartReader.read($0) }
                #expect(drawn?.points.count == samples.filter { $0.value != nil }.count)
                #expect(drawn?.title == "Site/Import kW — ERCOT/ercot-01")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }
}

/// `fleet status --json` as it arrives (snake_case keys).
struct FleetStatusWire: Decodable {
    struct Row: Decodable {
        var region: String
        var site: String
        var importKw: Double?
        var capKw: Double?
        var liveness: String
        var offerMw: Double?
        var configSha256: String?
        enum CodingKeys: String, CodingKey {
            case region, site, liveness
            case offerMw = "offer_mw"
            case configSha256 = "config_sha256"
            case importKw = "import_kw"
            case capKw = "cap_kw"
        }
    }
    var sites: [Row]
}
