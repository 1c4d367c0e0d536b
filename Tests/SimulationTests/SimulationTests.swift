import Foundation
import HardwareProfiles
import Modbus
import Site
import Testing
import TestSupport
@testable import Simulation

func profile(_ file: String) throws -> DeviceProfile {
    try ProfileLoader.loadValid(path: packageRoot.appendingPathComponent("hardware-profiles/\(file).yaml").path)
}

/// site (10 MW) → xfmr-1 (3 MW) → pdu-1 (2.5 MW) → asic-1, asic-2 (1 MW each); gpu-1 (0.8 MW) on xfmr-1;
/// cooling at 5 % of IT load on the site; meters on site and xfmr-1.
func smallSite(asicMaxKW: Double = 1000, xfmrCapKW: Double = 3000, trip: TripCurve = .init(), watchdogS: Double = 30) throws -> SimSiteSpec {
    let asic = try profile("reference-asic-container")
    let gpu = try profile("reference-gpu-container")
    let umg = try profile("janitza-umg604")
    let sdm = try profile("eastron-sdm630")
    let px3 = try profile("raritan-px3")
    return SimSiteSpec(id: "test", nodes: [
        SimNode(id: "site", parent: nil, capKW: 10_000),
        SimNode(id: "xfmr-1", parent: "site", capKW: xfmrCapKW, trip: trip),
        SimNode(id: "pdu-1", parent: "xfmr-1", capKW: 2500),
    ], devices: [
        SimDevice(id: "site-meter", role: .meter, node: "site", profile: umg),
        SimDevice(id: "xfmr-1-meter", role: .meter, node: "xfmr-1", profile: sdm),
        SimDevice(id: "pdu-1", role: .pdu, node: "pdu-1", profile: px3),
        SimDevice(id: "asic-1", role: .asicContainer, node: "pdu-1", profile: asic, maxKW: asicMaxKW, rampKWPerS: 200, lagSeconds: 1,
                  noiseFraction: 0, efficiencyJPerTH: 20, commWatchdogS: watchdogS, fallbackKW: 100),
        SimDevice(id: "asic-2", role: .asicContainer, node: "pdu-1", profile: asic, maxKW: asicMaxKW, rampKWPerS: 200, lagSeconds: 1,
                  noiseFraction: 0, efficiencyJPerTH: 20, commWatchdogS: watchdogS, fallbackKW: 100),
        SimDevice(id: "gpu-1", role: .gpuContainer, node: "xfmr-1", profile: gpu, maxKW: 800, rampKWPerS: 100, lagSeconds: 1,
                  noiseFraction: 0, gpus: 1000, commWatchdogS: watchdogS, fallbackKW: 400),
        SimDevice(id: "cooling", role: .auxiliary, node: "site", profile: asic, auxFraction: 0.05),
    ])
}

/// Writes a point through a bus the way the actuators will: encoded from the profile.
func writePoint(_ bus: some RegisterBus, _ profile: DeviceProfile, _ name: String, _ value: Double) async throws {
    let p = try #require(try profile.resolvedPoints().first { $0.name == name })
    try await bus.writeRegisters(address: p.address, values: try PointEncoder.encode(value, for: p))
}

func readPoint(_ bus: some RegisterBus, _ profile: DeviceProfile, _ name: String) async throws -> Double {
    let p = try #require(try profile.resolvedPoints().first { $0.name == name })
    let words = try await bus.read(p.table, address: p.address, count: p.type.registerCount)
    switch PointDecoder.decode(p, words: words) {
    case .value(.number(let v)): return v
    case .value(.state(let c, _)): return Double(c)
    case .value(.bool(let b)): return b ? 1 : 0
    default: Issue.record("\(name) did not decode"); return .nan
    }
}

