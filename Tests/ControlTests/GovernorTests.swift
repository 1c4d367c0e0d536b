import Testing
import TestSupport
@testable import Control

/// A random site: a tree of 2–7 nodes, 1–10 devices, meters that see the truth,
/// some devices unreachable, random proposals.
struct RandomCase {
    var model: SafetyModel
    var input: GovernorInput
    /// True uncontrolled load per node (what the meters see beyond the devices).
    var trueUncontrolled: [Double]

    init(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let nN = Int.random(in: 2...7, using: &rng)
        var nodes: [SafetyModel.Node] = []
        for n in 0..<nN {
            let parent = n == 0 ? nil : Int.random(in: 0..<n, using: &rng)
            nodes.append(.init(id: "n\(n)", parent: parent, capKW: Double(Int.random(in: 500...6000, using: &rng)),
                               uncontrolledMaxKW: Double(Int.random(in: 0...200, using: &rng)), metered: true))
        }
        let nD = Int.random(in: 1...10, using: &rng)
        var devices: [SafetyModel.Device] = []
        for d in 0..<nD {
            let maxKW = Double(Int.random(in: 100...2000, using: &rng))
            devices.append(.init(id: "d\(d)", node: Int.random(in: 0..<nN, using: &rng),
                                 loadClass: Bool.random(using: &rng) ? .mining : .inference, maxKW: maxKW,
                                 minStableKW: Bool.random(using: &rng) ? maxKW * 0.2 : 0,
                                 rampUpKWPerS: Double(Int.random(in: 10...500, using: &rng))))
        }
        model = SafetyModel(nodes: nodes, devices: devices, importLimitKW: Double(Int.random(in: 1000...8000, using: &rng)),
                            marginKW: 50, restoreKWPerTick: Bool.random(using: &rng) ? 400 : .infinity)
        let commanded = devices.map { Bool.random(using: &rng) ? Double(Int.random(in: 0...Int($0.maxKW), using: &rng)) : 0 }
        let reachable = devices.map { _ in Int.random(in: 0..<6, using: &rng) != 0 }
        let measured: [Double?] = commanded.map { Optional($0) }
        let u = nodes.map { min($0.uncontrolledMaxKW, Double(Int.random(in: 0...200, using: &rng))) }
        trueUncontrolled = u
        var nodeMeasured = [Double?](repeating: nil, count: nN)
        for n in 0..<nN {
            var total = 0.0
            for m in 0..<nN where model.nodeAncestors[m].contains(n) { total += u[m] }
            for d in 0..<nD where model.deviceAncestors[d].contains(n) { total += commanded[d] }
            nodeMeasured[n] = total
        }
        let caps: [(label: String, capKW: Double)] = Bool.random(using: &rng) ? [("dr", Double(Int.random(in: 200...5000, using: &rng)))] : []
        input = GovernorInput(tickSeconds: 1,
                              proposedKW: devices.map { Bool.random(using: &rng) ? Double(Int.random(in: 0...Int($0.maxKW * 1.2), using: &rng)) : nil },
                              overrideKW: devices.map { _ in nil }, commandedKW: commanded, measuredKW: measured,
                              deviceAgeS: devices.map { _ in 0 }, reachable: reachable, nodeMeasuredKW: nodeMeasured,
                              nodeAgeS: nodes.map { _ in 0 }, importCaps: caps)
    }

    /// Load at node n with these setpoints, counted independently of the governor:
    /// true uncontrolled load, reachable devices at their setpoint, unreachable at what they draw.
    func load(_ n: Int, _ sp: [Double]) -> Double {
        var total = 0.0
        for m in model.nodes.indices where model.nodeAncestors[m].contains(n) { total += trueUncontrolled[m] }
        for d in model.devices.indices where model.deviceAncestors[d].contains(n) {
            total += input.reachable[d] ? sp[d] : (input.measuredKW[d] ?? 0)
        }
        return total
    }

