import Foundation
import HardwareProfiles
import Modbus
import Signals
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
        let fast = await demo.loop.fastPath(now: t, reason: "DR event ers-1", event: DREvent.operatorCap(id: "ers-1", capKW: 1000, from: t, until: end, reason: "test"))
        // Infeasible means infeasible: the meter reads 34 MW against a 1 MW cap.
        #expect(fast.mode == .overCap && !fast.brokerFeasible, "mode \(fast.mode), feasible \(fast.brokerFeasible)")
        var overCapTicks = 0
        var offAt: [String: Double] = [:], onAgainAt: [String: Double] = [:]
        let bound = demo.restartBoundS(afterPriceEvent: false)
        let caps = Dictionary(uniqueKeysWithValues: demo.site.nodes.map { ($0.id, $0.capKw) })
        var overCap = 0
        while t < end + bound {
            let r = await demo.tick(t)
            // Until the metered import is under the cap in force, the mode says so.
            if t < end, let m = r.siteKW, m > 1000 {
                overCapTicks += 1
                #expect(r.mode == .overCap && !r.brokerFeasible, "t+\(Int(t - end + 15)) s: metered \(Int(m)) kW, mode \(r.mode)")
            }
            t += 1
            let off = Set(demo.offContainers())
            for id in off where offAt[id] == nil { offAt[id] = t }
            for id in offAt.keys where !off.contains(id) && onAgainAt[id] == nil { onAgainAt[id] = t }
            for (id, cap) in caps where demo.sim.nodeLoadKW(id) > cap { overCap += 1 }
        }
        #expect(overCapTicks >= 10)
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

    /// A day of the demo site at its 1 s tick, in memory on virtual time: DR caps, price spikes and
    /// inference demand bursts. After each, every container is back within the bound the site file
    /// gives, and the site's import over the next minute is back at its pre-event level (less what
    /// inference demand fell since); no node ever over its cap, no DR cap exceeded once the
    /// containers have had time to ramp down, no breaker trip, the contract served.
    @Test func aDayAtOneSecondTicksComesBackAfterEveryEvent() async throws {
        // Loop time starts at 00:00 UTC, as the simulator's demand curve does.
        let day0 = demoT0 - 12 * 3600
        enum Kind { case cap(Double), price(Double), burst([String]) }
        let events: [(id: String, at: Double, forS: Double, kind: Kind)] = [
            ("dr-night", 1.5 * 3600, 900, .cap(1000)),
            ("spike-dawn", 4.25 * 3600, 1200, .price(900)),
            ("burst-all", 6.5 * 3600, 900, .burst(["gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-05", "gpu-06"])),
            ("dr-morning", 9 * 3600, 1800, .cap(20_000)),
            ("burst-2b", 11.5 * 3600, 600, .burst(["gpu-06"])),
            ("spike-noon", 12.75 * 3600, 600, .price(1500)),
            ("dr-contract", 15 * 3600, 1200, .cap(5000)),
            ("burst-1a", 20.5 * 3600, 900, .burst(["gpu-01", "gpu-02"])),
            ("dr-late", 22.5 * 3600, 300, .cap(500)),
        ]
        var prices: [(Double, Double)] = [(day0 - 3600, 38)]
        for h in 0..<24 { prices.append((day0 + Double(h) * 3600, 30 + 12 * sin(Double(h) / 24 * 2 * .pi))) }
        for e in events { if case .price(let p) = e.kind { prices.append((day0 + e.at, p)); prices.append((day0 + e.at + e.forS, 38)) } }
        prices.sort { $0.0 < $1.0 }
        let demo = try DemoSite.make(prices: prices)
        var sig = demo.source.signalsNow
        for e in events { if case .cap(let kw) = e.kind { sig.drEvents.append(DREvent(id: e.id, origin: .manual, action: .importCap(kW: kw), start: Date(timeIntervalSince1970: day0 + e.at), end: Date(timeIntervalSince1970: day0 + e.at + e.forS), reason: "test")) } }
        demo.source.update { $0 = sig }
        var bursts: [ScheduledFault] = []
        for e in events { if case .burst(let gpus) = e.kind { for g in gpus { bursts.append(ScheduledFault(atSeconds: e.at, device: g, action: .inferenceBurst(fractionOfMax: 1), durationSeconds: e.forS)) } } }
        try demo.sim.schedule(bursts)

        let caps = Dictionary(uniqueKeysWithValues: demo.site.nodes.map { ($0.id, $0.capKw) })
        // A new DR cap is met once the containers have ramped down: the slowest one's full power at its ramp, plus settling.
        let rampDownS = demo.containers.compactMap(\.limits).map { $0.rampKwPerS > 0 ? $0.maxKw / $0.rampKwPerS : 0 }.max()! + 2 * demo.site.tickSeconds
            + 5 * (demo.sim.spec.devices.map(\.lagSeconds).max() ?? 0)
        var firstOver: String?
        var overNode = 0, overDR = 0, contractMisses = 0, contractTicks = 0, inferenceFastPaths = 0, overCapModeTicks = 0
        var before: [String: (kw: Double, demand: Double)] = [:]
        var checked: [String] = []
        var energyMark: (at: Double, kWh: Double)?
        var t = day0
        while t < day0 + 86_400 {
            let s = t - day0
            let r = await demo.tick(t)
            if r.mode == .overCap { overCapModeTicks += 1 }
            // Between ticks, the inference watch (the frequency watch service runs it every 100 ms).
            if let f = await demo.loop.watchInference(now: t + 0.5), f.fastPath?.hasPrefix("inference rising") == true { inferenceFastPaths += 1 }
            t += demo.site.tickSeconds
            // The simulator starts every container at full power, before the controller's first write:
            // the caps are checked once the first shed has had time to land.
            for (id, cap) in caps where s >= rampDownS && demo.sim.nodeLoadKW(id) > cap {
                overNode += 1
                if firstOver == nil { firstOver = "\(id) \(Int(demo.sim.nodeLoadKW(id))) kW at \(Int(s)) s" }
            }
            for e in events {
                if case .cap(let kw) = e.kind, s >= e.at + rampDownS, s < e.at + e.forS, demo.sim.nodeLoadKW("site") > kw { overDR += 1 }
                // Pre-event import, just before it starts.
                if s == e.at - 1 { before[e.id] = (demo.sim.nodeLoadKW("site"), demo.inferenceDemandKW()) }
                let bound = demo.restartBoundS(afterPriceEvent: { if case .price = e.kind { return true }; return false }())
                if s == e.at + e.forS + bound {
                    #expect(demo.offContainers().isEmpty, "\(e.id): still off \(Int(bound)) s after it ended: \(demo.offContainers())")
                    energyMark = (s, demo.sim.nodeEnergyKWh("site"))
                }
                // The energy of the minute after the bound, as mean import, against the pre-event import.
                if let m = energyMark, s == e.at + e.forS + bound + 60, m.at == e.at + e.forS + bound, let b = before[e.id] {
                    let meanKW = (demo.sim.nodeEnergyKWh("site") - m.kWh) * 3600 / 60
                    let expected = demo.expectedImportKW(before: b.kw, demandBefore: b.demand)
                    #expect(meanKW >= expected, "\(e.id): \(Int(meanKW)) kW mean import after, \(Int(b.kw)) kW before (expected ≥ \(Int(expected)))")
                    checked.append(e.id)
                    energyMark = nil
                }
            }
            // The contract (gpu-01 + gpu-02 ≥ 1600 kW, 14:00–22:00 UTC) is served.
            if (14 * 3600..<22 * 3600).contains(s) {
                contractTicks += 1
                if (r.setpointsKW["gpu-01"] ?? 0) + (r.setpointsKW["gpu-02"] ?? 0) < 1600 - 1e-6 { contractMisses += 1 }
            }
        }
        print("day at 1 s: \(checked.count) events checked, \(inferenceFastPaths) inference fast paths, \(overCapModeTicks) over-cap ticks")
        #expect(checked == events.map(\.id))
        #expect(overNode == 0, "first: \(firstOver ?? "-")")
        #expect(overDR == 0)
        #expect(demo.sim.trips.isEmpty, "\(demo.sim.trips)")
        #expect(inferenceFastPaths > 0)
        #expect(contractTicks == 8 * 3600)
        #expect(contractMisses == 0)
    }
}
