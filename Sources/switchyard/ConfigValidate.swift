// `switchyard config validate`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a site file locally (file:line errors; exit 65 if invalid).")
        @Argument(help: "The site file.") var file: String
        @Option(name: .customLong("profiles-dir"), help: "Extra directory of hardware profiles.") var profilesDir: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (site, _) = try Switchyard.Config.validateLocally(path: file, profilesDir: profilesDir)
            struct Valid: Encodable { var valid = true; var site: String; var devices: Int }
            if json { printJSON(Valid(site: site.id, devices: site.devices.count)) } else {
                print("\(file): valid — site \(site.id), \(site.devices.count) devices")
            }
        }
    }
}
