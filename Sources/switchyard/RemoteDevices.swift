// `switchyard devices`.

import API
import ArgumentParser
import Foundation

extension Switchyard {
    struct Devices: AsyncParsableCommand {
        /// A device's actuation or meter judgement: "not-following", "frozen", "inconsistent", else "ok" ("-" when none).
        static func health(_ d: DeviceDTO) -> String {
            if let a = d.actuation, a == "not-following" { return a }
            if let m = d.meter, m != "ok" { return m }
            return d.actuation == nil && d.meter == nil ? "-" : "ok"
        }

        static let configuration = CommandConfiguration(commandName: "devices", abstract: "List devices: power, setpoint, override, health.")
        @OptionGroup var remote: RemoteOptions

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/devices")
            if remote.json { printJSON(r.body); return }
            let ds = try c.decode([DeviceDTO].self, r)
            printTable(["DEVICE", "CLASS", "UP", "POWER_KW", "SETPOINT_KW", "OVERRIDE", "HEALTH", "LAST_ERROR"], ds.map { d in
                [d.id, d.deviceClass, d.up ? "yes" : "NO", kw(d.powerKw), kw(d.setpointKw),
                 d.override.map { "\(kw($0.kw)) until \(isoTime($0.until))" } ?? "-", Self.health(d), d.lastError ?? "-"]
            })
        }
    }
}
