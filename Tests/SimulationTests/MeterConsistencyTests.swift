import Foundation
import HardwareProfiles
import Modbus
import Site
import Testing
import TestSupport
@testable import Simulation

/// Every simulated meter, read over loopback by pymodbus (an independent master that decodes the
/// registers itself), must be physically whole: P = Σ V·I·PF (or √3·V_LL·I·PF for a single inlet),
/// phases summing to the total, a frequency near nominal, volts of its wiring, and energy that
/// grows by the power over the simulated time.
@Suite("Simulated meters are physically consistent (pymodbus over loopback)")
struct MeterConsistencyTests {
    static let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])

    struct Reading {
        var v: [Double], i: [Double], p: Double, phaseP: [Double]?, pf: Double, hz: Double, kwh: Double?, va: Double?
        var singleInlet: Bool
        var cosPhi: [Double]?
    }

    static func kind(_ profile: String) -> String? {
        ["eastron-sdm630": "sdm630", "janitza-umg604": "umg604", "raritan-px3": "px3", "sunspec-meter-203": "sunspec203"][profile]
    }

    static func read(_ endpoint: WireEndpoint, kind: String) async throws -> Reading {
        let r = try await runCommand("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("Tests/peers/pymodbus_meter.py").path,
                                                      endpoint.host, "\(endpoint.port)", "\(endpoint.unit)", kind])
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout) \(r.stderr)")
        try #require(j["ok"] as? Bool == true, "\(endpoint.device) (\(kind)): \(j)")
        func d(_ k: String) -> Double? { (j[k] as? NSNumber)?.doubleValue }
        func a(_ k: String) -> [Double]? { (j[k] as? [NSNumber])?.map(\.doubleValue) }
        return Reading(v: a("v") ?? [], i: a("i") ?? [], p: d("p") ?? .nan, phaseP: a("phase_p"), pf: d("pf") ?? .nan, hz: d("hz") ?? .nan,
                       kwh: d("kwh"), va: d("va"), singleInlet: j["single_inlet"] as? Bool ?? false, cosPhi: a("cos_phi"))
    }

    /// The consistency checks on one reading; `relTol` covers float32 and SunSpec int16 quantisation.
    static func check(_ m: Reading, device: String, wiring: MeterWiring, nominalHz: Double, relTol: Double = 0.01) {
        let label = "\(device): \(m)"
        #expect(m.p > 1000, "\(label): no load to check against")
        #expect(abs(m.hz - nominalHz) < 0.5, "\(label): frequency far from nominal")
        #expect(m.pf > 0.8 && m.pf <= 1, "\(label): implausible power factor")
        let computed: Double
        if m.singleInlet {
            #expect(abs(m.v[0] - wiring.lineToLineV) / wiring.lineToLineV < 0.05, "\(label): not the line-to-line voltage of its wiring")
            computed = 3.0.squareRoot() * m.v[0] * m.i[0] * m.pf
            if let va = m.va { #expect(abs(va * m.pf - m.p) <= relTol * m.p, "\(label): VA·PF ≠ P") }
        } else {
            #expect(m.v.count == 3 && m.i.count == 3)
            for v in m.v { #expect(abs(v - wiring.lineToNeutralV) / wiring.lineToNeutralV < 0.05, "\(label): not the voltage of its wiring") }
            computed = zip(m.v, m.i).reduce(0) { $0 + $1.0 * $1.1 } * m.pf
            if let pp = m.phaseP { #expect(abs(pp.reduce(0, +) - m.p) <= relTol * m.p, "\(label): phases do not sum to the total") }
            if let cos = m.cosPhi { for c in cos { #expect(abs(c - m.pf) < 0.01, "\(label): cos φ disagrees with V, I and P") } }
        }
        #expect(abs(computed - m.p) <= relTol * m.p, "\(label): P = \(m.p) W but V·I·PF gives \(computed) W")
    }

    /// A small site with each meter profile at both wirings: the SunSpec 203 meter on an MV feeder, the
    /// SDM630 on an LV one and on a metered cooling load, the UMG 604 at the MV site, the PX3 on an LV PDU.
    func mixedSite() throws -> SimSiteSpec {
        let asic = try Self.registry.load("reference-asic-container")
        func meter(_ id: String, _ node: String, _ profile: String, role: SimRole = .meter) throws -> SimDevice {
            SimDevice(id: id, role: role, node: node, profile: try Self.registry.load(profile))
        }
        func miner(_ id: String, _ node: String, _ kw: Double) -> SimDevice {
            SimDevice(id: id, role: .asicContainer, node: node, profile: asic, maxKW: kw, rampKWPerS: 500, lagSeconds: 1,
                      noiseFraction: 0, commWatchdogS: 0)
        }
        var cooling = try meter("cooling", "site", "eastron-sdm630", role: .auxiliary)
        cooling.auxFraction = 0.06
        return SimSiteSpec(id: "meters", nodes: [
            SimNode(id: "site", parent: nil, capKW: 20_000),
            SimNode(id: "mv-feeder", parent: "site", capKW: 8_000),
            SimNode(id: "lv-pdu", parent: "mv-feeder", capKW: 2_000),
            SimNode(id: "lv-board", parent: "site", capKW: 1_500),
        ], devices: [
            try meter("site-meter", "site", "janitza-umg604"),
            try meter("feeder-meter", "mv-feeder", "sunspec-meter-203"),
            try meter("pdu-meter", "lv-pdu", "raritan-px3", role: .pdu),
            try meter("board-meter", "lv-board", "eastron-sdm630"),
            miner("asic-1", "lv-pdu", 1_200), miner("asic-2", "mv-feeder", 4_000), miner("asic-3", "lv-board", 1_000),
            cooling,
        ])
    }

    @Test func everyMeterProfileAgreesWithItselfAndIntegratesEnergy() async throws {
        let sim = try SiteSimulator(spec: try mixedSite(), seed: 3)
        sim.run(for: .seconds(120))  // settled: every container at its initial setpoint (max)
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        var first: [String: Reading] = [:]
        for e in host.endpoints {
            let i = try #require(sim.index(of: e.device))
            guard let kind = Self.kind(sim.spec.devices[i].profile!.id) else { continue }  // the containers
            let m = try await Self.read(e, kind: kind)
            let w = try #require(sim.wiring[i])
            Self.check(m, device: e.device, wiring: w, nominalHz: 60)
            first[e.device] = m
        }
        #expect(first.count == 5, "UMG 604, SunSpec 203, PX3, SDM630 and the metered cooling load: \(first.keys.sorted())")
        // The wirings the test means to cover: LV and MV, three-phase and single-inlet.
        #expect(sim.wiring[try #require(sim.index(of: "feeder-meter"))]?.ptRatio != nil)
        #expect(sim.wiring[try #require(sim.index(of: "board-meter"))]?.ptRatio == nil)
        #expect(sim.wiring[try #require(sim.index(of: "pdu-meter"))]?.ptRatio == nil)
        // An hour of steady load: each energy register grows by P·1 h.
        sim.run(for: .seconds(3600))
        host.publish()
        for e in host.endpoints {
            let i = try #require(sim.index(of: e.device))
            guard let kind = Self.kind(sim.spec.devices[i].profile!.id) else { continue }
            let m = try await Self.read(e, kind: kind)
            guard let before = first[e.device], let e0 = before.kwh, let e1 = m.kwh else { continue }
            let expected = (before.p + m.p) / 2 / 1000  // kWh over one hour
            #expect(abs((e1 - e0) - expected) <= 0.01 * expected + 2, "\(e.device): energy grew by \(e1 - e0) kWh, P·t = \(expected) kWh")
        }
    }

    /// The demo site as `make run` serves it (its own meters and the metered cooling plant), at scenario time.
    @Test func theDemoSitesMetersAreConsistent() async throws {
        let site = try Site.load(path: packageRoot.appendingPathComponent("examples/demo-site.yaml").path)
        let profiles = try loadProfiles(for: site, registry: Self.registry)
        var spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
        spec.startSeconds = try #require(ISO8601.parse("2026-07-15T14:01:00Z"))
        let sim = try SiteSimulator(spec: spec, seed: 1)
        sim.run(for: .seconds(60))
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        var checked = 0
        for e in host.endpoints {
            let i = try #require(sim.index(of: e.device))
            guard let w = sim.wiring[i], let kind = Self.kind(sim.spec.devices[i].profile!.id) else { continue }
            Self.check(try await Self.read(e, kind: kind), device: e.device, wiring: w, nominalHz: 60)
            checked += 1
        }
        #expect(checked == 8, "7 meters and the cooling plant's SDM630")
    }

    @Test func gpuDemandRunsOnScenarioTime() throws {
        let gpu = try Self.registry.load("reference-gpu-container")
        func demand(startingAt start: Double, after seconds: Int) throws -> Double {
            let spec = SimSiteSpec(id: "g", nodes: [SimNode(id: "site", parent: nil, capKW: 5000)], devices: [
                SimDevice(id: "gpu-1", role: .gpuContainer, node: "site", profile: gpu, maxKW: 1000, gpus: 1000, commWatchdogS: 0),
            ], startSeconds: start)
            let sim = try SiteSimulator(spec: spec)
            sim.run(for: .seconds(seconds))
            return sim.readings().demandKW[0]
        }
        let curve = SimDevice.defaultDemandCurve
        let afternoon = try #require(ISO8601.parse("2026-07-15T14:00:00Z"))
        #expect(abs(try demand(startingAt: afternoon, after: 0) - 1000 * curve[14]) < 0.5)
        #expect(abs(try demand(startingAt: afternoon, after: 0) - 1000 * curve[0]) > 100, "the curve ran from midnight, not 14:00")
        // Half an hour later, half-way to 15:00's value.
        #expect(abs(try demand(startingAt: afternoon, after: 1800) - 1000 * (curve[14] + curve[15]) / 2) < 0.5)
        #expect(abs(try demand(startingAt: 0, after: 3600 * 3) - 1000 * curve[3]) < 0.5)
    }
}
