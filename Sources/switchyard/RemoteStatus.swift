// `switchyard status` and `switchyard devices`: the running controller, remotely.

import API
import ArgumentParser
import Foundation

extension Switchyard {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the site's import, cap, load per class, price and mode.")
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/status")
            if remote.json { printJSON(r.body); return }
            let s = try c.decode(StatusDTO.self, r)
            print("site         \(s.site)   config v\(s.configVersion.map(String.init) ?? "-")   at \(s.at.map(isoTime) ?? "no tick yet")")
            print("import       \(kw(s.siteKw)) kW / cap \(kw(s.limitKw)) kW")
            print("mining       \(kw(s.miningKw)) kW")
            print("inference    \(kw(s.inferenceKw)) kW")
            print("price        \(s.priceUsdPerMwh.map { String(format: "$%.2f/MWh", $0) } ?? "-")   mode \(s.mode ?? "-")\(s.brokerFeasible == false ? "  (infeasible)" : "")")
            print("devices      \(s.devicesUp)/\(s.devicesTotal) up")
            if let nf = s.notFollowing, !nf.isEmpty {
                print("NOT FOLLOWING \(nf.count): \(terminalSafe(nf.joined(separator: ", "))) (budgeted at measured draw, retried with backoff)")
            }
            if let sm = s.suspectMeters, !sm.isEmpty {
                print("SUSPECT METERS \(sm.count): \(terminalSafe(sm.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))) (counted as stale)")
            }
            print("events       \(s.events.isEmpty ? "none" : terminalSafe(s.events.joined(separator: "; ")))")
            for i in s.interventions { print("governor     \(terminalSafe(i))") }
        }
    }
}
