import Basics
import ArgumentParser
import Foundation
import Logging
import Modbus
import ServiceLifecycle
import Simulation

extension Switchyard {
    /// `switchyard sim`: the site file's devices, simulated and served over Modbus TCP on loopback.
    struct Sim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sim",
            abstract: "Simulate a site's devices (physics, faults) and serve them over Modbus TCP until Ctrl-C; or, with --fleet, a fleet of sites, each with its own controller and Sparkplug edge node.",
            discussion: """
            A simulated fleet (--fleet FILE, e.g. examples/fleet.yaml): every site is a copy of the file's template \
            site, controlled by its own `serve` (control loop, governor, store, API on a free loopback port, edge \
            node) over the simulator's in-memory buses, in real time, against the MQTT broker of --broker.
            """
        )

        @Option(name: .long, help: ArgumentHelp("The site file (YAML). Not with --fleet.", valueName: "FILE"))
        var site: String?

        @Option(name: .customLong("profiles-dir"), help: ArgumentHelp("Extra directory of hardware profiles.", valueName: "DIR"))
        var profilesDir: String?

        @Option(name: .long, help: ArgumentHelp("A simulated fleet's file (examples/fleet.yaml) instead of --site.", valueName: "FILE"))
        var fleet: String?

        @Option(name: .long, help: ArgumentHelp("With --fleet: the MQTT broker (default: the fleet file's, else 127.0.0.1:1883).", valueName: "HOST:PORT"))
        var broker: String?

        @Option(name: .customLong("state-dir"), help: ArgumentHelp("With --fleet: where the sites' files and state go (default: a temporary directory, removed at the end).", valueName: "DIR"))
        var stateDir: String?

        var siteOptions: SiteOptions { SiteOptions(site: site ?? "", profilesDir: profilesDir) }

        @Option(name: .long, help: ArgumentHelp("Scenario file: faults and signals at given times.", valueName: "FILE"))
        var scenario: String?

        @Option(name: .long, help: "Simulated seconds per real second.")
        var speed: Double = 1

        @Option(name: .customLong("listen-base-port"), help: "Serve device k on this port + k (default: the ports in the site file).")
        var listenBasePort: Int?

        @Flag(name: .long, help: "Serve devices behind gateway ports (--units-per-gateway each), unit ids 1, 2, ….")
        var gateway = false

        @Option(name: .customLong("units-per-gateway"), help: "Devices per gateway port with --gateway (1…247).")
        var unitsPerGateway: Int = 247

        @Option(name: .customLong("write-site"), help: ArgumentHelp("Write a copy of the site file whose addresses point at the simulator.", valueName: "FILE"))
        var writeSite: String?

        @Option(name: .long, help: "Stop after this many simulated seconds (default: run until Ctrl-C).")
        var duration: Double?

        @Option(name: .customLong("start-at"), help: ArgumentHelp("Scenario time at simulated t = 0, ISO 8601 UTC (default: now). The GPU inference demand follows this clock; give serve the same --start-at.", valueName: "TIME"))
        var startAt: String?

        @Option(name: .long, help: "Random seed for measurement noise.")
        var seed: UInt64 = 1

        @Flag(name: .long, help: "Print only the address map and trips, not the one-line summary each second.")
        var quiet = false

        @Option(name: .customLong("start-power"), help: "Where containers start: fallback (the fallback setpoint serve writes, 0 kW: a site at rest) or full-power.")
        var startPower: String = SimStart.fallback.rawValue

        func validate() throws {
            switch (site, fleet) {
            case (nil, nil): throw ValidationError("give --site FILE (one site) or --fleet FILE (a simulated fleet)")
            case (.some, .some): throw ValidationError("--site and --fleet cannot be given together")
            case (nil, .some):
                for (flag, set) in [("--scenario", scenario != nil), ("--listen-base-port", listenBasePort != nil), ("--gateway", gateway),
                                    ("--write-site", writeSite != nil), ("--speed", speed != 1)] where set {
                    throw ValidationError("\(flag) is for one site (--site), not --fleet")
                }
                if let broker, FleetSimRun.parseBroker(broker) == nil { throw ValidationError("--broker '\(broker)' should be HOST:PORT") }
            case (.some, nil):
                if broker != nil || stateDir != nil { throw ValidationError("--broker and --state-dir are for --fleet") }
            }
            guard speed > 0, speed <= 10_000 else { throw ValidationError("--speed must be in (0, 10000]") }
            if let p = listenBasePort, !(1024...65000).contains(p) { throw ValidationError("--listen-base-port must be 1024…65000") }
            if gateway, listenBasePort == nil { throw ValidationError("--gateway needs --listen-base-port") }
            guard (1...247).contains(unitsPerGateway) else { throw ValidationError("--units-per-gateway must be 1…247") }
            if let startAt, parseISOTime(startAt) == nil { throw ValidationError("--start-at '\(startAt)' is not an ISO 8601 UTC time like 2026-07-15T13:59:00Z") }
            if SimStart(rawValue: startPower) == nil { throw ValidationError("--start-power must be fallback or full-power") }
        }

        func run() async throws {
            if let fleet {
                try await FleetSimRun(fleetFile: fleet, broker: broker, stateDir: stateDir, profilesDir: profilesDir,
                                      startAt: startAt.flatMap(parseISOTime), duration: duration, quiet: quiet).run()
                return
            }
            let (site, profiles) = try siteOptions.load()
            var spec: SimSiteSpec
            do { spec = try SimSiteSpec(site: site, profiles: profiles, start: SimStart(rawValue: startPower) ?? .fallback) } catch {
                printError("\(siteOptions.site): error: \(error)")
                throw ExitCode(ExitCodes.validation)
            }
            spec.startSeconds = startAt.flatMap(parseISOTime) ?? Date().timeIntervalSince1970
            let sim = try SiteSimulator(spec: spec, seed: seed)
            var scenarioSignals: [ScenarioSignal] = []
            if let scenario {
                do {
                    let s = try ScenarioLoader.load(path: scenario)
                    try sim.schedule(s.faults)
                    scenarioSignals = s.signals
                } catch {
                    printError("\(error)")
                    throw ExitCode(ExitCodes.validation)
                }
            }
            let host: WireHost
            do { host = try WireHost(simulator: sim, basePort: listenBasePort ?? 0, gateway: gateway, unitsPerGateway: unitsPerGateway) } catch {
                printError("error: cannot serve the simulated devices: \(error)")
                throw ExitCode(ExitCodes.unreachable)
            }
            print("switchyard sim: \(spec.devices.count) devices of site '\(site.id)' on Modbus TCP")
            print(host.addressMap)
            if let writeSite {
                try rewriteSite(from: siteOptions.site, to: writeSite, endpoints: host.endpoints)
                print("wrote \(writeSite)")
            }
            fflushStdout()
            // One service in a ServiceGroup, like serve: SIGINT or SIGTERM shuts it down gracefully, --duration ends it.
            let service = SimulationService(sim: sim, host: host, period: .milliseconds(Int(1000 / speed)), signals: scenarioSignals,
                                            quiet: quiet, duration: duration)
            var logger = Logger(label: "switchyard")
            logger.logLevel = .notice
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            do { try await group.run() } catch {
                host.stop()
                throw error
            }
            host.stop()
            print("switchyard sim: stopped; \(sim.trips.count) breaker trip(s)")
        }

        static func at(_ s: ScenarioSignal) -> Double {
            switch s {
            case let .priceSpike(at, _, _): at
            case let .drEvent(at, _, _, _): at
            }
        }

        /// Copies the site file, pointing each device's `tcp:` address at the simulator.
        func rewriteSite(from: String, to: String, endpoints: [WireEndpoint]) throws {
            var lines = try String(contentsOfFile: from, encoding: .utf8).components(separatedBy: "\n")
            var byID: [String: WireEndpoint] = [:]
            for e in endpoints { byID[e.device] = e }
            var current: String?
            for i in lines.indices {
                let t = lines[i].trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("- id:") { current = t.dropFirst(5).trimmingCharacters(in: .whitespaces) }
                if let id = current, let e = byID[id], let r = lines[i].range(of: #"tcp:\s*"?[^",}]+"?"#, options: .regularExpression) {
                    lines[i].replaceSubrange(r, with: "tcp: \"\(e.host):\(e.port)\"")
                    if let u = lines[i].range(of: #"unit:\s*\d+"#, options: .regularExpression) { lines[i].replaceSubrange(u, with: "unit: \(e.unit)") }
                    current = nil
                }
            }
            try lines.joined(separator: "\n").write(toFile: to, atomically: true, encoding: .utf8)
        }
    }
}