@Suite("Simulated site physics (virtual time)")
struct PhysicsTests {
    @Test func metersSumThroughTheTreeAndEnergyIntegrates() throws {
        let sim = try SiteSimulator(spec: try smallSite(watchdogS: 0))  // no controller: watchdog off
        sim.run(for: .seconds(600))
        let a1 = sim.powerKW("asic-1"), a2 = sim.powerKW("asic-2"), g = sim.powerKW("gpu-1"), c = sim.powerKW("cooling")
        #expect(abs(a1 - 1000) < 1 && abs(a2 - 1000) < 1)
        #expect(g > 300 && g <= 800)  // limited by the inference demand curve
        #expect(abs(sim.nodeLoadKW("pdu-1") - (a1 + a2)) < 1e-6)
        #expect(abs(sim.nodeLoadKW("xfmr-1") - (a1 + a2 + g)) < 1e-6)
        #expect(abs(c - 0.05 * (a1 + a2 + g)) < 1e-6)
        #expect(abs(sim.nodeLoadKW("site") - (a1 + a2 + g + c)) < 1e-6)
        #expect(abs(sim.pointValue("site-meter", "active_power_w")! - sim.nodeLoadKW("site") * 1000) < 1e-3)
        // Energy: ~600 s at a steady load integrates to load × 1/6 h.
        let e = sim.nodeEnergyKWh("xfmr-1")
        #expect(abs(e - sim.nodeLoadKW("xfmr-1") / 6) < 0.01 * e)
        // Per-phase split and current.
        let i1 = sim.pointValue("xfmr-1-meter", "current_l1_a")!
        // xfmr-1 (3 MW) is metered at medium voltage, through PTs: 13.8 kV line to line, 7 967 V line to neutral.
        let v1 = sim.pointValue("xfmr-1-meter", "voltage_l1_v")!
        #expect(abs(v1 - 13_800 / 3.0.squareRoot()) < 1e-6)
        #expect(abs(i1 - sim.nodeLoadKW("xfmr-1") * 1000 / 3 / (v1 * 0.98)) < 1e-6)
        #expect(sim.trips.isEmpty)
    }

