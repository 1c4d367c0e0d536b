// `switchyard explain [DEVICE]`: why each setpoint is what it is (the broker's
// and the governor's reasons from the last tick). Top-level rather than under
// `dispatch`, which is the local one-shot dispatch command.

import API
import ArgumentParser

extension Switchyard {
    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "explain", abstract: "Explain the running dispatch: each device's setpoint and its reason.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "Only this device.") var device: String?

        func run() async throws {
            let c = try remote.client()
            let q = device.map { "?device=" + (pathSegment($0)) } ?? ""
            let r = try await c.call("GET", "/v1/explain" + q)
            if remote.json { printJSON(r.body); return }
            let e = try c.decode(ExplainDTO.self, r)
            print("cap \(kw(e.limitKw)) kW   price \(e.priceUsdPerMwh.map { String(format: "$%.2f/MWh", $0) } ?? "-")")
            for i in e.interventions { print("governor: \(terminalSafe(i))") }
            printTable(["DEVICE", "SETPOINT_KW", "REASON"], e.devices.map { [$0.id, kw($0.setpointKw), $0.reason] })
        }
    }
}
