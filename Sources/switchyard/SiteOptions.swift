import ArgumentParser
import Basics
import Control
import Foundation
import HardwareProfiles
import Site
import Simulation

/// `--site FILE` and `--profiles-dir DIR`, shared by sim, serve and replay.
struct SiteOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The site file (YAML).", valueName: "FILE"))
    var site: String

    @Option(name: .customLong("profiles-dir"), help: ArgumentHelp("Extra directory of hardware profiles.", valueName: "DIR"))
    var profilesDir: String?

    init() {}

    /// The same options from a command that parses them itself (`sim`, whose --site is optional beside --fleet).
    init(site: String, profilesDir: String?) {
        self.site = site
        self.profilesDir = profilesDir
    }

    /// Loads the site and every profile it names; one clear line on error.
    func load() throws -> (Site, [String: DeviceProfile]) {
        let s: Site
        do { s = try Site.load(path: site) } catch {
            printError("\(error)")
            throw ExitCode(ExitCodes.validation)
        }
        do {
            return (s, try loadProfiles(for: s, registry: .standard(profilesDir: profilesDir)))
        } catch {
            printError("\(site): error: \(error)")
            throw ExitCode(ExitCodes.validation)
        }
    }
}

/// Parses an ISO 8601 time with an offset ("2026-07-15T13:59:00Z") to seconds since 1970: the shared
/// grammar of site and signal files (`ISO8601.parse`).
func parseISOTime(_ s: String) -> Double? { ISO8601.parse(s) }

func isoTime(_ t: Double) -> String { ISO8601.format(t) }

func mw(_ kw: Double) -> String { LiveFrame.mw(kw) }