/// The simulation on the wall clock: one second of physics per period, the measurements published to the
/// servers, scenario signals and breaker trips announced, and a one-line summary (unless quiet).
struct SimulationService: Service {
    let sim: SiteSimulator
    let host: WireHost
    let period: Duration
    let signals: [ScenarioSignal]
    let quiet: Bool
    /// Simulated seconds after which it stops (nil: until shut down).
    let duration: Double?

    func run() async throws {
        await cancelWhenGracefulShutdown {
            let clock = ContinuousClock()
            var next = clock.now
            var reported = 0
            var signalIndex = 0
            while !Task.isCancelled {
                sim.step(.seconds(1))
                host.publish()
                let s = sim.summary()
                while signalIndex < signals.count, Switchyard.Sim.at(signals[signalIndex]) <= s.timeSeconds {
                    print("t=\(Int(s.timeSeconds)) s scenario: \(signals[signalIndex])")
                    signalIndex += 1
                }
                if s.trips.count > reported {
                    for t in s.trips[reported...] { print("TRIP \(t)") }
                    reported = s.trips.count
                }
                if !quiet {
                    print("t=\(String(format: "%6.0f", s.timeSeconds)) s  site \(mw(s.siteKW))  mining \(mw(s.miningKW))  inference \(mw(s.inferenceKW))  aux \(mw(s.auxiliaryKW))"
                          + (s.trips.isEmpty ? "" : "  TRIPPED: " + s.trips.map(\.node).joined(separator: ",")))
                }
                fflushStdout()
                if let duration, s.timeSeconds >= duration { break }
                next = next.advanced(by: period)
                do { try await clock.sleep(until: next) } catch { break }
            }
        }
    }
}

