import Foundation
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// Issue 12 §4: inference headroom that mining pays for, on the demo site at its real settings.
@Suite("Inference headroom, demo site settings", .serialized)
struct InferenceHeadroomTests {
    /// 2026-07-15T03:00:00Z. (The simulator's demand curve runs on its own clock, from 00:00: GPU
    /// demand starts at 55 % of max and falls.)
    let night = demoT0 - 9 * 3600

    @Test func scenarioInferenceBurstDrivesTheSimulatedDemand() throws {
        let yaml = """
        events:
          - {at: 60s, device: gpu-01, inference_burst: {fraction: 1.0, for: 2m}}
        """
        let scenario = try ScenarioLoader.parse(yaml, file: "burst.yaml")
        #expect(scenario.faults == [ScheduledFault(atSeconds: 60, device: "gpu-01", action: .inferenceBurst(fractionOfMax: 1), durationSeconds: 120)])
        #expect(throws: LocatedError.self) { try ScenarioLoader.parse("events:\n  - {at: 1s, device: gpu-01, inference_burst: {fraction: 1.5}}\n", file: "b.yaml") }
        do {
            _ = try ScenarioLoader.parse("events:\n  - {at: 1s, device: gpu-01, inference_burst: {fraction: 1, form: 2m}}\n", file: "b.yaml")
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.description == "b.yaml:2:61: error: unknown key 'form' in 'inference_burst'; use fraction and for", "\(error)")
        }

        let demo = try DemoSite.make(prices: [(night - 3600, 40)])
        #expect(throws: SimSpecError.self) {
            try demo.sim.schedule([ScheduledFault(atSeconds: 1, device: "asic-01", action: .inferenceBurst(fractionOfMax: 1))])
        }
        try demo.sim.schedule(scenario.faults)
        let gpu = try #require(demo.sim.index(of: "gpu-01"))
        demo.sim.run(for: .seconds(59))
        let curve = demo.sim.readings().demandKW[gpu]
        #expect(curve < 600, "the demand curve at 00:00 of sim time is \(curve) kW")
        demo.sim.run(for: .seconds(2))
        #expect(demo.sim.readings().demandKW[gpu] == 1000)
        #expect(demo.sim.pointValue("gpu-01", "inference_demand_w") == 1_000_000)
        demo.sim.run(for: .seconds(120))
        #expect(abs(demo.sim.readings().demandKW[gpu] - curve) < 50, "the burst did not end")
    }

    /// The loop budgets each GPU at its draw (or reported demand) plus the reserve: two ticks of
    /// its ramp by default (200 kW on the demo site), or `inference_reserve_kw`.
    @Test func theLoopBudgetsInferenceAtDrawPlusReserve() async throws {
        let byDefault = try DemoSite.make(prices: [(night - 3600, 40)])
        let wide = try DemoSite.make(prices: [(night - 3600, 40)]) {
            $0.replacingOccurrences(of: "  stale_after_s: 30\n", with: "  stale_after_s: 30\n  inference_reserve_kw: 100000\n")
        }
        #expect(wide.site.inferenceReserveKw == 100_000 && byDefault.site.inferenceReserveKw == nil)
        var t = night
        var over = 0
        for k in 0..<120 {
            for demo in [byDefault, wide] {
                await demo.tick(t)
                if k >= 60 { for node in demo.site.nodes where demo.sim.nodeLoadKW(node.id) > node.capKw { over += 1 } }
            }
            t += 1
        }
        #expect(over == 0)
        let a = byDefault.loop.headroomBox.withLock { $0 }, b = wide.loop.headroomBox.withLock { $0 }
        for id in ["gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-05", "gpu-06"] {
            let i = try #require(byDefault.loop.plant.deviceIndex(id))
            let demand = try #require(byDefault.sim.pointValue(id, "inference_demand_w")) / 1000
            #expect(a.reserveKW[i] == 2 * 100 * 1)
            // Budgeted at demand + 200 kW (demand ≈ draw at night), well under the 1 MW setpoint.
            #expect(abs(a.budgetKW[i] - (demand + 200)) < 25, "\(id): budget \(a.budgetKW[i]) kW, demand \(demand) kW")
            #expect(a.setpointKW[i] == 1000)
            #expect(b.budgetKW[i] == b.setpointKW[i], "\(id) got headroom with a 100 MW reserve")
        }
        #expect(byDefault.loop.lastReport?.interventions.contains { $0.hasPrefix("inference headroom: ") } == true)
    }

    /// A burst between ticks: the inference watch sees the demand, and one fast-path pass budgets
    /// the GPUs at their setpoint and sheds mining under the same PDU for them.
    @Test func anInferenceRiseShedsMiningWithinOneTick() async throws {
        let demo = try DemoSite.make(prices: [(night - 3600, 40)])
        var t = night
        for _ in 0..<300 { await demo.tick(t); t += 1 }
        let gpu = try #require(demo.loop.plant.deviceIndex("gpu-01"))
        let hr = demo.loop.headroomBox.withLock { $0 }
        #expect(hr.budgetKW[gpu] < hr.setpointKW[gpu] - 100, "no headroom granted to gpu-01: \(hr.budgetKW[gpu]) of \(hr.setpointKW[gpu])")
        #expect(await demo.loop.watchInference(now: t - 0.5) == nil, "the watch fired with no rise")
        // The broker plans into the GPUs' headroom (Snapshot.headroomCreditKw): all of pdu-1a's mining runs,
        // although with the GPUs at their 1 MW setpoints it would not fit under the PDU's 9.5 MW — the
        // governor allows it only because mining can be shed for the GPUs.
        let pdu = ["asic-01", "asic-02", "asic-03", "asic-04", "asic-05", "asic-06"]
        let miningBefore = pdu.reduce(0) { $0 + demo.sim.setpointKW($1) }
        #expect(miningBefore == 7700)
        let gpuSetpoints = ["gpu-01", "gpu-02"].reduce(0) { $0 + demo.sim.setpointKW($1) }
        #expect(miningBefore + gpuSetpoints > 9500, "the plan fits without the headroom: the test lost its point")

        // Both GPUs of pdu-1a burst to full demand: 7.7 MW of mining + 2 MW of inference > 9.5 MW.
        try demo.sim.schedule(["gpu-01", "gpu-02"].map {
            ScheduledFault(atSeconds: demo.sim.timeSeconds + 0.1, device: $0, action: .inferenceBurst(fractionOfMax: 1), durationSeconds: 600)
        })
        demo.sim.step(.milliseconds(500))
        let r = try #require(await demo.loop.watchInference(now: t - 0.5))
        #expect(r.fastPath?.hasPrefix("inference rising: gpu-01 demand 1.0 MW > budget") == true, "\(r.fastPath ?? "")")
        #expect(r.setpointsKW["gpu-01"] == 1000)
        let miningAfter = pdu.reduce(0) { $0 + demo.sim.setpointKW($1) }
        #expect(miningAfter < miningBefore - 100, "mining on pdu-1a \(miningBefore) → \(miningAfter) kW")
        #expect(!r.writes.isEmpty && r.writes.allSatisfy(\.verified))
        // The burst plays out at 1 s ticks: the PDU never goes over its cap and gpu-01 gets its power.
        demo.sim.step(.milliseconds(500))
        var over = 0
        for _ in 0..<120 {
            await demo.tick(t)
            t += 1
            for node in demo.site.nodes where demo.sim.nodeLoadKW(node.id) > node.capKw { over += 1 }
        }
        #expect(over == 0)
        #expect(demo.sim.powerKW("gpu-01") > 950 && demo.sim.powerKW("gpu-02") > 950)
    }
}
