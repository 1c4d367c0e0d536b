import Foundation
import HardwareProfiles
import I2C
import Logging
import Modbus
import Signals
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// TestSupport's HIL site: 6 MW import, xfmr-1 3.8 MW with three 1 MW ASIC containers, a 0.8 MW GPU container
/// with the acme contract, meters on the site and the transformer, cooling at 5 % of IT load.
let hilSiteYAML = HILSite.yaml()

/// 2026-07-15T12:00:00Z
let t0 = 1_784_116_800.0

struct Rig {
    let site: Site
    let profiles: [String: DeviceProfile]
    let sim: SiteSimulator
    let host: WireHost?
    let loop: ControlLoop
    let source: SiteSignalSource
    let clients: [ModbusClient]

    /// Over the wire (each device on its own loopback port) or in memory.
    static func make(wire: Bool, prices: [(Double, Double)] = [(t0 - 3600, 40)], options: ControlOptions = .init(commWatchdogS: 20),
                     penalty: Double = 400) async throws -> Rig {
        let site = try Site.parse(yaml: hilSiteYAML.replacingOccurrences(of: "penalty_usd_per_mwh: 400", with: "penalty_usd_per_mwh: \(Int(penalty))"), file: "hil.yaml")
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let profiles = try loadProfiles(for: site, registry: registry)
        let spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
        let sim = try SiteSimulator(spec: spec, seed: 7)
        var buses: [String: any RegisterBus] = [:]
        var host: WireHost?
        var clients: [ModbusClient] = []
        if wire {
            let h = try WireHost(simulator: sim)
            for e in h.endpoints {
                let c = ModbusClient(endpoint: .tcp(host: e.host, port: e.port),
                                     options: .init(responseTimeout: .milliseconds(200), backoff: .immediate), name: e.device)
                clients.append(c)
                buses[e.device] = c.bus(unit: e.unit, deviceName: e.device)
            }
            host = h
        } else {
            for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id)! }
        }
        var sig = SiteSignals()
        sig.energyPrices = prices.map { PricePoint(at: $0.0, usdPerMWh: $0.1) }
        let source = try SiteSignalSource(site: site, signals: sig)
        let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source, options: options)
        return Rig(site: site, profiles: profiles, sim: sim, host: host, loop: loop, source: source, clients: clients)
    }

    /// One tick at loop time `now`, then one second of physics.
    @discardableResult
    func tick(_ now: Double) async -> TickReport {
        host?.publish()
        let r = await loop.tick(now: now)
        await host?.settle()
        sim.step(.seconds(1))
        return r
    }

    func miningSetpoints() -> [Double] { ["asic-1", "asic-2", "asic-3"].map { sim.setpointKW($0) } }

    func stop() async {
        for c in clients { await c.close() }
        host?.stop()
    }
}

@Suite("Hardware in the loop", .serialized)
struct HILTests {
    @Test func priceSpikeCurtailsMiningWithinTwoTicks() async throws {
        let spike = t0 + 20
        let rig = try await Rig.make(wire: true, prices: [(t0 - 3600, 40), (spike, 900)])
        var t = t0
        while t < spike { await rig.tick(t); t += 1 }
        #expect(rig.miningSetpoints().allSatisfy { $0 > 500 }, "mining should run at $40: \(rig.miningSetpoints())")
        await rig.tick(t); t += 1
        await rig.tick(t); t += 1
        #expect(rig.miningSetpoints() == [0, 0, 0], "mining not curtailed two ticks after the spike: \(rig.miningSetpoints())")
        let r = try #require(rig.loop.lastReport)
        #expect(r.reasons["asic-1"]?.contains("900") == true, "\(r.reasons["asic-1"] ?? "")")
        await rig.stop()
    }

