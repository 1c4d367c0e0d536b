import Broker
import TestSupport
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
            var rng = SeededRandom(seed: seed)
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
                worst = max(worst, Self.expectNearOptimum(got, exact: exact.objective, bound: plan.boundUsdPerH, seed: seed))
            } else {
                #expect(!plan.feasible, "seed \(seed): Broker found a plan the exact solver says cannot exist")
                #expect(!oracle.mandatoryFits, "seed \(seed)")
            }
        }
        #expect(worst <= 0.001)
    }

    /// The Broker's objective `got` within 0.1 % of the exact optimum, never above it (the exact solver is an
    /// upper bound: beating it means one of them is wrong), and the optimum never above the bound the plan
    /// reports. Returns the gap as a fraction of the optimum.
    static func expectNearOptimum(_ got: Double, exact: Double, bound: Double, seed: UInt64) -> Double {
        let scale = max(1, abs(exact))
        let gap = (exact - got) / scale
        #expect(gap <= 0.001, "seed \(seed): Broker \(got) vs exact \(exact) $/h")
        #expect(got <= exact + 1e-6 * scale, "seed \(seed): Broker beat the exact solver")
        #expect(exact <= bound + 1e-6 * scale, "seed \(seed): optimum above the proven bound")
        return gap
    }

    /// Knapsack-like sites, where greedy by value fails most: 10–40 devices under tight 2–3 level
    /// trees, start blocks of half a device or more (often all of it), values close together, and
    /// the other rules (restore rate, DR, paid reductions, forecasts, contracts) at moderate rates.
    static let knapsackSeeds: [UInt64] = Array(1...500).map { UInt64($0) &* 7727 }

    @Test("knapsack-like sites of 10–40 devices: within 0.1 % of the optimum, every plan feasible", arguments: 0..<10)
    func knapsackLike(batch: Int) {
        var worst = 0.0
        var compared = 0
        for seed in Self.knapsackSeeds[(batch * 50)..<((batch + 1) * 50)] {
            var rng = SeededRandom(seed: seed)
            let inst = Instance.random(&rng, .knapsack)
            let oracle = Oracle(inst)
            let plan = Broker.dispatch(inst.problem())
            guard let exact = oracle.exact() else {
                #expect(!plan.feasible, "seed \(seed): Broker found a plan the exact solver says cannot exist")
                continue
            }
            #expect(plan.feasible, "seed \(seed): exact solver found a plan, Broker said infeasible")
            guard plan.feasible else { continue }
            compared += 1
            let v = oracle.violations(plan.setpointsKw)
            #expect(v.isEmpty, "seed \(seed): \(v)")
            // The objective the search maximises (start blocks at their start price with a forecast).
            let got = oracle.decisionObjective(plan.setpointsKw)
            worst = max(worst, Self.expectNearOptimum(got, exact: exact.objective, bound: plan.boundUsdPerH, seed: seed))
            #expect(plan.gapBoundUsdPerH >= -1e-9)
        }
        #expect(compared >= 40)
        #expect(worst <= 0.001)
    }

    @Test("the exact solver's branch and bound agrees with trying every on/off choice", arguments: 0..<4)
    func oracleAgainstEnumeration(batch: Int) {
        for i in 0..<50 {
            let seed = UInt64(90_000 + batch * 50 + i)
            var rng = SeededRandom(seed: seed)
            let inst = Instance.random(&rng, InstanceOptions(devices: 2...7, restore: 0.4, paidReduction: 0.3, forecast: 0.3))
            let oracle = Oracle(inst)
            let binaries = oracle.kind.indices.filter { oracle.kind[$0] == .free && oracle.lo[$0] > 0 }
            // Every subset on, the rest off: the LP of each, on both sides of a paid-reduction baseline.
            var best: Double? = nil
            for mask in 0..<(1 << binaries.count) {
                var dec = Array(repeating: 0, count: inst.devices.count)
                for (k, d) in binaries.enumerated() { dec[d] = mask & (1 << k) != 0 ? 1 : -1 }
                var regimes: [(Double, Double?)] = [(oracle.price, nil)]
                if let pr = inst.signals.paidReduction, pr.usdPerMWh > 0 { regimes.append((oracle.price + pr.usdPerMWh, pr.baselineKw)) }
                for (p, baseline) in regimes {
                    guard let sol = oracle.lp(dec: dec, price: p, baseline: baseline) else { continue }
                    let v = oracle.decisionObjective(sol.x)
                    if oracle.violations(sol.x).isEmpty, best == nil || v > best! { best = v }
                }
            }
            let exact = oracle.exact()
            #expect((best == nil) == (exact == nil), "seed \(seed)")
            if let best, let exact {
                #expect(abs(best - exact.objective) <= 1e-6 * max(1, abs(best)), "seed \(seed): enumeration \(best) vs branch and bound \(exact.objective)")
            }
        }
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