    @Test func powerFollowsSetpointWithRampAndLag() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let bus = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
        let asic = try profile("reference-asic-container")
        try await writePoint(bus, asic, "power_setpoint_w", 200_000)
        sim.step(.seconds(1))
        // Ramp 200 kW/s: the reference moved 200 kW; lag 1 s: power moved ~63 % of that.
        let p1 = sim.powerKW("asic-1")
        #expect(p1 < 1000 && p1 > 800)
        sim.run(for: .seconds(4))
        #expect(abs(sim.powerKW("asic-1") - 200) > 1)  // still settling: first-order lag
        sim.run(for: .seconds(20))
        #expect(abs(sim.powerKW("asic-1") - 200) < 0.5)
        #expect(try await readPoint(bus, asic, "run_state") == 3)  // curtailed
        // Hashrate proportional to power through the efficiency curve.
        let h = try await readPoint(bus, asic, "hashrate_ths")
        #expect(h > 0 && h < 200_000 / 20)
    }

    @Test func commWatchdogFallsBackAfterConfiguredTime() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let bus = try #require(SimulatedBus(simulator: sim, device: "asic-2"))
        let asic = try profile("reference-asic-container")
        try await writePoint(bus, asic, "comm_watchdog_s", 20)
        try await writePoint(bus, asic, "fallback_setpoint_w", 150_000)
        try await writePoint(bus, asic, "power_setpoint_w", 900_000)
        sim.run(for: .seconds(19))
        #expect(!sim.isFallbackActive("asic-2"))
        sim.run(for: .seconds(2))
        #expect(sim.isFallbackActive("asic-2"))
        sim.run(for: .seconds(30))
        #expect(abs(sim.powerKW("asic-2") - 150) < 1)
        #expect(try await readPoint(bus, asic, "x_fallback_active") == 1)
        // A write (keep-alive) ends the fallback.
        try await writePoint(bus, asic, "power_setpoint_w", 900_000)
        #expect(!sim.isFallbackActive("asic-2"))
    }

    @Test func breakerTripsWhenCapOverrunLongEnough() throws {
        // 2 × 1 MW + GPU on a 1.5 MW transformer: ~1.6× overload trips in ~10/(1.6²−1) ≈ 6 s.
        let sim = try SiteSimulator(spec: try smallSite(xfmrCapKW: 1500, trip: TripCurve(threshold: 10)))
        sim.run(for: .seconds(2))
        #expect(sim.trips.isEmpty)
        sim.run(for: .seconds(30))
        let trip = try #require(sim.trips.first)
        #expect(trip.node == "xfmr-1")
        #expect(trip.atSeconds > 2 && trip.atSeconds < 10)
        #expect(sim.nodeLoadKW("xfmr-1") == 0)
        #expect(sim.powerKW("asic-1") == 0)
        #expect(sim.pointValue("pdu-1", "outlet_1_state") == 0)
        // Within the cap nothing trips, however long.
        let ok = try SiteSimulator(spec: try smallSite(xfmrCapKW: 3000))
        ok.run(for: .seconds(3600))
        #expect(ok.trips.isEmpty)
    }

    @Test func sameSeedSameTrajectory() throws {
        var spec = try smallSite()
        spec.devices[3].noiseFraction = 0.01
        let a = try SiteSimulator(spec: spec, seed: 42), b = try SiteSimulator(spec: spec, seed: 42)
        a.run(for: .seconds(300)); b.run(for: .seconds(300))
        #expect(a.summary() == b.summary())
    }

    @Test func outOfLimitWritesAreRejectedLikeAController() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let bus = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
        let asic = try profile("reference-asic-container")
        let p = try #require(try asic.resolvedPoints().first { $0.name == "comm_watchdog_s" })
        await #expect { try await bus.writeRegisters(address: p.address, values: [5]) }
            throws: { ($0 as? ModbusError)?.kind == .exception(.illegalDataValue) }
        let readOnly = try #require(try asic.resolvedPoints().first { $0.name == "active_power_w" })
        await #expect { try await bus.writeRegisters(address: readOnly.address, values: [0, 0]) }
            throws: { ($0 as? ModbusError)?.kind == .exception(.illegalDataAddress) }
    }

    @Test func inMemoryFaults() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let bus = try #require(SimulatedBus(simulator: sim, device: "site-meter"))
        let umg = try profile("janitza-umg604")
        let before = try await readPoint(bus, umg, "active_power_w")
        sim.inject(.frozen, device: "site-meter")
        let asic = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
        try await writePoint(asic, try profile("reference-asic-container"), "power_setpoint_w", 0)
        sim.run(for: .seconds(30))
        #expect(try await readPoint(bus, umg, "active_power_w") == before)  // stuck
        #expect(sim.nodeLoadKW("site") * 1000 < before - 500_000)
        sim.inject(.silent, device: "site-meter", for: .seconds(5))
        await #expect { _ = try await readPoint(bus, umg, "active_power_w") } throws: { ($0 as? ModbusError)?.kind == .timeout }
        sim.run(for: .seconds(6))
        let now = try await readPoint(bus, umg, "active_power_w")
        #expect(abs(now - sim.nodeLoadKW("site") * 1000) < 1)  // float32 on the wire
        sim.setFrequency(59.7, device: "site-meter", for: 2)
        #expect(abs(try await readPoint(bus, umg, "frequency_hz") - 59.7) < 1e-4)
        sim.run(for: .seconds(3))
        #expect(try await readPoint(bus, umg, "frequency_hz") == 60)
    }

    @Test func scenarioFileSchedulesFaults() throws {
        let text = """
        events:
          - {at: 10s, device: asic-1, fault: exception, code: 6, for: 5s}
          - {at: 20s, device: site-meter, fault: frequency, hz: 59.7, for: 2s}
          - {at: 1m, price_spike: {usd_per_mwh: 1500, for: 15m}}
          - {at: 2m, dr_event: {cap_kw: 2000, for: 30m, id: ers-1}}
        """
        let scenario = try ScenarioLoader.parse(text, file: "s.yaml")
        #expect(scenario.signals == [.priceSpike(atSeconds: 60, usdPerMWh: 1500, durationSeconds: 900),
                                     .drEvent(atSeconds: 120, capKW: 2000, durationSeconds: 1800, id: "ers-1")])
        let sim = try SiteSimulator(spec: try smallSite())
        try sim.schedule(scenario.faults)
        sim.run(for: .seconds(11))
        #expect(sim.fault(of: sim.index(of: "asic-1")!) == .exception(.serverDeviceBusy))
        sim.run(for: .seconds(5))
        #expect(sim.fault(of: sim.index(of: "asic-1")!) == nil)
        sim.run(for: .seconds(5))
        #expect(sim.pointValue("site-meter", "frequency_hz") == 59.7)
        sim.run(for: .seconds(2))
        #expect(sim.pointValue("site-meter", "frequency_hz") == 60)
    }

    @Test(arguments: [
        ("events:\n  - {at: 10s, device: a, fault: melt}\n", 2, "unknown fault 'melt'"),
        ("events:\n  - {device: a, fault: silent}\n", 2, "no 'at'"),
        ("events:\n  - {at: soon, device: a, fault: silent}\n", 2, "'at' must be a duration"),
        ("events:\n  - {at: 1s, device: a, fault: exception, code: 99}\n", 2, "standard Modbus exception"),
        ("events:\n  - at: 1s\n    device: a\n    fault: frequency\n    hz: 500\n", 5, "'hz' between 40 and 70"),
        ("evnts: []\n", 1, "unknown key 'evnts'"),
        ("events: [\n", 2, "invalid YAML"),
    ])
    func badScenariosNameTheLine(text: String, line: Int, message: String) {
        #expect {
            _ = try ScenarioLoader.parse(text, file: "bad.yaml")
        } throws: { error in
            guard let e = error as? LocatedError else { return false }
            return e.line == line && e.description.hasPrefix("bad.yaml:\(line):") && e.message.contains(message)
        }
    }
}

