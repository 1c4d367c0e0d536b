// `switchyard config validate|diff|apply|history|rollback|show`.
// validate runs locally with the daemon's own validator; the rest talk to the daemon.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard {
    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Validate, diff, apply and roll back the site configuration.",
            subcommands: [Validate.self, Diff.self, Apply.self, History.self, Rollback.self, Show.self])

        /// The daemon's validator: the site parser, then the profiles and the loop's wiring.
        static func validateLocally(path: String, profilesDir: String?) throws -> (Site, String) {
            let yaml: String
            do { yaml = try String(contentsOfFile: path, encoding: .utf8) } catch {
                printError("\(path): error: cannot read: \(error.localizedDescription)")
                throw ExitCode(ExitCodes.validation)
            }
            do {
                let site = try SiteValidator.validate(yaml: yaml, file: path) { site in
                    let profiles = try loadProfiles(for: site, registry: .standard(profilesDir: profilesDir))
                    _ = try ControlLoop(site: site, profiles: profiles, buses: [:], signals: try SiteSignalSource(site: site, signals: SiteSignals()))
                }
                return (site, yaml)
            } catch {
                printError(SiteValidator.oneLine(error, file: path))
                throw ExitCode(ExitCodes.validation)
            }
        }
    }
}

func readFile(_ path: String) throws -> String {
    do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
        printError("\(path): error: cannot read: \(error.localizedDescription)")
        throw ExitCode(ExitCodes.validation)
    }
}
