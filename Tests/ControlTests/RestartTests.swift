import Foundation
import HardwareProfiles
import Modbus
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// The demo site (examples/demo-site.yaml) in memory, at its real settings: 1 s tick, its ramps,
/// dwell times and restore rate. The loop polls the simulated registers; physics steps one tick
/// of virtual time after each pass.
struct DemoSite {
    let site: Site
    let sim: SiteSimulator
    let loop: ControlLoop
    let source: SiteSignalSource

    static func make(prices: [(Double, Double)], seed: UInt64 = 11, edit: (String) -> String = { $0 }) throws -> DemoSite {
        let path = packageRoot.appendingPathComponent("examples/demo-site.yaml")
        let site = try Site.parse(yaml: edit(try String(contentsOf: path, encoding: .utf8)), file: path.path)
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let profiles = try loadProfiles(for: site, registry: registry)
        let spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
        let sim = try SiteSimulator(spec: spec, seed: seed)
        var buses: [String: any RegisterBus] = [:]
        for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id)! }
        var sig = SiteSignals()
        sig.energyPrices = prices.map { PricePoint(at: $0.0, usdPerMWh: $0.1) }
        let source = try SiteSignalSource(site: site, signals: sig)
        var options = ControlOptions(commWatchdogS: 30)
        options.explainEveryTick = false
        options.serialPolling = true
        let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source, options: options)
        return DemoSite(site: site, sim: sim, loop: loop, source: source)
    }

    /// One pass at loop time `t`, then one tick of physics.
    @discardableResult
    func tick(_ t: Double) async -> TickReport {
        let r = await loop.tick(now: t)
        sim.step(.milliseconds(Int64(site.tickSeconds * 1000)))
        return r
    }

    var containers: [SiteDevice] { site.devices.filter { $0.deviceClass == .mining || $0.deviceClass == .inference } }

    /// How long after an event ends every container must be running again, from the site file:
    /// the longest off dwell (`min_off_s`; after a price event also the strike's `min_off_s`, both
    /// counted from the start of the curtailment, so this is an upper bound), plus the restore time:
    /// the ticks the restore budget needs for every container's full power (`Σ max_kw ÷
    /// restore_rate_kw_per_tick`) and the longest ramp from min-stable to max at `ramp_kw_per_s`,
    /// plus two ticks (one to see the event end, one for the writes to land) and the simulated
    /// containers' settling time (5 time constants of their power lag).
    func restartBoundS(afterPriceEvent: Bool) -> Double {
        let tick = site.tickSeconds
        let limits = containers.compactMap(\.limits)
        var dwell = limits.map(\.minOffS).max() ?? 0
        if afterPriceEvent { dwell = max(dwell, site.economics.strike?.minOffS ?? 0) }
        let total = limits.reduce(0) { $0 + $1.maxKw }
        let staggerTicks = site.restoreRateKwPerTick.map { ($0 > 0 ? total / $0 : 0).rounded(.up) } ?? 1
        let rampTicks = limits.map { $0.rampKwPerS > 0 ? (($0.maxKw - $0.minStableKw) / ($0.rampKwPerS * tick)).rounded(.up) : 1 }.max() ?? 1
        let lag = sim.spec.devices.map(\.lagSeconds).max() ?? 0
        return dwell + (staggerTicks + rampTicks + 2) * tick + 5 * lag
    }

    /// Containers whose commanded setpoint is below their min-stable power (off).
    func offContainers() -> [String] {
        containers.filter { sim.setpointKW($0.id) < max(1, $0.limits?.minStableKw ?? 0) }.map(\.id)
    }

    /// Total inference demand the simulated GPUs have now (kW).
    func inferenceDemandKW() -> Double { sim.readings().demandKW.reduce(0, +) }

    /// The import the site should return to: the pre-event import, less what inference demand fell
    /// since (times the cooling the IT load brings), with 2 % for noise and part-load efficiency.
    func expectedImportKW(before: Double, demandBefore: Double) -> Double {
        let cooling = site.devices.compactMap(\.fractionOfIT).reduce(0, +)
        return before - max(0, demandBefore - inferenceDemandKW()) * (1 + cooling) - 0.02 * before
    }
}

/// 2026-07-15T12:00:00Z (prices and contracts of the demo site: the contract window is 14:00–22:00).
let demoT0 = 1_784_116_800.0

@Suite("Restart after curtailment, demo site settings", .serialized)
struct RestartTests {
    /// Issue 12 §0: a 15 s DR cap of 1000 kW shed the demo site, and it never came back.
    @Test func everyContainerIsBackAfterADRCap() async throws {
        let demo = try DemoSite.make(prices: [(demoT0 - 3600, 40)])
        var t = demoT0
        for _ in 0..<120 { await demo.tick(t); t += 1 }
        #expect(demo.offContainers().isEmpty, "not all running before the event: \(demo.offContainers())")
        let before = demo.sim.nodeLoadKW("site"), demandBefore = demo.inferenceDemandKW()
        #expect(before > 30_000)

        // Full shed through the fast path, as the API does.
        let end = t + 15
        await demo.loop.fastPath(now: t, reason: "DR event ers-1", event: ManualEvent(id: "ers-1", capKW: 1000, from: t, until: end, reason: "test"))
        var offAt: [String: Double] = [:], onAgainAt: [String: Double] = [:]
        let bound = demo.restartBoundS(afterPriceEvent: false)
        let caps = Dictionary(uniqueKeysWithValues: demo.site.nodes.map { ($0.id, $0.capKw) })
        var overCap = 0
        while t < end + bound {
            await demo.tick(t)
            t += 1
            let off = Set(demo.offContainers())
            for id in off where offAt[id] == nil { offAt[id] = t }
            for id in offAt.keys where !off.contains(id) && onAgainAt[id] == nil { onAgainAt[id] = t }
            for (id, cap) in caps where demo.sim.nodeLoadKW(id) > cap { overCap += 1 }
        }
        #expect(offAt.count == demo.containers.count, "the DR cap did not shed every container: \(offAt.count)")
        #expect(demo.offContainers().isEmpty, "still off \(Int(bound)) s after the event ended: \(demo.offContainers())")
        // The dwell held: none restarted before its min_off_s.
        for d in demo.containers {
            guard let off = offAt[d.id], let on = onAgainAt[d.id] else { continue }
            #expect(on - off >= (d.limits?.minOffS ?? 0), "\(d.id) restarted \(on - off) s after it stopped")
        }
        let expected = demo.expectedImportKW(before: before, demandBefore: demandBefore)
        #expect(demo.sim.nodeLoadKW("site") >= expected, "site import \(demo.sim.nodeLoadKW("site")) kW, \(before) kW before the event")
        #expect(overCap == 0)
        #expect(demo.sim.trips.isEmpty)
    }
}