/// The simulator over real sockets, read by pymodbus (a client we did not write).
@Suite("Simulated site over the wire", .serialized)
struct WireTests {
    static func pyRead(_ e: WireEndpoint, _ table: String, _ address: Int, _ type: String, _ order: String = "ABCD",
                       timeout: Double = 1) async throws -> [String: Any] {
        let r = try await runCommand("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("Tests/peers/pymodbus_client.py").path,
                                                      e.host, "\(e.port)", "\(e.unit)", table, "\(address)", type, order, "\(timeout)"])
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
    }

    @Test(arguments: [false, true])
    func pymodbusReadsSimulatedValues(gateway: Bool) async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        sim.run(for: .seconds(60))
        let host = try WireHost(simulator: sim, gateway: gateway)
        defer { host.stop() }
        host.publish()
        let meter = try #require(host.endpoints.first { $0.device == "site-meter" })
        // Janitza UMG 604 (vendor address list): 19026 = real power sum L1..L3, float32 W; 19050 = frequency.
        let p = try await Self.pyRead(meter, "holding", 19026, "float32")
        let expected = sim.nodeLoadKW("site") * 1000
        #expect(abs((p["value"] as? Double ?? 0) - expected) <= max(1, expected * 1e-6), "\(p)")
        let f = try await Self.pyRead(meter, "holding", 19050, "float32")
        #expect(f["value"] as? Double == 60)
        // Eastron SDM630 (vendor protocol doc): input 30053 → 0x0034 total system power.
        let x = try #require(host.endpoints.first { $0.device == "xfmr-1-meter" })
        let xp = try await Self.pyRead(x, "input", 0x34, "float32")
        #expect(abs((xp["value"] as? Double ?? 0) - sim.nodeLoadKW("xfmr-1") * 1000) <= max(1, sim.nodeLoadKW("xfmr-1")))
        if gateway { #expect(Set(host.endpoints.map(\.port)).count == 1) } else { #expect(Set(host.endpoints.map(\.port)).count == 7) }
    }

    @Test func wireWritesDriveThePhysics() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        let e = try #require(host.endpoints.first { $0.device == "asic-1" })
        let client = ModbusClient(endpoint: .tcp(host: e.host, port: e.port))
        let asic = try profile("reference-asic-container")
        var applied = host.appliedWrites.makeAsyncIterator()
        try await writePoint(client.bus(unit: e.unit), asic, "power_setpoint_w", 250_000)
        // The write reaches the physics through the server's write stream.
        let w = await applied.next()
        #expect(w?.table == .holding)
        #expect(sim.setpointKW("asic-1") == 250)
        sim.run(for: .seconds(30))
        host.publish()
        let p = try await readPoint(client.bus(unit: e.unit), asic, "active_power_w")
        #expect(abs(p - 250_000) < 1000)
        await client.close()
    }

    @Test(arguments: ["silent", "exception", "garbage", "delay", "disconnect", "frozen"])
    func faultsAsSeenByAnIndependentClient(kind: String) async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        let meter = try #require(host.endpoints.first { $0.device == "site-meter" })
        let healthy = try await Self.pyRead(meter, "holding", 19026, "float32")
        #expect(healthy["ok"] as? Bool == true)
        switch kind {
        case "silent": sim.inject(.silent, device: "site-meter")
        case "exception": sim.inject(.exception(.serverDeviceFailure), device: "site-meter")
        case "garbage": sim.inject(.garbage, device: "site-meter")
        case "delay": sim.inject(.delay(milliseconds: 300), device: "site-meter")
        case "disconnect": sim.inject(.disconnect, device: "site-meter")
        default: sim.inject(.frozen, device: "site-meter")
        }
        let r = try await Self.pyRead(meter, "holding", 19026, "float32", timeout: 0.5)
        switch kind {
        case "exception":
            #expect(r["ok"] as? Bool == false)
            #expect(r["exception_code"] as? Int == 4, "\(r)")
        case "delay":
            #expect(r["ok"] as? Bool == true, "\(r)")
            #expect((r["elapsed_ms"] as? Double ?? 0) >= 300)
        case "frozen":
            sim.run(for: .seconds(30))
            let asic = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
            try await writePoint(asic, try profile("reference-asic-container"), "power_setpoint_w", 0)
            sim.run(for: .seconds(30))
            host.publish()
            let later = try await Self.pyRead(meter, "holding", 19026, "float32")
            #expect(later["value"] as? Double == healthy["value"] as? Double)
            #expect(sim.nodeLoadKW("site") * 1000 < (healthy["value"] as? Double ?? 0) - 500_000)
        default:
            #expect(r["ok"] as? Bool == false, "\(kind): \(r)")
        }
    }
}


