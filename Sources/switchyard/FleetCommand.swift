// `switchyard fleet …`: the fleet API's client (the hub's URL and token as for the site API: --server/--token, or
// SWITCHYARD_SERVER / SWITCHYARD_TOKEN, or the config file).

import ArgumentParser
import Foundation
import Hub

extension Switchyard {
    struct Fleet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "fleet", abstract: "The fleet, through the hub's API.",
                                                        subcommands: [FleetStatus.self, FleetHistory.self, FleetEvent.self, FleetConfigCommand.self])
    }

    struct FleetStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "One row per site: region, import / cap, MW mining and inference, MW it offers to shed, price, mode, config version, last seen, and whether it is stale or offline.")
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/fleet/status")
            if remote.json { printJSON(r.body); return }
            let s = try c.decode(FleetStatusDTO.self, r)
            func mwText(_ v: Double?) -> String { v.map { String(format: "%.2f", $0) } ?? "-" }
            printTable(["REGION", "SITE", "IMPORT/CAP kW", "MINING MW", "INFER MW", "OFFER MW", "PRICE $/MWh", "MODE", "CONFIG", "LAST SEEN", "FLAG"],
                       s.sites.map { row in
                           [terminalSafe(row.region), terminalSafe(row.site), "\(kw(row.importKw)) / \(kw(row.capKw))", mwText(row.miningMw),
                            mwText(row.inferenceMw), mwText(row.offerMw), row.priceUsdPerMwh.map { String(format: "%.2f", $0) } ?? "-",
                            terminalSafe(row.governorMode ?? "-"), row.configVersion.map { "v\($0)" } ?? "-", row.lastSeen ?? "never",
                            row.liveness == "online" ? "" : row.liveness.uppercased()]
                       })
        }
    }

    struct FleetHistory: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "history", abstract: "A site's metric over time, as a table or JSON; --svg FILE writes a chart instead of the table.")
        @Argument(help: ArgumentHelp("The site: REGION/SITE, or SITE when its id is unique in the fleet.", valueName: "SITE"))
        var site: String
        @Option(name: .long, help: "The metric: Site/Import kW, or site_import_kw for short (snake_case of a site metric).")
        var metric: String = "site_import_kw"
        @Option(name: .long, help: "A device's metric instead of the site's.")
        var device: String?
        @Option(name: .long, help: "How far back: 24h, 90m, 3600s, or an ISO 8601 time.")
        var since: String = "24h"
        @Option(name: .long, help: ArgumentHelp("Also write the samples as an SVG line chart to FILE (live and historical samples marked apart).", valueName: "FILE"))
        var svg: String?
        @OptionGroup var remote: RemoteOptions

        static let shortNames = ["site_import_kw": "Site/Import kW", "site_cap_kw": "Site/Cap In Force kW", "site_mining_mw": "Site/Mining MW",
                                 "site_inference_mw": "Site/Inference MW", "site_price": "Site/Price USD per MWh"]

        func run() async throws {
            let c = try remote.client()
            let now = Date().timeIntervalSince1970
            guard let from = parseDurationArg(since).map({ now - $0 }) ?? parseTimeArg(since, now: now) else {
                printError("error: --since '\(since)' is not a duration like 24h or an ISO 8601 time")
                throw ExitCode(ExitCodes.usage)
            }
            var key = site
            if !site.contains("/") {
                let status = try c.decode(FleetStatusDTO.self, try await c.call("GET", "/v1/fleet/status"))
                let matches = status.sites.filter { $0.site == site }
                guard matches.count == 1 else {
                    printError(matches.isEmpty ? "error: no site '\(site)' in the fleet" : "error: '\(site)' is in several regions; give REGION/\(site)")
                    throw ExitCode(ExitCodes.notFound)
                }
                key = "\(matches[0].region)/\(site)"
            }
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            let name = Self.shortNames[metric] ?? metric
            var query = "metric=\(pathSegment(name))&since=\(pathSegment(isoTime(from)))"
            if let device { query += "&device=\(pathSegment(device))" }
            let r = try await c.call("GET", "/v1/fleet/sites/\(pathSegment(parts[0]))/\(pathSegment(parts[1]))/history?\(query)")
            if let svg {
                let h = try c.decode(HistoryDTO.self, r)
                do { try Data(HistoryChart.svg(history: h).utf8).write(to: URL(fileURLWithPath: svg), options: .atomic) } catch {
                    printError("error: \(svg): cannot write the chart: \(error.localizedDescription)")
                    throw ExitCode(73)  // EX_CANTCREAT
                }
                // The chart instead of the table (JSON still goes to stdout with --json).
                if !remote.json { print("wrote \(svg): \(h.metric) of \(h.region)/\(h.site), \(h.samples.count) sample\(h.samples.count == 1 ? "" : "s")"); return }
            }
            if remote.json { printJSON(r.body); return }
            let h = try c.decode(HistoryDTO.self, r)
            printTable(["AT", "VALUE", "HISTORICAL"], h.samples.map { [$0.at, $0.value.map { String(format: "%.3f", $0) } ?? terminalSafe($0.text ?? "-"), $0.historical ? "yes" : ""] })
        }
    }
}
