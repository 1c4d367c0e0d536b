// Fleet commands end to end on 3 sites of one region (the rig: FleetRig.swift; the same on the 40 sites of
// examples/fleet.yaml: FleetDR40Tests). Driven through the built `switchyard` binary:
// - `fleet event create` on ERCOT: every site with a share reports a cap in force at or below the cap sent, and
//   the region's metered shed (baseline − import, from the sites' own meters) reaches the target within 30 s of
//   virtual time; the commands and the sites' answers are in the hub's tables (psql); one site killed mid-event
//   (its daemon shut down: NDEATH) is covered by the others within one allocation period.
// - `fleet config apply` over 3 sites: the canary first, then the rest, all reporting the new Site/Config SHA256;
//   a configuration the sites refuse stops at the canary and nothing more is sent.
// - Bad input (unknown region, negative MW) is refused with its message and sends nothing.
// - With PostgreSQL stopped, caps still go out and are applied; the store has them, once, when it is back.

import Basics
import Foundation
import FleetSim
@testable import Hub
import Sparkplug
import Testing
import TestSupport

@Suite("Fleet commands end to end", .serialized, .timeLimit(.minutes(6)))
struct FleetCommandEndToEndTests {
    @Test func aRegionalShedIsMeteredWithin30SAndAKilledSiteIsCovered() async throws {
        try await FleetRig.with(sites: 3, apart: "ercot-03") { rig, kill in
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
            let shed = try FleetRig.decoder().decode(FleetShedReport.self, from: Data(created.stdout.utf8))
            let sentAt = rig.now
            #expect(abs(shed.allocatedMw - target) < 1e-6 && shed.shortfallMw < 1e-6, "\(shed)")
            #expect(Set(shed.shares.map(\.site)) == all, "every site takes part: \(shed.shares)")
            let caps = Dictionary(uniqueKeysWithValues: try shed.shares.map { ($0.site, try #require($0.capKw, "\($0.site) has a cap sent: \($0)")) })

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
            // Covered: the two others' shares make the target, and each has its cap sent.
            let (offlineAt, covered, last) = try await rig.cover(shed: shed.id, target: target, killed: SiteKey(group: "ERCOT", edge: "ercot-03"),
                                                                 covering: two, ticking: two)
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

    /// Commands do not wait on PostgreSQL (HostCommands.swift): with the store stopped, a cap sent to each site goes
    /// out at once and the sites apply and answer it; once PostgreSQL is back, the commands and the answers are in its
    /// tables, each once (psql). Before, each send waited for the store's timeout and was then not sent.
    @Test func capsGoOutWhilePostgresIsDownAndAreRecordedOnceItIsBack() async throws {
        try await FleetRig.with(sites: 2) { rig, _ in
            let sites: Set<String> = ["ercot-01", "ercot-02"]
            let before = await rig.status()
            let host = await rig.operations.host
            await rig.pg.stopKeepingData()
            var caps: [String: Double] = [:], sent: [String: String] = [:]
            for site in sites.sorted() {
                let key = SiteKey(group: "ERCOT", edge: site)
                let cap = ((try #require(before[key]?.importKW)) - 500).rounded()
                caps[site] = cap
                let result = await host.send(.createEvent(eventID: "outage-\(site)", capKW: cap, end: rig.now + 3600, reason: "store down"),
                                                            to: key, commandID: nil)
                guard case .sent(let id) = result else {
                    Issue.record("\(site): \(result)")
                    continue
                }
                sent[site] = id
            }
            #expect(sent.count == 2)
            #expect(await rig.answers.wait(for: Set(sent.values), since: [:], limit: .seconds(30)), "answers: \(rig.answers.mark())")
            for id in sent.values { #expect(host.reply(commandID: id)?.accepted == true, "\(id)") }
            var inForce: [String: Double] = [:]
            for _ in 0..<5 {
                await rig.second(sites)
                inForce = Dictionary(uniqueKeysWithValues: await rig.status().values.compactMap { r in r.capKW.map { (r.edge, $0) } })
                if caps.allSatisfy({ (inForce[$0.key] ?? .infinity) <= $0.value + 1e-6 }) { break }
            }
            #expect(caps.allSatisfy { (inForce[$0.key] ?? .infinity) <= $0.value + 1e-6 }, "sent \(caps), in force \(inForce)")

            // PostgreSQL back: the record writer's next retry writes the commands and the answers.
            try await rig.pg.restart()
            var rows = ""
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline {
                rows = (try? await rig.pg.psql("""
                    SELECT s.edge_id, c.id, c.status, c.payload->>'cap_kw', (SELECT count(*) FROM command_outcomes o WHERE o.command_id = c.id)
                    FROM commands c JOIN sites s ON s.id = c.site_id ORDER BY s.edge_id
                    """)) ?? ""
                if rows.split(separator: "\n").filter({ $0.contains("|acknowledged|") }).count == 2 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let expected = sites.sorted().map { site in "\(site)|\(sent[site] ?? "?")|acknowledged|\(caps[site].map { String(Int($0)) } ?? "?")|1" }
            #expect(rows.split(separator: "\n").map(String.init) == expected, "\(rows)")
        }
    }

    @Test func aRolloutRunsTheCanaryFirstAndARefusedConfigStopsThere() async throws {
        try await FleetRig.with(sites: 3) { rig, _ in
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
            let rollout = try FleetRig.decoder().decode(FleetRolloutReport.self, from: Data(started.stdout.utf8))
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
            let second = try FleetRig.decoder().decode(FleetRolloutReport.self, from: Data(refused.stdout.utf8))
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