@Suite("Shipped examples")
struct ExampleTests {
    @Test func demoSiteSimulatesAndTheFaultScenarioLoads() throws {
        let site = try Site.load(path: packageRoot.appendingPathComponent("examples/demo-site.yaml").path)
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let spec = try SimSiteSpec(site: site, profiles: try loadProfiles(for: site, registry: registry))
        #expect(spec.devices.filter { $0.role == .asicContainer }.count == 24)
        #expect(spec.devices.filter { $0.role == .gpuContainer }.count == 6)
        let sim = try SiteSimulator(spec: spec)
        let scenario = try ScenarioLoader.load(path: packageRoot.appendingPathComponent("examples/scenarios/faults.yaml").path)
        try sim.schedule(scenario.faults)
        #expect(scenario.faults.count == 8 && scenario.signals.count == 2)
        sim.run(for: .seconds(35))
        #expect(sim.fault(of: sim.index(of: "asic-07")!) == .silent)
        // About 40 MW: the site's import limit.
        #expect(sim.summary().siteKW > 20_000 && sim.summary().siteKW < 45_000)
    }
}

@Suite("Simulated site start")
struct SimStartTests {
    /// `switchyard sim` starts every container at the fallback setpoint the controller writes with the
    /// comm watchdog (its safe state), so the demo site starts at rest, not at full power over its PDU caps.
    @Test func containersStartAtTheirFallbackSetpoint() async throws {
        let site = try Site.load(path: packageRoot.appendingPathComponent("examples/demo-site.yaml").path)
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let profiles = try loadProfiles(for: site, registry: registry)
        let spec = try SimSiteSpec(site: site, profiles: profiles, start: .fallback)
        let sim = try SiteSimulator(spec: spec, seed: 1)
        let containers = spec.devices.filter { $0.role == .asicContainer || $0.role == .gpuContainer }
        #expect(containers.count == 30)
        for d in containers {
            let bus = try #require(SimulatedBus(simulator: sim, device: d.id))
            let profile = try #require(d.profile)
            #expect(try await readPoint(bus, profile, "power_setpoint_w") == SiteDevice.fallbackSetpointKw * 1000, "\(d.id)")
            #expect(try await readPoint(bus, profile, "fallback_setpoint_w") == SiteDevice.fallbackSetpointKw * 1000, "\(d.id)")
            #expect(sim.powerKW(d.id) == SiteDevice.fallbackSetpointKw, "\(d.id)")
        }
        // Left alone, the site stays at rest: nothing draws but the fixed loads, no breaker trips.
        sim.run(for: .seconds(60))
        #expect(sim.summary().miningKW == 0 && sim.summary().inferenceKW == 0)
        #expect(sim.summary().siteKW < 100, "\(sim.summary().siteKW) kW")
        #expect(sim.trips.isEmpty)
        // The default start (tests that begin on a loaded site) is full power.
        let loaded = try SiteSimulator(spec: try SimSiteSpec(site: site, profiles: profiles), seed: 1)
        #expect(loaded.summary().miningKW > 25_000)
    }
}

