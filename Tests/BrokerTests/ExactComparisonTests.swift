import Broker
import Testing

/// The Broker against an exact branch-and-bound (over min-stable on/off) with a simplex for the
/// continuous part, on many small random instances.
@Suite("Broker vs exact solver")
struct ExactComparisonTests {
    static let seeds: [UInt64] = Array(1...300).map { UInt64($0) &* 7919 }

    @Test("objective within 0.1% of the optimum and every plan feasible", arguments: [0, 1, 2, 3, 4, 5])
    func withinTolerance(batch: Int) {
        var worst = 0.0
        for seed in Self.seeds[(batch * 50)..<((batch + 1) * 50)] {
            var rng = SplitMix64(seed: seed)
            let inst = Instance.random(&rng)
            let oracle = Oracle(inst)
            let plan = Broker.dispatch(inst.problem())
            let exact = oracle.exact()
            if let exact {
                #expect(plan.feasible, "seed \(seed): exact solver found a plan, Broker said infeasible: \(plan.infeasibleReason ?? "")")
                guard plan.feasible else { continue }
                let v = oracle.violations(plan.setpointsKw)
                #expect(v.isEmpty, "seed \(seed): \(v)")
                let got = oracle.objective(plan.setpointsKw)
                // The Broker's own breakdown must agree with the independent accounting.
                #expect(abs(plan.objective.total - got) <= 1e-6 * max(1, abs(got)), "seed \(seed)")
                let scale = max(1, abs(exact.objective))
                let gap = (exact.objective - got) / scale
                worst = max(worst, gap)
                #expect(gap <= 0.001, "seed \(seed): Broker \(got) vs exact \(exact.objective) $/h")
                // The exact solver is an upper bound: beating it means one of them is wrong.
                #expect(got <= exact.objective + 1e-6 * scale, "seed \(seed): Broker beat the exact solver")
            } else {
                #expect(!plan.feasible, "seed \(seed): Broker found a plan the exact solver says cannot exist")
                #expect(!oracle.mandatoryFits, "seed \(seed)")
            }
        }
        #expect(worst <= 0.001)
    }

    @Test("the exact solver itself: brute force agrees on tiny continuous instances")
    func exactSolverSanity() {
        // Two continuous devices under one cap: the LP must fill the higher value first.
        let inst = Instance(
            nodes: [NodeSpec(id: "site", parentID: nil, capKw: 1000)],
            devices: [
                DeviceSpec(id: "a", deviceClass: .inference, nodeID: "site", maxKw: 800, valueUsdPerMWh: 200),
                DeviceSpec(id: "b", deviceClass: .inference, nodeID: "site", maxKw: 800, valueUsdPerMWh: 100),
            ],
            states: [DeviceState(setpointKw: 0), DeviceState(setpointKw: 0)], uncontrolled: [:], measured: [:],
            importLimit: .infinity, margin: 0, tick: 10, restore: nil, staleAfter: 30,
            signals: DispatchSignals(energyPriceUsdPerMWh: 50), miningCurtailed: false, miningCurtailedFor: 0)
        let e = Oracle(inst).exact()!
        #expect(abs(e.x[0] - 800) < 1e-6 && abs(e.x[1] - 200) < 1e-6)
        #expect(abs(e.objective - (800 * 150 + 200 * 50) / 1000.0) < 1e-9)
    }
}
