import ArgumentParser
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

/// Parses an ISO 8601 UTC time ("2026-07-15T13:59:00Z") to seconds since 1970.
func parseISOTime(_ s: String) -> Double? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    if let d = f.date(from: s) { return d.timeIntervalSince1970 }
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.date(from: s)?.timeIntervalSince1970
}

func isoTime(_ t: Double) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date(timeIntervalSince1970: t))
}

func mw(_ kw: Double) -> String { String(format: "%6.2f MW", kw / 1000) }