@Suite("In-memory bus: a whole read plan under one lock")
struct SimulatedBusPlanTests {
    /// `SimulatedBus.execute` reads a plan in one hold of the simulator's lock; it must answer
    /// exactly what reading each request on its own answers, faults included.
    @Test func planReadEqualsRequestByRequest() async throws {
        let sim = try SiteSimulator(spec: try smallSite(), seed: 3)
        sim.step(.seconds(5))
        for (id, fault) in [("site-meter", nil), ("xfmr-1-meter", nil), ("asic-1", nil), ("gpu-1", nil), ("pdu-1", nil),
                            ("asic-2", SimFault.exception(.serverDeviceFailure)), ("asic-1", SimFault.silent)] as [(String, SimFault?)] {
            if let fault { sim.inject(fault, device: id) }
            let p = try #require(sim.spec.devices.first { $0.id == id }?.profile)
            let points = try p.resolvedPoints().filter { $0.unavailable == nil }
            // Small requests, so a plan has several and spans share them.
            let plan = try PointReadPlan(points: points, limits: ReadLimits(maxRegisters: 8, maxGap: 2))
            let bus = try #require(SimulatedBus(simulator: sim, device: id))
            let batched = await bus.execute(plan.requests, spans: plan.spans)
            #expect(batched.count == plan.spans.count)
            for request in plan.requests {
                let single: Result<[UInt16], ModbusError>
                do { single = .success(try sim.read(device: bus.device, request.table, address: request.address, count: request.count)) }
                catch { single = .failure(error) }
                for k in request.spans {
                    let span = plan.spans[k]
                    switch (batched[k], single) {
                    case (.success(let words)?, .success(let all)):
                        let lo = span.address - request.address
                        #expect(Array(words) == Array(all[lo..<(lo + span.count)]), "\(id) span \(span)")
                    case (.failure(let e)?, .failure(let f)):
                        #expect(e == f, "\(id)")
                    default:
                        Issue.record("\(id) span \(span): \(String(describing: batched[k])) vs \(single)")
                    }
                }
            }
            if fault != nil { sim.inject(nil, device: id) }
        }
    }
}
