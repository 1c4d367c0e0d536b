// Fleet commands end to end: a throwaway PostgreSQL, Debian's mosquitto, `HubService` (host, store, API, fleet
// operations) on virtual time, and simulated sites (real SiteDaemons) on the same ManualClock, whose site files map
// the hub's client id to admin. Driven through the built `switchyard` binary:
// - `fleet event create` on ERCOT: every site with a share reports a cap in force at or below the cap sent, and
//   the region's metered shed (baseline − import, from the sites' own meters) reaches the target within 30 s of
//   virtual time; the commands and the sites' answers are in the hub's tables (psql); one site killed mid-event
//   (its daemon shut down: NDEATH) is covered by the others within one allocation period.
// - `fleet config apply` over 3 sites: the canary first, then the rest, all reporting the new Site/Config SHA256;
//   a configuration the sites refuse stops at the canary and nothing more is sent.
// - Bad input (unknown region, negative MW) is refused with its message and sends nothing.

import Basics
import Foundation
import FleetSim
@testable import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

@Suite("Fleet commands end to end", .serialized, .timeLimit(.minutes(6)))
struct FleetCommandEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let startAt = 1_795_680_000.0

    /// What a test gets: the API, a token, the hub's operations, the clock, the sites' ticks, the database.
    struct Rig {
        let server: String
        let token: String
        let operations: FleetOperations
        let clock: ManualClock
        let pg: PostgresServer
        let ticks: Ticks
        /// The ids of the hub's commands the sites have answered.
        let answers: Ticks
        let fleets: [SimulatedFleet<ManualClock>]

        var now: Double { FleetCommandEndToEndTests.startAt + FleetOperations.seconds(clock.now.offset) }

        /// Moves virtual time by one second, waits for a tick of each of `sites`, then runs one poll of the hub's
        /// fleet operations to its end (its commands recorded and published): the test is the operations' clock.
        func second(_ sites: Set<String>) async {
            let before = ticks.mark()  // before the clock moves: the ticks it causes may come before the wait starts
            clock.advance(by: .seconds(1))
            let ok = await ticks.wait(for: sites, since: before, limit: .seconds(30))
            #expect(ok, "every one of \(sites.sorted()) ticked within 30 s of real time")
            await operations.step()
        }

        func cli(_ args: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runCommand(switchyardExecutable(), args + ["--server", server, "--token", token])
        }

        func status() async -> [SiteKey: SiteStatus] {
            Dictionary(uniqueKeysWithValues: await operations.host.status().map { ($0.site, $0) })
        }
    }

    /// Counts each site's ticks; `wait` returns once each of the sites has ticked since the last wait.
    final class Ticks: Sendable {
        let state = Mutex<(seen: [String: Int], waiters: [(Set<String>, [String: Int], CheckedContinuation<Void, Never>)])>(([:], []))

        func tick(_ site: String) {
            let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.seen[site, default: 0] += 1
                var out: [CheckedContinuation<Void, Never>] = []
                s.waiters.removeAll { w in
                    let done = w.0.allSatisfy { (s.seen[$0] ?? 0) > (w.1[$0] ?? 0) }
                    if done { out.append(w.2) }
                    return done
                }
                return out
            }
            for c in ready { c.resume() }
        }

        func mark() -> [String: Int] { state.withLock { $0.seen } }

        /// Releases every waiter (a watchdog: the test then fails on what it finds, instead of hanging).
        func releaseAll() {
            let all = state.withLock { s -> [CheckedContinuation<Void, Never>] in defer { s.waiters = [] }; return s.waiters.map(\.2) }
            for c in all { c.resume() }
        }

        /// `wait`, bounded by a watchdog of `limit` real time; false if the watchdog fired.
        func wait(for sites: Set<String>, since: [String: Int]?, limit: Duration) async -> Bool {
            await withTaskGroup(of: Bool.self) { g in
                g.addTask { await self.wait(for: sites, since: since); return true }
                g.addTask {
                    do { try await Task.sleep(for: limit) } catch { return true }
                    self.releaseAll()
                    return false
                }
                let first = await g.next() ?? false
                g.cancelAll()
                let second = await g.next() ?? true
                return first && second
            }
        }

        func wait(for sites: Set<String>, since: [String: Int]? = nil) async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    let base = since ?? s.seen
                    if since != nil, sites.allSatisfy({ (s.seen[$0] ?? 0) > (base[$0] ?? 0) }) { return true }
                    s.waiters.append((sites, base, c))
                    return false
                }
                if ready { c.resume() }
            }
        }
    }

    /// PostgreSQL, mosquitto, the hub and the fleet (`apart` runs in a fleet of its own, `killApart` shuts it down).
    static func withRig(sites: Int, apart: String? = nil,
                        _ body: (Rig, _ killApart: @Sendable () async -> Void) async throws -> Void) async throws {
        try await withPostgres { pg in
            let broker = try await MosquittoBroker.start()
            defer { broker.stop() }
            let storeConfig = StoreFixture.configuration(pg)
            let logger = StoreFixture.logger
            let secret = try await HubStore.withRunning(storeConfig, logger: logger) { s in
                try await s.migrate()
                return try await s.createToken(name: "e2e", role: .admin).secret
            }
            let clock = ManualClock()
            let now: @Sendable () -> Double = { startAt + FleetOperations.seconds(clock.now.offset) }
            let (ports, portsIn) = AsyncStream.makeStream(of: Int.self)
            let opsBox = Mutex<FleetOperations?>(nil)
            let answers = Ticks()
            let hub = HubService(
                configuration: HubConfiguration(
                    host: HostConfiguration(hostID: "hub", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-hub"),
                                            retryDelay: .milliseconds(50)),
                    store: storeConfig, apiHost: "127.0.0.1", apiPort: 0,
                    // The test runs each poll itself (Rig.second), after every second of virtual time.
                    operations: .init(allocationPeriod: .seconds(30), pollInterval: .seconds(86_400), rolloutTimeout: .seconds(60))),
                logger: logger, onListening: { portsIn.yield($0) },
                observe: { e in if case .commandAnswered(_, let id, _) = e { answers.tick(id) } }, clock: clock, now: now,
                onOperations: { ops in opsBox.withLock { $0 = ops } })

            let spec = try FleetSpec.parse(yaml: "template: demo-site.yaml\nprimary_host_id: hub\nroles: {switchyard-hub: admin}\nregions:\n  - {name: ERCOT, sites: \(sites), price_usd_per_mwh: 30}\n",
                                           file: "fleet.yaml", directory: root.appendingPathComponent("examples").path)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleetcmd-e2e-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let ticks = Ticks()
            let ids = Set(spec.sites.map(\.id))
            let main = ids.subtracting(apart.map { [$0] } ?? [])
            func fleet(_ only: Set<String>) throws -> SimulatedFleet<ManualClock> {
                try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: broker.port, workDir: dir,
                                   profilesDir: root.appendingPathComponent("hardware-profiles").path, clock: clock,
                                   startAt: startAt, fleetRetryDelay: .milliseconds(50), logger: logger,
                                   hooks: SimulatedFleetHooks(tick: { site, _ in ticks.tick(site) }), only: only)
            }
            let mainFleet = try fleet(main)
            let apartFleet = try apart.map { try fleet([$0]) }
            let hubGroup = ServiceGroup(services: [hub], logger: logger)
            let group = ServiceGroup(services: [mainFleet], logger: logger)
            let apartGroup = apartFleet.map { ServiceGroup(services: [$0], logger: logger) }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await hubGroup.run() }
                tasks.addTask { try await group.run() }
                if let apartGroup { tasks.addTask { try await apartGroup.run() } }
                var portIt = ports.makeAsyncIterator()
                let apiPort = try #require(await portIt.next())
                // Every site's first tick (they wait for the hub's STATE to be born), then 20 s of data.
                await ticks.wait(for: ids, since: [:])
                let ops = try #require(opsBox.withLock { $0 })
                let rig = Rig(server: "http://127.0.0.1:\(apiPort)", token: secret, operations: ops, clock: clock, pg: pg, ticks: ticks,
                              answers: answers, fleets: [mainFleet] + (apartFleet.map { [$0] } ?? []))
                var born = 0
                for _ in 0..<200 {
                    born = await rig.status().values.filter { $0.liveness == .online && $0.offer != nil && $0.importKW != nil }.count
                    if born == ids.count { break }
                    await rig.second(ids)
                }
                #expect(born == ids.count, "every site online with an offer and an import")
                for _ in 0..<20 { await rig.second(ids) }
                try await body(rig, { await apartGroup?.triggerGracefulShutdown() })
                await group.triggerGracefulShutdown()
                await apartGroup?.triggerGracefulShutdown()
                await hubGroup.triggerGracefulShutdown()
                // The fleet and the hub in groups of their own, shut down together. A shutdown that has not ended
                // after 20 s of real time is cancelled, and the test says so on its output (a hang found this way:
                // FleetOperations as a member of the hub's ServiceGroup did not end on a graceful shutdown; it is now
                // a task of HubService cancelled once the host and the API have stopped).
                struct ShutdownTimeout: Error {}
                tasks.addTask { try await Task.sleep(for: .seconds(20)); throw ShutdownTimeout() }
                for _ in 0..<(apartGroup == nil ? 2 : 3) {
                    do { try await tasks.next() } catch is ShutdownTimeout {
                        print("e2e: the graceful shutdown had not ended after 20 s: cancelled")
                        break
                    }
                }
                tasks.cancelAll()
                while let _ = try? await tasks.next() {}
            }
        }
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    @Test func aRegionalShedIsMeteredWithin30SAndAKilledSiteIsCovered() async throws {
        try await Self.withRig(sites: 3, apart: "ercot-03") { rig, kill in
            let all: Set<String> = ["ercot-01", "ercot-02", "ercot-03"]
            let before = await rig.status()
            let offers = before.mapValues { ($0.offer ?? []).reduce(0) { $0 + $1.mw } }
            let total = offers.values.reduce(0, +)
            let twoSites = (offers[SiteKey(group: "ERCOT", edge: "ercot-01")] ?? 0) + (offers[SiteKey(group: "ERCOT", edge: "ercot-02")] ?? 0)
            // A target every site takes part in, and the two that stay can cover alone.
            let target = (min(0.8 * total, 0.9 * twoSites) * 10).rounded(.down) / 10
            try #require(target > 0.5, "offers: \(offers)")

            // Bad input: refused with its message, nothing sent.
            let badRegion = try await rig.cli(["fleet", "event", "create", "--region", "NOPE", "--shed-mw", "5", "--until", "+2h", "--reason", "e2e"])
            #expect(badRegion.status == 65, "\(badRegion.stderr)")
            #expect(badRegion.stderr.contains("no site is known in region 'NOPE' (regions: ERCOT)"), "\(badRegion.stderr)")
            let negative = try await rig.cli(["fleet", "event", "create", "--region", "ERCOT", "--shed-mw", "-5", "--until", "+2h", "--reason", "e2e"])
            #expect(negative.status != 0 && negative.stderr.contains("--shed-mw must be a positive number of MW, not -5.0"), "\(negative.stderr)")
            let badTime = try await rig.cli(["fleet", "event", "create", "--region", "ERCOT", "--shed-mw", "5", "--until", "soon", "--reason", "e2e"])
            #expect(badTime.status != 0 && badTime.stderr.contains("--until 'soon' is not now, +DURATION"), "\(badTime.stderr)")
            #expect(try await rig.pg.psql("SELECT count(*) FROM commands").trimmingCharacters(in: .whitespacesAndNewlines) == "0")

            let created = try await rig.cli(["fleet", "event", "create", "--region", "ERCOT", "--shed-mw", "\(target)", "--from", "now",
                                             "--until", "+2h", "--reason", "e2e utility call", "--json"])
            #expect(created.status == 0, "\(created.stderr)")
            let shed = try Self.decoder().decode(FleetShedReport.self, from: Data(created.stdout.utf8))
            let sentAt = rig.now
            #expect(abs(shed.allocatedMw - target) < 1e-6 && shed.shortfallMw < 1e-6, "\(shed)")
            #expect(Set(shed.shares.map(\.site)) == all, "every site takes part: \(shed.shares)")
            let caps = Dictionary(uniqueKeysWithValues: shed.shares.map { ($0.site, try! #require($0.capKw)) })

            // Within 30 s of virtual time: caps in force at or below the caps sent, the metered shed at the target.
            var metered = 0.0, capsInForce: [String: Double] = [:], reachedAfter: Double?
            for _ in 0..<30 {
                await rig.second(all)
                let rows = await rig.status()
                capsInForce = Dictionary(uniqueKeysWithValues: rows.values.compactMap { r in r.capKW.map { (r.edge, $0) } })
                let report = try await rig.operations.shedReport(id: shed.id)
                metered = report.shares.reduce(0) { $0 + ($1.baselineKw - (rows[SiteKey(group: "ERCOT", edge: $1.site)]?.importKW ?? $1.baselineKw)) / 1000 }
                let capped = caps.allSatisfy { site, cap in (capsInForce[site] ?? .infinity) <= cap + 1e-6 }
                if capped, metered >= target - 0.1 * Double(caps.count) { reachedAfter = rig.now - sentAt; break }
            }
            #expect(reachedAfter != nil, "metered \(metered) MW of \(target); caps sent \(caps), in force \(capsInForce)")
            print("fleet shed e2e: \(target) MW on 3 sites metered (\(String(format: "%.2f", metered)) MW) after \(reachedAfter ?? -1) s of virtual time")

            // The commands and the sites' answers are in the hub's tables.
            var rows = ""
            for _ in 0..<200 {
                rows = try await rig.pg.psql("""
                    SELECT s.edge_id, c.status, c.payload->>'cap_kw' FROM commands c JOIN sites s ON s.id = c.site_id
                    WHERE c.payload->>'kind' = 'dr-event-create' ORDER BY s.edge_id
                    """)
                if rows.split(separator: "\n").filter({ $0.contains("|acknowledged|") }).count == 3 { break }
                await Task.yield()
            }
            let lines = rows.split(separator: "\n").map(String.init)
            #expect(lines.count == 3 && lines.allSatisfy { $0.contains("|acknowledged|") }, "\(rows)")
            for (site, cap) in caps { #expect(lines.contains { $0.hasPrefix("\(site)|acknowledged|") && Double($0.split(separator: "|")[2]) == cap }, "\(site) \(cap): \(rows)") }
            let outcomes = try await rig.pg.psql("SELECT count(*) FROM command_outcomes WHERE status = 'acknowledged'")
            #expect((Int(outcomes.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 3, "\(outcomes)")

            // ercot-03 is killed (its daemon shuts down: NDEATH): within one allocation period (30 s) plus a poll,
            // the two others' shares cover the whole target.
            await kill()
            let two: Set<String> = ["ercot-01", "ercot-02"]
            var offlineAt: Double?
            var covered: Double?
            var last: FleetShedReport?
            for _ in 0..<45 {
                await rig.second(two)
                if offlineAt == nil, await rig.status()[SiteKey(group: "ERCOT", edge: "ercot-03")]?.liveness != .online { offlineAt = rig.now }
                let report = try await rig.operations.shedReport(id: shed.id)
                last = report
                let others = report.shares.filter { two.contains($0.site) }
                // Covered: the two others' shares make the target, and each has its cap sent.
                if abs(others.reduce(0) { $0 + $1.shareMw } - target) < 1e-6, others.allSatisfy({ $0.capKw != nil }), let offlineAt {
                    covered = rig.now - offlineAt
                    break
                }
            }
            #expect(offlineAt != nil, "the hub saw ercot-03 go offline")
            #expect(covered != nil && covered! <= 30, "after \(covered ?? -1) s: \(String(describing: last))")
            #expect(last?.leftOut.contains(.init(site: "ercot-03", reason: "offline: its share went to the others")) == true, "\(String(describing: last))")
            print("fleet shed e2e: ercot-03 killed; \(covered ?? -1) s of virtual time after the hub saw it offline, the others' shares cover it with caps sent")
            // And the new caps reach the two sites.
            let newCaps = Dictionary(uniqueKeysWithValues: (last?.shares ?? []).filter { two.contains($0.site) }.compactMap { s in s.capKw.map { (s.site, $0) } })
            // Once the sites have answered (a second command to a site within one tick applies at the next tick).
            let awaited = Set((last?.shares ?? []).filter { two.contains($0.site) }.compactMap(\.commandId))
            #expect(await rig.answers.wait(for: awaited, since: [:], limit: .seconds(30)), "answers to \(awaited): seen \(rig.answers.mark())")
            var inForce: [String: Double] = [:]
            for _ in 0..<5 {
                await rig.second(two)
                inForce = Dictionary(uniqueKeysWithValues: await rig.status().values.compactMap { r in r.capKW.map { (r.edge, $0) } })
                if newCaps.allSatisfy({ (inForce[$0.key] ?? .infinity) <= $0.value + 1e-6 }) { break }
            }
            #expect(newCaps.count == 2 && newCaps.allSatisfy { (inForce[$0.key] ?? .infinity) <= $0.value + 1e-6 }, "sent \(newCaps), in force \(inForce): \(String(describing: last))")

            let table = try await rig.cli(["fleet", "event", "status", shed.id])
            #expect(table.status == 0 && table.stdout.contains("ercot-01") && table.stdout.contains("left out: ercot-03"), "\(table.stdout)\(table.stderr)")
        }
    }

    @Test func aRolloutRunsTheCanaryFirstAndARefusedConfigStopsThere() async throws {
        try await Self.withRig(sites: 3) { rig, _ in
            let all: Set<String> = ["ercot-01", "ercot-02", "ercot-03"]
            let file = try #require(rig.fleets[0].sites.first { $0.entry.id == "ercot-02" }).siteFile
            let yaml = try String(contentsOfFile: file, encoding: .utf8) + "# rollout e2e: v2\n"
            let sha = SHA256.hex(yaml)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-rollout-\(UUID().uuidString).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }

            // Bad input first: nothing sent.
            let both = try await rig.cli(["fleet", "config", "apply", path, "--sites", "ercot-01", "--region", "ERCOT"])
            #expect(both.status != 0 && both.stderr.contains("give exactly one of --sites and --region"), "\(both.stderr)")
            let missing = try await rig.cli(["fleet", "config", "apply", "/nonexistent/site.yaml", "--region", "ERCOT"])
            #expect(missing.status == 65 && missing.stderr.contains("/nonexistent/site.yaml"), "\(missing.stderr)")

            let started = try await rig.cli(["fleet", "config", "apply", path, "--sites", "ercot-02,ercot-01,ercot-03", "--batch-size", "2",
                                             "--comment", "e2e rollout", "--json"])
            #expect(started.status == 0, "\(started.stderr)")
            let rollout = try Self.decoder().decode(FleetRolloutReport.self, from: Data(started.stdout.utf8))
            #expect(rollout.sha256 == sha)
            #expect(rollout.sites.map(\.state) == ["sent", "waiting", "waiting"] && rollout.sites[0].canary)
            var report = rollout
            for _ in 0..<60 {
                await rig.second(all)
                report = try await rig.operations.rolloutReport(id: rollout.id)
                if report.phase != "running" { break }
            }
            #expect(report.phase == "done", "\(report)")
            let rows = await rig.status()
            for site in all { #expect(rows[SiteKey(group: "ERCOT", edge: site)]?.configSHA256 == sha, "\(site)") }
            // The canary's command went first and the others only after its answer (the hub's tables).
            var cmds = ""
            for _ in 0..<200 {
                // The outcomes are written behind the model: until all three are in.
                cmds = try await rig.pg.psql("""
                    SELECT s.edge_id, (extract(epoch FROM c.issued_at) * 1000)::bigint, coalesce((extract(epoch FROM c.acked_at) * 1000)::bigint, 0), c.status
                    FROM commands c JOIN sites s ON s.id = c.site_id WHERE c.payload->>'sha256' = '\(sha)' ORDER BY c.issued_at, s.edge_id
                    """)
                if cmds.split(separator: "\n").filter({ $0.hasSuffix("|acknowledged") }).count == 3 { break }
                await Task.yield()
            }
            let fields = cmds.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
            #expect(fields.map { $0[0] } == ["ercot-02", "ercot-01", "ercot-03"], "\(cmds)")
            #expect(fields.allSatisfy { $0.count == 4 && $0[3] == "acknowledged" }, "\(cmds)")
            if fields.count == 3 { #expect(Int(fields[1][1])! >= Int(fields[0][2])! && Int(fields[2][1])! >= Int(fields[0][2])!, "\(cmds)") }

            // A configuration the sites refuse (not a valid site file): the canary refuses it, nothing more is sent.
            let bad = "site:\n  id: broken\n  devices: 7\n"
            try bad.write(toFile: path, atomically: true, encoding: .utf8)
            let refused = try await rig.cli(["fleet", "config", "apply", path, "--region", "ERCOT", "--batch-size", "1", "--json"])
            #expect(refused.status == 0, "\(refused.stderr)")
            let second = try Self.decoder().decode(FleetRolloutReport.self, from: Data(refused.stdout.utf8))
            for _ in 0..<20 {
                await rig.second(all)
                report = try await rig.operations.rolloutReport(id: second.id)
            }
            #expect(report.phase == "stopped" && report.stoppedAt == "ercot-01", "\(report)")
            #expect(report.stopReason?.hasPrefix("refused the configuration: rejected: out-of-range:") == true, "\(report)")
            #expect(report.sites.map(\.state) == ["failed", "waiting", "waiting"])
            let sent = try await rig.pg.psql("SELECT count(*) FROM commands WHERE payload->>'sha256' = '\(SHA256.hex(bad))'")
            #expect(sent.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            for site in all { #expect(await rig.status()[SiteKey(group: "ERCOT", edge: site)]?.configSHA256 == sha, "\(site) keeps v2") }
            let table = try await rig.cli(["fleet", "config", "status", second.id])
            #expect(table.status == 0 && table.stdout.contains("stopped at ercot-01") && table.stdout.contains("canary"), "\(table.stdout)\(table.stderr)")
        }
    }
}