    @Test func drCapThroughTheFastPath() async throws {
        let rig = try await Rig.make(wire: true)
        var t = t0
        for _ in 0..<25 { await rig.tick(t); t += 1 }
        let before = rig.sim.nodeLoadKW("site")
        #expect(before > 3000)
        // The event arrives between ticks: the fast path writes at once, without polling or waiting.
        let cap = 2000.0
        let r = await rig.loop.fastPath(now: t, reason: "DR event ers-1",
                                        event: DREvent.operatorCap(id: "ers-1", capKW: cap, from: t, until: t + 3600, reason: "test"))
        #expect(r.fastPath == "DR event ers-1")
        #expect(!r.writes.isEmpty && r.writes.allSatisfy(\.verified))
        #expect(r.limitKW == cap)
        await rig.host?.settle()
        // Within the ramp time (≤ 1000 kW at 500 kW/s, plus the first-order lag) the site is under the cap.
        for _ in 0..<8 { rig.sim.step(.seconds(1)) }
        #expect(rig.sim.nodeLoadKW("site") <= cap, "site \(rig.sim.nodeLoadKW("site")) kW over the DR cap")
        for _ in 0..<10 { let rr = await rig.tick(t); t += 1; #expect(rr.limitKW == cap) }
        #expect(rig.sim.nodeLoadKW("site") <= cap)
        #expect(rig.sim.trips.isEmpty)
        await rig.stop()
    }

    @Test func meterLossShedsToSafeLevel() async throws {
        let rig = try await Rig.make(wire: true)
        var t = t0
        for _ in 0..<10 { await rig.tick(t); t += 1 }
        #expect(rig.miningSetpoints().allSatisfy { $0 > 0 })
        rig.sim.inject(.silent, device: "site-meter")
        var shedAt: Double?
        for _ in 0..<20 {
            let r = await rig.tick(t)
            if shedAt == nil, r.mode == .commLoss { shedAt = t }
            t += 1
        }
        let at = try #require(shedAt)
        #expect(at - t0 - 10 <= 12, "comm loss declared after \(at - t0 - 10) s")
        #expect(rig.miningSetpoints() == [0, 0, 0])
        #expect(rig.sim.setpointKW("gpu-1") > 0)  // inference held, not shed
        await rig.stop()
    }

    @Test func oneDeadContainerLeavesTheOthersAlone() async throws {
        let rig = try await Rig.make(wire: true)
        var t = t0
        for _ in 0..<5 { await rig.tick(t); t += 1 }
        rig.sim.inject(.silent, device: "asic-2")
        let deadBefore = rig.loop.poller.attempts("asic-2"), liveBefore = rig.loop.poller.attempts("asic-1")
        for _ in 0..<30 {
            await rig.tick(t)
            // Every other device was read this very tick.
            for id in ["asic-1", "asic-3", "gpu-1", "site-meter", "xfmr-1-meter"] {
                #expect(rig.loop.poller.telemetry(id)?.lastSuccess == t, "\(id) not polled at \(t)")
            }
            t += 1
        }
        #expect(rig.loop.poller.attempts("asic-1") - liveBefore == 30)
        // The dead one backs off: far fewer attempts than ticks.
        #expect(rig.loop.poller.attempts("asic-2") - deadBefore <= 8)
        #expect(rig.loop.poller.telemetry("asic-2")?.lastError?.description.contains("timeout") == true)
        await rig.stop()
    }

    @Test func killedControllerContainersFallBackThroughWatchdog() async throws {
        let rig = try await Rig.make(wire: true)
        var t = t0
        for _ in 0..<10 { await rig.tick(t); t += 1 }
        #expect(rig.miningSetpoints().allSatisfy { $0 > 0 })
        // The controller is gone: no more ticks, no more keep-alives. The watchdog (20 s) expires.
        for _ in 0..<25 { rig.sim.step(.seconds(1)) }
        for id in ["asic-1", "asic-2", "asic-3", "gpu-1"] { #expect(rig.sim.isFallbackActive(id), "\(id) did not fall back") }
        for _ in 0..<10 { rig.sim.step(.seconds(1)) }
        #expect(rig.sim.powerKW("asic-1") < 5)  // fallback setpoint 0 kW
        await rig.stop()
    }

    @Test func restartResumesFromSavedState() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-state-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rig = try await Rig.make(wire: false)
        var t = t0
        for _ in 0..<5 { await rig.tick(t); t += 1 }
        rig.loop.addEvent(DREvent.operatorCap(id: "ers-9", capKW: 2500, from: t, until: t + 600, reason: "saved"))
        let store = StateFile(directory: dir)
        try store.save(rig.loop.persistentState)
        let back = try #require(try store.load())
        #expect(back == rig.loop.persistentState)
        #expect(back.events.first?.id == "ers-9")
        #expect(back.commandedKW["asic-1"] == rig.sim.setpointKW("asic-1"))
    }
}

@Suite("Explaining on demand")
struct OnDemandExplainTests {
    /// Replays skip rendering every reason each tick and render the few they show later.
    /// Two identical in-memory rigs, one rendering eagerly and one on demand, through a price
    /// spike, a DR cap and a dead container: the reasons, setpoints and telemetry agree every tick.
    @Test func reasonsRenderedLaterMatchTheTickReasons() async throws {
        var lazy = ControlOptions(commWatchdogS: 20)
        lazy.explainEveryTick = false
        let prices: [(Double, Double)] = [(t0 - 3600, 40), (t0 + 10, 900), (t0 + 20, 35)]
        let eager = try await Rig.make(wire: false, prices: prices)
        let later = try await Rig.make(wire: false, prices: prices, options: lazy)
        var t = t0
        var compared = 0
        var governorLines = 0
        for k in 0..<40 {
            if k == 25 {
                let e = DREvent.operatorCap(id: "ers-1", capKW: 1500, from: t, until: t + 3600, reason: "test")
                eager.loop.addEvent(e)
                later.loop.addEvent(e)
            }
            if k == 30 {
                eager.sim.inject(.silent, device: "asic-2")
                later.sim.inject(.silent, device: "asic-2")
            }
            let a = await eager.tick(t), b = await later.tick(t)
            #expect(b.reasons.isEmpty, "the lazy loop rendered reasons at tick \(k)")
            #expect(a.setpointsKW == b.setpointsKW, "tick \(k)")
            for id in a.setpointsKW.keys.sorted() {
                let want = try #require(a.reasons[id])
                #expect(b.reason(for: id) == want, "tick \(k) \(id)")
                #expect(a.reason(for: id) == want)
                if want.hasPrefix("governor:") { governorLines += 1 }
                compared += 1
            }
            for id in ["asic-1", "asic-2", "gpu-1", "site-meter"] {
                let ta = try #require(eager.loop.poller.telemetry(id)), tb = try #require(later.loop.poller.telemetry(id))
                #expect(ta.values == tb.values && ta.readAt == tb.readAt && ta.labels == tb.labels, "\(id) at tick \(k)")
                #expect(ta.value("active_power_w") == ta.values["active_power_w"])
            }
            t += 1
        }
        #expect(compared >= 40 * 4)
        #expect(governorLines > 0, "no tick had the governor override the broker; the test lost its point")
        #expect(later.loop.lastReport?.reason(for: "no-such-device") == nil)
    }
}

/// 24 simulated hours, in memory, with random faults, price swings and DR events.
@Suite("24 h soak on virtual time")
struct SoakTests {
    @Test func dayWithFaultsPricesAndEvents() async throws {
        var rng = SeededRandom(seed: 2026)
        // Hourly prices with swings and a few spikes.
        var prices: [(Double, Double)] = []
        for h in 0..<25 {
            let base = 35 + 25 * sin(Double(h) / 24 * 2 * .pi)
            prices.append((t0 + Double(h) * 3600, [3, 11, 17].contains(h) ? Double.random(in: 300...1500, using: &rng) : base))
        }
        // An SLA-grade penalty: serving the contract is always worth more than any price here, so it must be served.
        let rig = try await Rig.make(wire: false, prices: prices, options: .init(commWatchdogS: 30), penalty: 5000)
        var sig = rig.source.signalsNow
        for k in 0..<4 {
            let start = t0 + Double(k) * 6 * 3600 + 1800
            sig.drEvents.append(DREvent(id: "dr-\(k)", origin: .manual, action: .importCap(kW: Double.random(in: 2500...4500, using: &rng)),
                                        start: Date(timeIntervalSince1970: start), end: Date(timeIntervalSince1970: start + 1800), reason: "test"))
        }
        rig.source.update { $0 = sig }
        var faults: [ScheduledFault] = []
        let devices = ["asic-1", "asic-2", "asic-3", "gpu-1", "xfmr-1-meter", "site-meter"]
        for _ in 0..<30 {
            let at = Double.random(in: 60...86_000, using: &rng)
            let device = devices.randomElement(using: &rng)!
            let fault: SimFault = [.silent, .exception(.serverDeviceBusy), .garbage, .frozen].randomElement(using: &rng)!
            faults.append(ScheduledFault(atSeconds: at, device: device, action: .fault(fault), durationSeconds: Double.random(in: 5...120, using: &rng)))
        }
        try rig.sim.schedule(faults)
        let caps = Dictionary(uniqueKeysWithValues: rig.site.nodes.map { ($0.id, $0.capKw) })
        var overTicks = 0, contractMisses = 0, contractTicks = 0
        let tickS = 5.0
        var t = t0
        var lastLimit = Double.infinity, limitChangedAt = -Double.infinity
        while t < t0 + 86_400 {
            let r = await rig.loop.tick(now: t)
            if r.limitKW < lastLimit { limitChangedAt = t }
            lastLimit = r.limitKW
            for _ in 0..<Int(tickS) {
                rig.sim.step(.seconds(1))
                // The hard invariant, at every simulated second: no node over its cap (margin is the tolerance).
                for (id, cap) in caps {
                    var limit = cap
                    // A new, lower DR cap is met within one tick plus the ramp time (1 MW at 500 kW/s, with lag).
                    if id == "site", t - limitChangedAt > tickS + 8 { limit = min(limit, r.limitKW) }
                    if rig.sim.nodeLoadKW(id) > limit + 1e-6 { overTicks += 1 }
                }
            }
            // The contract (gpu-1 ≥ 400 kW, 08:00–20:00 UTC) is served whenever gpu-1 is reachable.
            let hour = Int((t - t0) / 3600 + 12) % 24
            if (8..<20).contains(hour), rig.loop.poller.telemetry("gpu-1")?.consecutiveFailures == 0 {
                contractTicks += 1
                if r.setpointsKW["gpu-1"]! < 400 - 1e-6 { contractMisses += 1 }
            }
            t += tickS
        }
        #expect(rig.sim.trips.isEmpty, "\(rig.sim.trips)")
        #expect(overTicks == 0)
        #expect(contractTicks > 1000)
        #expect(contractMisses == 0)
    }
}

@Suite("Heartbeat relay")
struct HeartbeatTests {
    @Test func togglesWhileHealthyAndDropsWhenTheLoopStalls() async throws {
        let rig = try await Rig.make(wire: false)
        let bus = FakeI2CBus(devices: [0x20: .pcf8574(inputs: 0xFF)])
        let hw = try I2CHardware(config: I2CConfig(bus: "fake", heartbeat: .init(expander: .pcf8574, address: 0x20, pin: 3, safeLevel: false)), bus: bus)
        let loop = rig.loop
        let service = HeartbeatService(hardware: hw, loop: { loop }, time: LoopTime(clock: ManualClock(), startingAt: t0),
                                       maxTickAgeS: 3, logger: Logger(label: "test"))
        // No tick yet: not healthy, the relay holds its safe level.
        #expect(await service.step(now: t0) == false)
        #expect(bus.pinLevel(3, at: 0x20) == false)
        await rig.tick(t0)
        var levels: [Bool] = []
        for k in 1...4 {
            #expect(await service.step(now: t0 + Double(k) * 0.5))
            levels.append(bus.pinLevel(3, at: 0x20)!)
        }
        #expect(levels == [true, false, true, false])  // toggling
        // The loop stalls: 10 s without a tick. The relay stops toggling and holds the safe level.
        #expect(await service.step(now: t0 + 10) == false)
        #expect(bus.pinLevel(3, at: 0x20) == false)
        #expect(await service.step(now: t0 + 10.5) == false)
        #expect(bus.pinLevel(3, at: 0x20) == false)
    }
}
