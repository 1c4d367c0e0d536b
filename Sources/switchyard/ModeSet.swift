// `switchyard mode set`.

import API
import ArgumentParser
import Foundation

extension Switchyard.Mode {
    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a device to manual (with a setpoint and an expiry) or back to auto.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "Device id.") var device: String
        @Argument(help: "manual or auto.") var mode: String
        @Option(name: .customLong("setpoint-kw"), help: "Manual setpoint, kW.") var setpointKW: Double?
        @Option(name: .customLong("for"), help: ArgumentHelp("How long the override lasts: 30m, 2h, 1d.", valueName: "DURATION")) var duration: String?

        func validate() throws {
            switch mode {
            case "auto":
                if setpointKW != nil || duration != nil { throw ValidationError("auto takes no --setpoint-kw or --for") }
            case "manual":
                guard setpointKW != nil else { throw ValidationError("manual needs --setpoint-kw") }
                guard let duration else { throw ValidationError("manual needs --for DURATION: an override always expires") }
                if parseDurationArg(duration) == nil { throw ValidationError("--for '\(duration)' is not a duration like 30m, 2h or 1d") }
            default:
                throw ValidationError("mode must be manual or auto, not '\(mode)'")
            }
        }

        func run() async throws {
            let c = try remote.client()
            let body = ModeRequest(mode: mode, setpointKw: setpointKW, forS: duration.flatMap(parseDurationArg))
            let r = try await c.call("PUT", "/v1/devices/\(pathSegment(device))/mode", body: body)
            if remote.json { printJSON(r.body); return }
            let m = try c.decode(ModeDTO.self, r)
            if m.mode == "manual" { print("\(m.device): manual \(kw(m.setpointKw)) kW until \(m.until.map(isoTime) ?? "-")") } else { print("\(m.device): auto") }
        }
    }
}
