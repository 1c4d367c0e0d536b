// `switchyard mode set DEVICE manual --setpoint-kw X --for 2h` / `mode set DEVICE auto`.

import API
import ArgumentParser
import Foundation

extension Switchyard {
    struct Mode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "mode", abstract: "Operator overrides: fix a device's setpoint for a while.",
                                                        subcommands: [Set.self])
    }
}
