import ArgumentParser
import Basics
import FleetSim
import Foundation
import Logging
import ServiceLifecycle
import Site
import Synchronization

/// `switchyard sim --fleet FILE`: the simulated fleet in real time (`SimulatedFleet` on the wall clock) until
/// Ctrl-C or --duration, with a line per region every 10 s (unless --quiet).
struct FleetSimRun {
    let fleetFile: String
    let broker: String?
    let stateDir: String?
    let profilesDir: String?
    let startAt: Double?
    let duration: Double?
    let quiet: Bool

    static func parseBroker(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port),
              colon > s.startIndex else { return nil }
        return (String(s[..<colon]), port)
    }

    func run() async throws {
        let spec: FleetSpec
        do { spec = try FleetSpec.load(path: fleetFile) } catch {
            printError("\(error)")
            throw ExitCode(ExitCodes.validation)
        }
        let (host, port) = broker.flatMap(Self.parseBroker) ?? (spec.brokerHost ?? "127.0.0.1", spec.brokerPort ?? 1883)
        let temporary = stateDir == nil
        let dir = stateDir.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-fleet-\(getpid())")
        defer { if temporary { try? FileManager.default.removeItem(at: dir) } }
        var logger = Logger(label: "switchyard")
        logger.logLevel = .warning
        let totals = FleetTotals()
        let fleet: SimulatedFleet<ContinuousClock>
        do {
            fleet = try SimulatedFleet(spec: spec, brokerHost: host, brokerPort: port, workDir: dir, profilesDir: profilesDir,
                                       clock: ContinuousClock(), startAt: startAt ?? Date().timeIntervalSince1970, logger: logger,
                                       hooks: SimulatedFleetHooks(tick: { site, report in totals.record(site, report.miningKW, report.inferenceKW) }))
        } catch {
            printError("\(fleetFile): error: \(error)")
            throw ExitCode(ExitCodes.validation)
        }
        let regions = Dictionary(grouping: fleet.sites, by: \.entry.region).mapValues { $0.map(\.entry.id) }
        print("switchyard sim: \(fleet.sites.count) simulated sites in \(regions.count) regions (\(regions.keys.sorted().joined(separator: ", "))), "
              + "each with its own controller and Sparkplug edge node, on MQTT \(host):\(port); files in \(dir.path)")
        fflushStdout()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: fleet)]
        if !quiet || duration != nil {
            services.append(.init(service: FleetSimReporter(totals: totals, regions: regions, quiet: quiet, duration: duration),
                                  successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        print("switchyard sim: fleet stopped")
    }
}

/// The newest mining and inference kW of each site.
final class FleetTotals: Sendable {
    let latest = Mutex<[String: (mining: Double, inference: Double)]>([:])
    func record(_ site: String, _ mining: Double, _ inference: Double) { latest.withLock { $0[site] = (mining, inference) } }
}

/// A line per region every 10 s; ends the run after `duration` seconds, or at once on SIGTERM/SIGINT (the group
/// shuts its services down last to first, so a reporter that kept sleeping held the whole fleet up: `make
/// fleet-demo` found `sim --fleet` ignoring SIGTERM).
struct FleetSimReporter: Service {
    let totals: FleetTotals
    let regions: [String: [String]]
    let quiet: Bool
    let duration: Double?

    func run() async throws {
        do { try await cancelWhenGracefulShutdown { try await report() } } catch is CancellationError { return }
    }

    private func report() async throws {
        let start = ContinuousClock.now
        while true {
            let left = duration.map { $0 - (ContinuousClock.now - start).seconds } ?? .infinity
            if left <= 0 { return }
            try await Task.sleep(for: .seconds(min(10, left)))
            guard !quiet else { continue }
            let latest = totals.latest.withLock { $0 }
            for (region, ids) in regions.sorted(by: { $0.key < $1.key }) {
                let ticking = ids.filter { latest[$0] != nil }.count
                let mining = ids.compactMap { latest[$0]?.mining }.reduce(0, +)
                let inference = ids.compactMap { latest[$0]?.inference }.reduce(0, +)
                print("\(region): \(ticking)/\(ids.count) sites ticking, mining \(mw(mining)), inference \(mw(inference))")
            }
            fflushStdout()
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
