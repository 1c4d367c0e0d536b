// `switchyard fleet event create|status` (fleet sheds) and `switchyard fleet config apply|status` (rollouts),
// through the hub's API (FleetCommandAPI). Times go to the hub as they are ("now", "+2h", ISO 8601): it resolves
// them on its own clock.

import ArgumentParser
import Foundation
import Hub

extension Switchyard {
    struct FleetEvent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "event", abstract: "Fleet DR: shed MW across a region's sites.",
                                                        subcommands: [FleetEventCreate.self, FleetEventStatus.self, FleetEventCancel.self])
    }

    struct FleetEventCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Start a fleet shed: the target is split over the region's sites by least value lost per MW, each share sent as a DR cap until the end.")
        @Option(name: .long, help: "The region (the sites' Sparkplug group id).") var region: String
        @Option(name: .customLong("shed-mw"), parsing: .unconditional, help: "MW to shed across the region (> 0).") var shedMW: Double
        @Option(help: ArgumentHelp("Start: \(FleetTime.help); a later start waits, and is allocated over the region's sites as they are then.", valueName: "TIME")) var from: String = "now"
        @Option(help: ArgumentHelp("End: \(FleetTime.help).", valueName: "TIME")) var until: String
        @Option(help: "Why (sent to every site with its cap).") var reason: String
        @OptionGroup var remote: RemoteOptions

        func validate() throws {
            if !(shedMW.isFinite && shedMW > 0) { throw ValidationError("--shed-mw must be a positive number of MW, not \(shedMW)") }
            if region.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--region must not be empty") }
            if FleetTime.resolve(from, now: 0) == nil { throw ValidationError("--from '\(from)' is not \(FleetTime.help)") }
            if FleetTime.resolve(until, now: 0) == nil { throw ValidationError("--until '\(until)' is not \(FleetTime.help)") }
            if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
        }

        func run() async throws {
            let c = try remote.client()
            let body = FleetShedRequest(region: region, shedMw: shedMW, from: from, until: until, reason: reason)
            let r = try await c.call("POST", "/v1/fleet/events", body: body)
            if remote.json { printJSON(r.body); return }
            let e = try c.decode(FleetShedReport.self, r)
            if e.state == "scheduled" {
                print("fleet shed \(e.id) in \(terminalSafe(e.region)): \(mwText3(e.targetMw)) MW scheduled from \(e.from) until \(e.until); it is allocated at its start")
                return
            }
            print("fleet shed \(e.id) in \(terminalSafe(e.region)): \(mwText3(e.targetMw)) MW from \(e.from) until \(e.until); allocated \(mwText3(e.allocatedMw)) MW, shortfall \(mwText3(e.shortfallMw)) MW, $\(String(format: "%.0f", e.usdPerHourLost))/h lost")
            FleetEventStatus.printShares(e)
        }
    }

    struct FleetEventStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Fleet sheds: each site's share, cap and metered shed (baseline − import), the total and the shortfall.")
        @Argument(help: "A shed's id (default: every shed since the hub started).") var id: String?
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            if let id {
                let r = try await c.call("GET", "/v1/fleet/events/\(pathSegment(id))")
                if remote.json { printJSON(r.body); return }
                let e = try c.decode(FleetShedReport.self, r)
                print("fleet shed \(e.id) in \(terminalSafe(e.region)): target \(mwText3(e.targetMw)) MW, allocated \(mwText3(e.allocatedMw)) MW, metered \(mwText3(e.meteredMw)) MW, shortfall \(mwText3(e.shortfallMw)) MW, from \(e.from) until \(e.until)\(e.cancelledAt.map { " (cancelled at \($0))" } ?? (e.state == "scheduled" ? " (scheduled)" : e.ended ? " (ended)" : ""))")
                if let problem = e.problem { print("not started: \(terminalSafe(problem))") }
                Self.printShares(e)
                return
            }
            let r = try await c.call("GET", "/v1/fleet/events")
            if remote.json { printJSON(r.body); return }
            let list = try c.decode(FleetShedList.self, r)
            printTable(["ID", "REGION", "TARGET MW", "ALLOCATED MW", "METERED MW", "SHORTFALL MW", "UNTIL", "STATE"], list.events.map { e in
                [e.id, terminalSafe(e.region), mwText3(e.targetMw), mwText3(e.allocatedMw), mwText3(e.meteredMw), mwText3(e.shortfallMw), e.until, e.state ?? (e.cancelledAt != nil ? "cancelled" : e.ended ? "ended" : "active")]
            })
        }

        static func printShares(_ e: FleetShedReport) {
            printTable(["SITE", "SHARE MW", "CAP kW", "$/h LOST", "METERED MW", "ANSWER"], e.shares.map { s in
                [terminalSafe(s.site), mwText3(s.shareMw), kw(s.capKw), String(format: "%.0f", s.usdPerHourLost), mwText3(s.meteredMw),
                 s.offline ? "OFFLINE" : terminalSafe(s.answer ?? "-")]
            })
            for l in e.leftOut { print("left out: \(terminalSafe(l.site)): \(terminalSafe(l.reason))") }
        }
    }

    struct FleetEventCancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a fleet shed: its caps are withdrawn from the sites (an offline site's when it is heard again).")
        @Argument(help: "The shed's id.") var id: String
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("DELETE", "/v1/fleet/events/\(pathSegment(id))")
            if remote.json { printJSON(r.body); return }
            let e = try c.decode(FleetShedReport.self, r)
            print("fleet shed \(e.id) in \(terminalSafe(e.region)) cancelled at \(e.cancelledAt ?? "?"): its caps are withdrawn from the sites")
        }
    }

    struct FleetConfigCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "config", abstract: "Staged configuration rollouts.",
                                                        subcommands: [FleetConfigApply.self, FleetConfigStatus.self])
    }

    struct FleetConfigApply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Roll a site file out: a canary site first, then batches, stopping at the first failure.")
        @Argument(help: "The site file to apply.") var file: String
        @Option(name: .long, help: "Sites, comma-separated (REGION/SITE or SITE); the first is the canary.") var sites: String?
        @Option(name: .long, help: "Every site of a region (the canary is the first by id).") var region: String?
        @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Sites per batch after the canary.") var batchSize: Int = 5
        @Option(help: "A comment stored with the version at each site.") var comment: String?
        @OptionGroup var remote: RemoteOptions

        func validate() throws {
            if (sites == nil) == (region == nil) { throw ValidationError("give exactly one of --sites and --region") }
            if let sites, sites.split(separator: ",").isEmpty { throw ValidationError("--sites must name at least one site") }
            if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, not \(batchSize)") }
        }

        func run() async throws {
            let yaml: String
            do { yaml = try String(contentsOfFile: file, encoding: .utf8) } catch {
                printError("error: \(file): cannot read the file: \((error as NSError).localizedDescription)")
                throw ExitCode(ExitCodes.validation)
            }
            let c = try remote.client()
            let list = sites.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            let body = FleetRolloutRequest(yaml: yaml, sites: list, region: region, batchSize: batchSize, comment: comment)
            let r = try await c.call("POST", "/v1/fleet/rollouts", body: body)
            if remote.json { printJSON(r.body); return }
            FleetConfigStatus.printRollout(try c.decode(FleetRolloutReport.self, r))
        }
    }

    struct FleetConfigStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Rollouts: phase and each site's state.")
        @Argument(help: "A rollout's id (default: every rollout since the hub started).") var id: String?
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            if let id {
                let r = try await c.call("GET", "/v1/fleet/rollouts/\(pathSegment(id))")
                if remote.json { printJSON(r.body); return }
                Self.printRollout(try c.decode(FleetRolloutReport.self, r))
                return
            }
            let r = try await c.call("GET", "/v1/fleet/rollouts")
            if remote.json { printJSON(r.body); return }
            let list = try c.decode(FleetRolloutList.self, r)
            printTable(["ID", "SHA-256", "SITES", "PHASE", "BATCH"], list.rollouts.map { o in
                [o.id, String(o.sha256.prefix(12)), "\(o.sites.count)", o.phase + (o.stoppedAt.map { " at \($0)" } ?? ""), "\(o.batchesSent)/\(o.batchCount)"]
            })
        }

        static func printRollout(_ o: FleetRolloutReport) {
            var head = "rollout \(o.id) of \(o.sha256.prefix(12)): \(o.phase), batch \(o.batchesSent) of \(o.batchCount)"
            if let at = o.stoppedAt { head += "; stopped at \(terminalSafe(at)): \(terminalSafe(o.stopReason ?? ""))" }
            print(head)
            printTable(["SITE", "REGION", "ROLE", "STATE", "DETAIL"], o.sites.map { s in
                [terminalSafe(s.site), terminalSafe(s.region), s.canary ? "canary" : "", s.state, terminalSafe(s.detail ?? "")]
            })
        }
    }
}

private func mwText3(_ v: Double) -> String { String(format: "%.3f", v) }
