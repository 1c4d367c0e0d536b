// A simulated fleet (issue 18, `switchyard sim --fleet`): N sites, each one a real `SiteDaemon` (control loop,
// governor, site store, API on a free loopback port, Sparkplug edge node with fleet commands and
// store-and-forward) whose devices are a `SiteSimulator`'s in-memory buses instead of Modbus over the wire, all
// against one MQTT broker. On `ContinuousClock` the sites tick in real time (the demo); on a `ManualClock` they
// run on virtual time (tests). A site's physics advance by one tick after each of its ticks.

import Basics
import Control
import Daemon
import FleetEdge
import Foundation
import HardwareProfiles
import Logging
import Modbus
import ServiceLifecycle
import Simulation
import Site
import Sparkplug

/// One site of a simulated fleet.
public struct SimulatedFleetSite: Sendable {
    public let entry: FleetSpec.SiteEntry
    /// Its site file (the template renamed, with a `fleet:` section) and state directory.
    public let siteFile: String
    public let stateDir: String
    public let simulator: SiteSimulator
}

/// What a caller may watch: every tick and every edge-node event, with the site's id.
public struct SimulatedFleetHooks: Sendable {
    public var tick: @Sendable (_ site: String, TickReport) -> Void
    public var fleet: @Sendable (_ site: String, EdgeNodeEvent) -> Void

    public init(tick: @escaping @Sendable (_ site: String, TickReport) -> Void = { _, _ in },
                fleet: @escaping @Sendable (_ site: String, EdgeNodeEvent) -> Void = { _, _ in }) {
        self.tick = tick
        self.fleet = fleet
    }
}

public struct SimulatedFleet<C: Clock>: Service where C.Duration == Duration {
    public let sites: [SimulatedFleetSite]
    let daemons: [SiteDaemon<C>]
    let logger: Logger

    /// Writes each site's files under `workDir` (a directory per site) and builds its daemon. `startAt`: loop time
    /// of the first tick (seconds since 1970); the region's price holds from an hour before it. `only`: just these
    /// sites of the spec (by id; each keeps the seed of its place in the spec), so a test can run a site apart.
    public init(spec: FleetSpec, brokerHost: String, brokerPort: Int, workDir: URL, profilesDir: String?,
                clock: C, startAt: Double, fleetRetryDelay: Duration = .seconds(2),
                logger: Logger, hooks: SimulatedFleetHooks = .init(), only: Set<String>? = nil) throws {
        var sites: [SimulatedFleetSite] = []
        var daemons: [SiteDaemon<C>] = []
        for (n, entry) in spec.sites.enumerated() where only?.contains(entry.id) ?? true {
            let dir = workDir.appendingPathComponent(entry.id)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let siteFile = dir.appendingPathComponent("site.yaml").path
            try spec.siteFile(entry, brokerHost: brokerHost, brokerPort: brokerPort).write(toFile: siteFile, atomically: true, encoding: .utf8)
            let signals = dir.appendingPathComponent("signals.json").path
            let from = ISO8601.format(startAt - 3600)
            try #"{"energy_prices": [{"at": "\#(from)", "usd_per_mwh": \#(entry.priceUsdPerMWh)}]}"#
                .write(toFile: signals, atomically: true, encoding: .utf8)

            let site = try Site.load(path: siteFile)
            let profiles = try ProfileRegistry.standard(profilesDir: profilesDir).load(each: site.devices.compactMap(\.profile))
            var simSpec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
            for i in simSpec.devices.indices where simSpec.devices[i].role == .asicContainer || simSpec.devices[i].role == .gpuContainer {
                // From rest, and no comm watchdog: the simulated fleet starts cold, like `make run`.
                simSpec.devices[i].initialSetpointKW = 0
                simSpec.devices[i].commWatchdogS = 0
            }
            let simulator = try SiteSimulator(spec: simSpec, seed: UInt64(n + 1))

            var config = DaemonConfig()
            config.stateDir = dir.appendingPathComponent("state").path
            config.siteFile = siteFile
            config.profilesDir = profilesDir
            config.listen = "127.0.0.1:0"
            config.signalsFile = signals
            config.startAt = startAt
            config.watchdogS = 0
            config.output = .silent
            config.handlesSignals = false
            config.fleetRetryDelay = fleetRetryDelay
            config.buses = { site in
                var buses: [String: any RegisterBus] = [:]
                for d in site.devices where d.profile != nil {
                    if let bus = SimulatedBus(simulator: simulator, device: d.id) { buses[d.id] = bus }
                }
                return buses
            }
            let id = entry.id
            let tickS = site.tickSeconds
            var daemonHooks = DaemonHooks(tick: { report in
                simulator.step(.milliseconds(Int((tickS * 1000).rounded())))
                hooks.tick(id, report)
            })
            daemonHooks.fleet = { hooks.fleet(id, $0) }
            var siteLogger = logger
            siteLogger[metadataKey: "site"] = "\(id)"
            daemons.append(SiteDaemon(config: config, clock: clock, logger: siteLogger, hooks: daemonHooks))
            sites.append(SimulatedFleetSite(entry: entry, siteFile: siteFile, stateDir: config.stateDir, simulator: simulator))
        }
        self.sites = sites
        self.daemons = daemons
        self.logger = logger
    }

    /// Runs every site until a graceful shutdown, which each site takes as `serve` does (mining to 0 kW).
    public func run() async throws {
        let group = ServiceGroup(services: daemons, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        try await group.run()
    }
}