    func limit(_ n: Int) -> Double {
        var cap = model.nodes[n].capKW
        if n == model.root { cap = min(cap, model.importLimitKW, input.importCaps.map(\.capKW).min() ?? .infinity) }
        return cap - model.marginKW
    }
}

@Suite("Safety governor")
struct GovernorTests {
    @Test(arguments: 0..<10)
    func properties(batch: Int) {
        for k in 0..<200 {
            let c = RandomCase(seed: UInt64(batch * 1000 + k))
            let out = SafetyGovernor.govern(c.model, c.input)
            // Deterministic.
            #expect(SafetyGovernor.govern(c.model, c.input) == out)
            var ups = 0.0
            for (d, dev) in c.model.devices.enumerated() {
                let sp = out.setpointsKW[d]
                #expect(sp >= 0 && sp <= dev.maxKW + 1e-9)
                #expect(sp == 0 || sp >= dev.minStableKW - 1e-9, "below min-stable: \(sp) < \(dev.minStableKW)")
                let up = sp - c.input.commandedKW[d]
                #expect(up <= dev.rampUpKWPerS * c.input.tickSeconds + 1e-9, "ramp-up \(up) over \(dev.rampUpKWPerS)")
                if !c.input.reachable[d] { #expect(up <= 1e-9) }
                ups += max(0, up)
            }
            #expect(ups <= c.model.restoreKWPerTick + 1e-6)
            // Every cap holds whenever it can be held.
            if !out.infeasible {
                for n in c.model.nodes.indices {
                    #expect(c.load(n, out.setpointsKW) <= c.limit(n) + 1e-6,
                            "seed \(batch * 1000 + k): node \(n) load \(c.load(n, out.setpointsKW)) > limit \(c.limit(n))")
                }
            } else {
                // Infeasible only when what the governor cannot command already breaks a limit.
                let stuck = c.model.nodes.indices.contains { n in c.load(n, [Double](repeating: 0, count: c.model.devices.count)) > c.limit(n) - 1e-6 }
                #expect(stuck)
            }
        }
    }

