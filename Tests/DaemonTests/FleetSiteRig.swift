import Foundation
import TestSupport
@testable import Daemon

/// The fleet tests' site: the simulated HIL site served over loopback, its site file with `extraYAML` appended
/// (a `fleet:` section), in a temporary directory, and the daemon's configuration for it (fleet retries every
/// 50 ms). `close()` stops the simulator's servers, then removes the directory.
struct FleetSiteRig {
    let dir: URL
    let site: SimulatedSite
    var config: DaemonConfig

    init(_ name: String, extraYAML: String) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        do {
            site = try SimulatedSite(in: dir, extraYAML: extraYAML)
            config = try DaemonRunTests().config(dir: dir, site: site.siteFile)
        } catch {
            try? FileManager.default.removeItem(at: dir)
            throw error
        }
        config.fleetRetryDelay = .milliseconds(50)
        // The manual clock moves only when a test advances it: the node takes each tick at the advance that made it.
        config.fleetWakePhase = .zero
    }

    func close() {
        site.wire.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}
