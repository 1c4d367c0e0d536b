// A config swap is not a comm loss; the shutdown message says what is true (issue 12 §5, §7).

import Foundation
import HardwareProfiles
import Logging
import Modbus
import Signals
import Site
import Synchronization
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// Collects log records (message and metadata) for assertions.
final class LogCapture: Sendable {
    struct Record: Sendable { var level: Logger.Level; var message: String; var metadata: [String: String] }
    let records = Mutex<[Record]>([])
    var all: [Record] { records.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "capture") { _ in Handler(capture: self) }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let m = (self.metadata.merging(metadata ?? [:]) { $1 }).mapValues { "\($0)" }
            capture.records.withLock { $0.append(Record(level: level, message: "\(message)", metadata: m)) }
        }
    }
}

/// A host whose loops run on the simulator in memory (as `serve` builds them, over buses).
func simHost(yaml: String = hilSiteYAML) throws -> (LoopHost, SiteSimulator, Site) {
    let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
    let site = try Site.parse(yaml: yaml, file: "hil.yaml")
    let profiles = try loadProfiles(for: site, registry: registry)
    let sim = try SiteSimulator(spec: try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false), seed: 7)
    let builder: LoopHost.Builder = { site, state in
        var buses: [String: any RegisterBus] = [:]
        for d in site.devices where d.profile != nil { if let b = SimulatedBus(simulator: sim, device: d.id) { buses[d.id] = b } }
        var sig = SiteSignals()
        sig.energyPrices = [PricePoint(at: t0 - 3600, usdPerMWh: 40)]
        return try ControlLoop(site: site, profiles: try loadProfiles(for: site, registry: registry), buses: buses,
                               signals: try SiteSignalSource(site: site, signals: sig), options: .init(commWatchdogS: 20), restoring: state)
    }
    return (LoopHost(loop: try builder(site, LoopState()), builder: builder), sim, site)
}

@Suite("Config swap and shutdown", .serialized)
struct ConfigSwapTraceTests {
    /// Re-applying identical content (a rollback) must not cost a tick of telemetry: with external
    /// polling (as `serve` runs), the first tick of the new loop still sees the meters.
    @Test func swapCarriesTheTelemetry() async throws {
        let (host, sim, site) = try simHost()
        var t = t0
        // serve polls in its own service; the tick reads the latest telemetry.
        for _ in 0..<5 {
            await host.current.poller.poll(now: t)
            await host.current.tick(now: t, poll: false)
            sim.step(.seconds(1)); t += 1
        }
        let oldLoop = host.current
        let before = try #require(host.current.lastReport)
        #expect(before.siteKW != nil && before.mode == .normal)
        let applied = Task { try await host.apply(site, label: "v2 (rollback to identical content)") }
        try await until("the apply is queued") { host.state.withLock { !$0.pending.isEmpty } }
        let labels = await host.swapPending()
        #expect(labels == ["v2 (rollback to identical content)"])
        _ = try await applied.value
        #expect(host.generation == 1)
        // The new loop's first tick, before its poller service has polled anything.
        let r = await host.current.tick(now: t, poll: false)
        #expect(r.siteKW != nil, "site import lost across the swap")
        #expect(r.mode == .normal, "mode \(r.mode.rawValue) on the first tick after an identical config: \(r.interventions)")
        #expect(!r.interventions.contains { $0.contains("cannot get under") || $0.contains("comm loss") }, "\(r.interventions)")
        #expect(r.setpointsKW == before.setpointsKW || r.setpointsKW.keys == before.setpointsKW.keys)
        // The old loop is retired: an operator action or a pass that still holds it goes to the new one,
        // and they share one writer.
        #expect(oldLoop.writer === host.current.writer)
        oldLoop.addEvent(DREvent.operatorCap(id: "late", capKW: 2000, from: t, until: t + 600, reason: "sent to the old loop"))
        #expect(host.current.persistentState.events.map(\.id) == ["late"])
        let fp = await oldLoop.fastPath(now: t + 0.5, reason: "DR event late")
        #expect(fp.limitKW == 2000 && host.current.lastReport?.fastPath == "DR event late")
        #expect(oldLoop.persistentState == host.current.persistentState)
    }

    /// Shutdown with one container unreachable: the message names which were written, which failed,
    /// and what the failed one falls back to (its comm watchdog's fallback setpoint).
    @Test func shutdownMessageSaysWhatIsTrue() async throws {
        let (host, sim, _) = try simHost()
        let capture = LogCapture()
        let clock = ManualClock()
        let time = LoopTime(clock: clock, startingAt: t0)
        let service = HostedControlLoopService(host: host, time: time, period: .seconds(1), logger: capture.logger())
        let run = Task { try await service.run() }
        try await until("the first tick") { host.current.lastReport != nil && clock.sleeperCount > 0 }
        sim.inject(.silent, device: "asic-2")
        run.cancel()
        // (A cancellation that lands before the sleeper registers is released by moving time on.)
        while clock.sleeperCount > 0 || host.current.lastReport == nil { clock.advance(by: .seconds(1)); await Task.yield() }
        try await run.value
        let shutdown = try #require(capture.all.last { $0.message.hasPrefix("shutdown") })
        let text = shutdown.message + " " + shutdown.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        #expect(!text.contains("left in safe state") || shutdown.metadata["failed"] == "0", "contradicts itself: \(text)")
        #expect(shutdown.metadata["written"]?.contains("asic-1") == true, "\(text)")
        #expect(shutdown.metadata["written"]?.contains("asic-2") != true, "\(text)")
        #expect(shutdown.metadata["failed"]?.contains("asic-2") == true, "\(text)")
        #expect(shutdown.metadata["fallback"]?.contains("asic-2") == true && shutdown.metadata["fallback"]?.contains("0 kW") == true, "\(text)")
        #expect(shutdown.metadata["fallback"]?.contains("20 s") == true, "the watchdog time: \(text)")
        #expect(shutdown.level >= .warning, "a failed shutdown write is a warning, not a notice")
    }
}