    @Test(arguments: 0..<4)
    func lowerCapNeverRaisesASetpoint(batch: Int) {
        for k in 0..<200 {
            let c = RandomCase(seed: UInt64(50_000 + batch * 1000 + k))
            let a = SafetyGovernor.govern(c.model, c.input)
            var tighter = c.input
            tighter.importCaps.append(("tighter", max(0, (c.input.importCaps.map(\.capKW).min() ?? c.model.importLimitKW) * 0.7)))
            let b = SafetyGovernor.govern(c.model, tighter)
            for d in c.model.devices.indices { #expect(b.setpointsKW[d] <= a.setpointsKW[d] + 1e-9) }
        }
    }

    func twoDeviceSite() -> SafetyModel {
        SafetyModel(nodes: [.init(id: "site", parent: nil, capKW: 3000, uncontrolledMaxKW: 300, metered: true),
                            .init(id: "xfmr-1", parent: 0, capKW: 2000, metered: true)],
                    devices: [.init(id: "asic-1", node: 1, loadClass: .mining, maxKW: 1500, rampUpKWPerS: 100),
                              .init(id: "gpu-1", node: 1, loadClass: .inference, maxKW: 1000, rampUpKWPerS: 100)],
                    importLimitKW: 3000, marginKW: 100, staleAfterS: 5, commLossAfterS: 10)
    }

    func input(proposed: [Double?], commanded: [Double], siteKW: Double, xfmrKW: Double, siteAge: Double = 0,
               reachable: [Bool] = [true, true], caps: [(label: String, capKW: Double)] = []) -> GovernorInput {
        GovernorInput(tickSeconds: 1, proposedKW: proposed, overrideKW: [nil, nil], commandedKW: commanded,
                      measuredKW: commanded, deviceAgeS: [0, 0], reachable: reachable, nodeMeasuredKW: [siteKW, xfmrKW],
                      nodeAgeS: [siteAge, 0], importCaps: caps)
    }

    @Test func shedsMiningFirstToHoldATransformerCap() {
        let out = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [1500, 1000], commanded: [1500, 1000], siteKW: 2600, xfmrKW: 2500))
        // xfmr-1 limit 1900: mining sheds 600 first, inference untouched.
        #expect(out.setpointsKW == [900, 1000])
        #expect(out.mode == .shedding)
        #expect(out.interventions.contains { $0.hasPrefix("xfmr-1: predicted 2.5 MW (measured 2.5 MW) > xfmr-1 cap 2.0 MW") && $0.contains("asic-1 1.5 MW→900 kW") })
    }

    @Test func drCapOnSiteImport() {
        let out = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [800, 800], commanded: [800, 800], siteKW: 1800, xfmrKW: 1600,
                                                               caps: [("DR ers-1", 1200)]))
        // Limit 1100 kW; uncontrolled 200 kW measured → devices ≤ 900: mining sheds 700 first.
        #expect(out.setpointsKW[0] == 100 && out.setpointsKW[1] == 800)
        #expect(out.interventions.contains { $0.contains("DR ers-1 cap 1.2 MW") })
    }

    @Test func unreachableDeviceBudgetedAtLastKnownDraw() {
        let out = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [1500, 1000], commanded: [1000, 900], siteKW: 2100, xfmrKW: 1900,
                                                               reachable: [true, false]))
        // gpu-1 unreachable at 900: asic-1 may ramp +100 to 1100, but xfmr-1's limit 2000 − 100 (margin)
        // leaves 1900 − 900 = 1000 for it.
        #expect(out.setpointsKW[0] == 1000)
        #expect(out.setpointsKW[1] == 900)
    }

    @Test func staleSiteMeterMeansWorstCaseAndNoRampUp() {
        let out = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [1500, 1000], commanded: [500, 500], siteKW: 1100, xfmrKW: 1000, siteAge: 7))
        #expect(out.setpointsKW == [500, 500])
        #expect(out.interventions.contains { $0.contains("stale") })
    }

    @Test func siteMeterLossShedsMiningToSafeLevel() {
        let out = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [1500, 1000], commanded: [1500, 500], siteKW: 2100, xfmrKW: 2000, siteAge: 30))
        #expect(out.mode == .commLoss)
        #expect(out.setpointsKW[0] == 0)
        #expect(out.setpointsKW[1] == 500, "\(out.interventions)")
    }

    @Test func measuredOverCapForcesSheddingEvenIfThePlanFits() {
        // The plan fits (1000 + 500) but the meter reads 2100 on xfmr-1: devices are not following.
        var i = input(proposed: [1000, 500], commanded: [1000, 500], siteKW: 2300, xfmrKW: 2100)
        i.measuredKW = [1000, 500]
        let out = SafetyGovernor.govern(twoDeviceSite(), i)
        #expect(out.setpointsKW[0] + out.setpointsKW[1] <= 1500 - 200 + 1e-9)
        #expect(out.interventions.contains { $0.contains("xfmr-1: predicted 2.1 MW (measured 2.1 MW)") }, "\(out.interventions)")
    }

    @Test func staggeredRestore() {
        var m = twoDeviceSite()
        m.restoreKWPerTick = 150
        let model = SafetyModel(nodes: m.nodes, devices: m.devices, importLimitKW: 3000, marginKW: 100, restoreKWPerTick: 150)
        let out = SafetyGovernor.govern(model, input(proposed: [1500, 1000], commanded: [0, 0], siteKW: 100, xfmrKW: 0))
        #expect(out.setpointsKW.reduce(0, +) == 150)
        #expect(out.setpointsKW[1] == 100)  // inference restores first, within its ramp
    }

    @Test func overridesAreBoundedByTheSameCaps() {
        var i = input(proposed: [0, 0], commanded: [1500, 1000], siteKW: 2600, xfmrKW: 2500)
        i.overrideKW = [1500, 1000]
        let out = SafetyGovernor.govern(twoDeviceSite(), i)
        #expect(out.setpointsKW[0] + out.setpointsKW[1] <= 1900 + 1e-9)
    }
}
