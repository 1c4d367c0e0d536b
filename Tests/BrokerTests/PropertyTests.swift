import Broker
import TestSupport
import Testing

/// Properties over random sites and snapshots (seeded, reproducible).
@Suite("Broker properties")
struct PropertyTests {
    static let bigger = InstanceOptions(devices: 5...40, forecast: 0.2)

    @Test("no cap exceeded; ramp, dwell, min-stable and restore limits hold", arguments: 0..<8)
    func limitsHold(batch: Int) {
        for i in 0..<50 {
            let seed = UInt64(10_000 + batch * 50 + i)
            var rng = SeededRandom(seed: seed)
            let inst = Instance.random(&rng, Self.bigger)
            let oracle = Oracle(inst)
            let plan = Broker.dispatch(inst.problem())
            #expect(plan.setpointsKw.count == inst.devices.count)
            #expect(plan.reasons.allSatisfy { !$0.isEmpty }, "seed \(seed): a device has no reason")
            if plan.feasible {
                let v = oracle.violations(plan.setpointsKw)
                #expect(v.isEmpty, "seed \(seed): \(v)")
                // The plan's node loads agree with an independent sum and respect the caps.
                for n in plan.nodeLoadKw.indices {
                    #expect(plan.nodeLoadKw[n] <= plan.nodeCapKw[n] + 1e-4, "seed \(seed) node \(n)")
                }
            } else {
                #expect(!oracle.mandatoryFits, "seed \(seed): Broker gave up on a feasible problem")
                #expect(plan.infeasibleReason?.isEmpty == false)
                // Safest setpoints: everything at the minimum that dwell allows.
                for d in inst.devices.indices where oracle.kind[d] != .pinned {
                    let expected = oracle.kind[d] == .forcedOn ? oracle.lo[d] : 0
                    #expect(abs(plan.setpointsKw[d] - expected) < 1e-9, "seed \(seed)")
                }
            }
        }
    }

    @Test("raising the energy price never increases mining", arguments: 0..<4)
    func priceMonotone(batch: Int) {
        for i in 0..<50 {
            let seed = UInt64(20_000 + batch * 50 + i)
            var rng = SeededRandom(seed: seed)
            var inst = Instance.random(&rng, Self.bigger)
            let before = Broker.dispatch(inst.problem())
            inst.signals.energyPriceUsdPerMWh += rng.range(1, 150)
            let after = Broker.dispatch(inst.problem())
            func mining(_ p: DispatchPlan) -> Double {
                inst.devices.indices.filter { inst.devices[$0].deviceClass == .mining }.reduce(0) { $0 + p.setpointsKw[$1] }
            }
            #expect(mining(after) <= mining(before) + 1e-6, "seed \(seed): \(mining(before)) -> \(mining(after))")
        }
    }

    @Test("a feasible DR cap is always met", arguments: 0..<4)
    func drCapMet(batch: Int) {
        var checked = 0
        for i in 0..<50 {
            let seed = UInt64(30_000 + batch * 50 + i)
            var rng = SeededRandom(seed: seed)
            var opts = Self.bigger
            opts.dr = 1
            let inst = Instance.random(&rng, opts)
            let oracle = Oracle(inst)
            let plan = Broker.dispatch(inst.problem())
            let cap = inst.signals.importCaps[0].capKw - inst.margin
            if oracle.mandatoryFits {
                checked += 1
                #expect(plan.feasible, "seed \(seed)")
                #expect(oracle.siteLoad(plan.setpointsKw) <= cap + 1e-4, "seed \(seed)")
                #expect(plan.nodeLoadKw[0] <= cap + 1e-4)
            } else {
                #expect(!plan.feasible)
            }
        }
        #expect(checked > 10)
    }

    @Test("same inputs give the same output, whatever the device order", arguments: 0..<4)
    func deterministic(batch: Int) {
        for i in 0..<25 {
            let seed = UInt64(40_000 + batch * 25 + i)
            var rng = SeededRandom(seed: seed)
            let inst = Instance.random(&rng, Self.bigger)
            let a = Broker.dispatch(inst.problem())
            let b = Broker.dispatch(inst.problem())
            #expect(a.setpointsKw == b.setpointsKw)
            #expect(a.reasons == b.reasons)
            #expect(a.binding == b.binding)
            var order = Array(inst.devices.indices)
            order.shuffle(using: &rng)
            let c = Broker.dispatch(inst.problem(deviceOrder: order))
            for (k, d) in order.enumerated() {
                #expect(abs(c.setpointsKw[k] - a.setpointsKw[d]) < 1e-6, "seed \(seed) device \(inst.devices[d].id)")
                #expect(c.reasons[k] == a.reasons[d], "seed \(seed)")
            }
        }
    }
}
