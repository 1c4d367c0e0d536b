import Broker
import TestSupport
import Testing

/// The sites where the exact search is still short of the optimum by more than 0.1 % (issue 13):
/// knapsack-like sites of 100–300 devices with a binding restore rate, where the search stops at
/// its work budget. Regenerated from the benchmark harness's seeded streams (`SweepInstances`),
/// too large for the suite's exact oracle (`Support/Oracle.swift`), so each is checked against
/// the oracle's independent statement of the rules and its accounting, and against the optimum
/// HiGHS proved for it (`Benchmarks/exact/milp_dispatch.py`, mip_rel_gap 1e-9, status optimal),
/// pinned here. What is asserted: the plan keeps every rule, never beats the optimum, its bound
/// covers the optimum, it is no further from the optimum than when it was pinned, and it is
/// within the 0.1 % goal (met since the neighbourhood search, `Search.neighbourhoods`, which
/// runs after the search and the swaps with its own work budget; without it all three fail).
@Suite("Broker: the exactness sweep's sites that were above 0.1 %, pinned")
struct SweepRegressionTests {
    struct Site: Sendable, CustomStringConvertible {
        var name: String
        var devices: Int
        var restoreKwPerTick: Double
        /// HiGHS's optimum of the decision objective, $/h.
        var optimum: Double
        /// The Broker's gap to it when pinned (fraction of the optimum).
        var gapWhenPinned: Double
        var description: String { name }

        func instance() -> Instance {
            if name.hasPrefix("t-") { return SweepInstances.exactTiming(index: Int(name.dropFirst(2))!) }
            // c2-k: the 100–300 device class of `broker-sweep --seed 1`.
            return SweepInstances.sweep(classIndex: 2, devices: 100...300, index: Int(name.dropFirst(3))!)
        }
    }

    static let sites: [Site] = [
        Site(name: "c2-879", devices: 271, restoreKwPerTick: 2943, optimum: 1715.8028342851658, gapWhenPinned: 0.002415),
        Site(name: "c2-1409", devices: 246, restoreKwPerTick: 3390, optimum: 10737.708068439058, gapWhenPinned: 0.001941),
        Site(name: "t-45", devices: 300, restoreKwPerTick: 5580, optimum: 4087.28644997009, gapWhenPinned: 0.001053),
    ]

    @Test("plan keeps every rule, never beats the optimum, its bound covers it, within 0.1 % of it", arguments: sites)
    func pinnedSite(site: Site) {
        let inst = site.instance()
        // The generator is the harness's, draw for draw: the same site or the test is void.
        #expect(inst.devices.count == site.devices, "\(site): the generator no longer gives the harness's site")
        #expect(inst.restore == site.restoreKwPerTick, "\(site): the generator no longer gives the harness's site")
        guard inst.devices.count == site.devices, inst.restore == site.restoreKwPerTick else { return }
        let oracle = Oracle(inst)
        let plan = Broker.dispatch(inst.problem())
        #expect(plan.feasible, "\(site): \(plan.infeasibleReason ?? "")")
        guard plan.feasible else { return }
        #expect(plan.exactSearch)
        let v = oracle.violations(plan.setpointsKw)
        #expect(v.isEmpty, "\(site): \(v.prefix(3))")
        let total = oracle.objective(plan.setpointsKw)
        #expect(abs(plan.objective.total - total) <= 1e-6 * max(1, abs(total)), "\(site): \(plan.objective.total) vs \(total)")
        let got = oracle.decisionObjective(plan.setpointsKw)
        let scale = max(1, abs(site.optimum))
        #expect(got <= site.optimum + 1e-6 * scale, "\(site): Broker \(got) above the MILP optimum \(site.optimum)")
        #expect(site.optimum <= plan.boundUsdPerH + 1e-6 * scale, "\(site): optimum above the bound the plan proves")
        let gap = (site.optimum - got) / scale
        #expect(gap <= site.gapWhenPinned + 1e-6, "\(site): gap \(gap) grew (was \(site.gapWhenPinned))")
        #expect(gap <= 0.001, "\(site): gap \(gap) above the 0.1 % goal")
        print("\(site): gap to the MILP optimum \(gap * 100) %, proven \(plan.gapBoundFraction * 100) %")
    }
}
