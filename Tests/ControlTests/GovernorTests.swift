import Broker
import Safety
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

    /// - headroom: inference containers draw less than they were told (demand below the setpoint),
    ///   and the governor gets a random inference reserve.
    init(seed: UInt64, headroom: Bool = false) {
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
        var measured: [Double?] = commanded.map { Optional($0) }
        if headroom {
            for d in 0..<nD where devices[d].loadClass == .inference {
                measured[d] = (commanded[d] * Double.random(in: 0.1...1, using: &rng)).rounded()
            }
        }
        let u = nodes.map { min($0.uncontrolledMaxKW, Double(Int.random(in: 0...200, using: &rng))) }
        trueUncontrolled = u
        var nodeMeasured = [Double?](repeating: nil, count: nN)
        for n in 0..<nN {
            var total = 0.0
            for m in 0..<nN where model.nodeAncestors[m].contains(n) { total += u[m] }
            for d in 0..<nD where model.deviceAncestors[d].contains(n) { total += measured[d]! }
            nodeMeasured[n] = total
        }
        let caps: [(label: String, capKW: Double)] = Bool.random(using: &rng) ? [("dr", Double(Int.random(in: 200...5000, using: &rng)))] : []
        input = GovernorInput(tickSeconds: 1,
                              proposedKW: devices.map { Bool.random(using: &rng) ? Double(Int.random(in: 0...Int($0.maxKW * 1.2), using: &rng)) : nil },
                              overrideKW: devices.map { _ in nil }, commandedKW: commanded, measuredKW: measured,
                              deviceAgeS: devices.map { _ in 0 }, reachable: reachable, nodeMeasuredKW: nodeMeasured,
                              nodeAgeS: nodes.map { _ in 0 }, importCaps: caps)
        if headroom {
            input.inferenceReserveKW = devices.map { $0.loadClass == .inference ? Double(Int.random(in: 0...300, using: &rng)) : .infinity }
            input.valueUsdPerMWh = devices.map { _ in Double(Int.random(in: -50...300, using: &rng)) }
        }
    }

    /// The worst load at node n if every inference container rose to its setpoint and mining under
    /// n were shed by the headroom the governor counted on (never below 0): U + G_setpoint +
    /// max(0, M − headroom), with headroom = Σ max(0, setpoint − (draw + reserve)). Counted here
    /// from the definitions, independently of the governor.
    func worstLoadWithHeadroom(_ n: Int, _ sp: [Double]) -> Double {
        var total = 0.0, mining = 0.0, gap = 0.0
        for m in model.nodes.indices where model.nodeAncestors[m].contains(n) { total += trueUncontrolled[m] }
        for d in model.devices.indices where model.deviceAncestors[d].contains(n) {
            guard input.reachable[d] else { total += input.measuredKW[d] ?? 0; continue }
            total += model.devices[d].loadClass == .mining ? 0 : sp[d]
            if model.devices[d].loadClass == .mining { mining += sp[d] }
            if let r = input.inferenceReserveKW?[d], r.isFinite, model.devices[d].loadClass == .inference {
                gap += max(0, sp[d] - (input.measuredKW[d]! + r))
            }
        }
        return total + max(0, mining - gap)
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
                // The broker's definition of a tick's rise: a start may go straight to min-stable.
                let ceiling = RampRule.ceilingKw(fromKw: c.input.commandedKW[d], maxKw: dev.maxKW, minStableKw: dev.minStableKW,
                                                 rampKwPerS: dev.rampUpKWPerS, tickS: c.input.tickSeconds)
                if up > 1e-9 { #expect(sp <= ceiling + 1e-9, "ramp-up to \(sp) over the ramp rule's \(ceiling)") }
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
        // The meter reads 2.5 MW on a 2.0 MW cap: over the cap until it reads under it.
        #expect(out.mode == .overCap)
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

    /// `binding` names what limited the pass (the live view's binding line): the cap it trimmed at, a spent restore budget.
    @Test func bindingNamesTheCapTrimmedAtAndTheRestoreBudget() {
        let capped = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [800, 800], commanded: [800, 800], siteKW: 1800, xfmrKW: 1600,
                                                                  caps: [("DR ers-1", 1200)]))
        #expect(capped.binding == ["DR ers-1 cap 1.2 MW − margin 100 kW"], "\(capped.binding)")
        let free = SafetyGovernor.govern(twoDeviceSite(), input(proposed: [800, 800], commanded: [800, 800], siteKW: 1800, xfmrKW: 1600))
        #expect(free.binding.isEmpty, "\(free.binding)")
        var model = twoDeviceSite()
        model.restoreKWPerTick = 50
        let restoring = SafetyGovernor.govern(model, input(proposed: [900, 900], commanded: [800, 800], siteKW: 1800, xfmrKW: 1600))
        #expect(restoring.setpointsKW == [800, 850])
        #expect(restoring.binding == ["site restore rate 50 kW/tick"], "\(restoring.binding)")
    }

    /// Start-up (`startingUp`): a site meter not read yet is not comm loss; nothing rises, mining is not shed,
    /// and an excess that only the unread budgets make is a note, not an infeasible pass.
    @Test func startingIsNotCommLoss() {
        var i = input(proposed: [1500, 1000], commanded: [1500, 500], siteKW: 0, xfmrKW: 2000, siteAge: .infinity)
        i.nodeMeasuredKW[0] = nil
        i.reachable = [true, false]
        i.measuredKW = [1500, nil]
        i.startingUp = true
        let out = SafetyGovernor.govern(twoDeviceSite(), i)
        #expect(out.mode == .starting)
        // The caps still hold (gpu-1, not read yet, budgeted at its 1 MW maximum: xfmr-1 leaves asic-1 900 kW), but
        // mining is not shed to its safe level.
        #expect(out.setpointsKW[0] == 900, "\(out.interventions)")
        #expect(!out.infeasible && !out.interventions.contains { $0.contains("comm loss") }, "\(out.interventions)")
        #expect(out.binding == ["xfmr-1 cap 2.0 MW − margin 100 kW", "starting: no ramp-up until the meters are read"], "\(out.binding)")
        // The same readings after start-up: comm loss, mining to its safe level.
        i.startingUp = false
        let lost = SafetyGovernor.govern(twoDeviceSite(), i)
        #expect(lost.mode == .commLoss && lost.setpointsKW[0] == 0)
        #expect(lost.binding.contains { $0.hasPrefix("comm loss: site meter silent") }, "\(lost.binding)")
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

    @Test(arguments: 0..<5)
    func inferenceHeadroomNeverBreaksACap(batch: Int) {
        var granted = 0
        for k in 0..<200 {
            let c = RandomCase(seed: UInt64(90_000 + batch * 1000 + k), headroom: true)
            let out = SafetyGovernor.govern(c.model, c.input)
            if out.infeasible { continue }
            for n in c.model.nodes.indices {
                // Now, and after every inference container rose to its setpoint and mining shed what
                // was counted on: under the limit either way.
                #expect(c.worstLoadWithHeadroom(n, out.setpointsKW) <= c.limit(n) + 1e-6,
                        "seed \(90_000 + batch * 1000 + k): node \(n) worst \(c.worstLoadWithHeadroom(n, out.setpointsKW)) > limit \(c.limit(n))")
            }
            for d in c.model.devices.indices where out.budgetKW[d] < out.setpointsKW[d] - 1e-6 { granted += 1 }
        }
        #expect(granted > 20, "headroom was granted only \(granted) times: the test lost its point")
    }

    // MARK: A start is not a ramp (issue 12 §0)

    /// The demo site's container limits: ASIC 1.3 MW, min-stable 400 kW, ramp 50 kW/s; GPU 1 MW,
    /// min-stable 200 kW, ramp 100 kW/s; 1 s tick, 6 MW restore budget per tick.
    func demoLimitsSite(restore: Double = 6000) -> SafetyModel {
        SafetyModel(nodes: [.init(id: "site", parent: nil, capKW: 40000, metered: true)],
                    devices: [.init(id: "asic-01", node: 0, loadClass: .mining, maxKW: 1300, minStableKW: 400, rampUpKWPerS: 50),
                              .init(id: "gpu-01", node: 0, loadClass: .inference, maxKW: 1000, minStableKW: 200, rampUpKWPerS: 100)],
                    importLimitKW: 40000, marginKW: 500, restoreKWPerTick: restore, staleAfterS: 30, commLossAfterS: 10)
    }

    func offInput(proposed: [Double?]) -> GovernorInput {
        GovernorInput(tickSeconds: 1, proposedKW: proposed, overrideKW: [nil, nil], commandedKW: [0, 0], measuredKW: [0, 0],
                      deviceAgeS: [0, 0], reachable: [true, true], nodeMeasuredKW: [300], nodeAgeS: [0])
    }

    @Test func offContainersStartAtMinStableAtDemoSettings() {
        let model = demoLimitsSite()
        let out = SafetyGovernor.govern(model, offInput(proposed: [1300, 1000]))
        // min-stable (400, 200 kW) is more than one tick of ramp (50, 100 kW): a start, not a ramp.
        #expect(out.setpointsKW == [400, 200], "\(out.interventions)")
        // The same ceiling the broker plans with.
        for (d, dev) in model.devices.enumerated() {
            #expect(out.setpointsKW[d] == RampRule.ceilingKw(fromKw: 0, maxKw: dev.maxKW, minStableKw: dev.minStableKW,
                                                             rampKwPerS: dev.rampUpKWPerS, tickS: 1))
        }
        // Running: the next tick rises by the ramp only.
        var next = offInput(proposed: [1300, 1000])
        next.commandedKW = [400, 200]
        next.measuredKW = [400, 200]
        #expect(SafetyGovernor.govern(model, next).setpointsKW == [450, 300])
    }

    @Test func aStartWaitsWhenTheRestoreBudgetCannotCoverMinStable() {
        // 500 kW of budget: the GPU (restored first) takes 200, 300 is left, less than the ASIC's 400.
        let out = SafetyGovernor.govern(demoLimitsSite(restore: 500), offInput(proposed: [1300, 1000]))
        #expect(out.setpointsKW == [0, 200])
        #expect(out.interventions.contains { $0.contains("restore staggered") && $0.contains("1 start(s) wait") }, "\(out.interventions)")
        // Enough budget for both starts.
        #expect(SafetyGovernor.govern(demoLimitsSite(restore: 600), offInput(proposed: [1300, 1000])).setpointsKW == [400, 200])
    }

    // MARK: Trim the least valuable kW first (§3)

    /// One PDU with three ASICs and a GPU under contract; values as the broker gives them.
    func valueSite() -> SafetyModel {
        SafetyModel(nodes: [.init(id: "site", parent: nil, capKW: 10000, metered: true),
                            .init(id: "pdu", parent: 0, capKW: 3500, metered: true)],
                    devices: [.init(id: "asic-01", node: 1, loadClass: .mining, maxKW: 1300, minStableKW: 400, rampUpKWPerS: 50),
                              .init(id: "asic-03", node: 1, loadClass: .mining, maxKW: 1200, minStableKW: 400, rampUpKWPerS: 50),
                              .init(id: "asic-24", node: 1, loadClass: .mining, maxKW: 1200, minStableKW: 400, rampUpKWPerS: 50),
                              .init(id: "gpu-01", node: 1, loadClass: .inference, maxKW: 1000, minStableKW: 200, rampUpKWPerS: 100)],
                    importLimitKW: 10000, marginKW: 0, restoreKWPerTick: 6000, staleAfterS: 30, commLossAfterS: 10)
    }

    @Test func theMostEfficientAsicIsShedLast() {
        // 1300 + 1200 + 1200 + 600 = 4300 kW metered on a 3500 kW PDU: 800 kW must go.
        // Values net of energy: asic-01 (17.5 J/TH) 79, asic-03 (18 J/TH) 76, asic-24 (34 J/TH) 21 $/MWh;
        // gpu-01 is worth only 10 $/MWh net but serves a contract.
        var i = GovernorInput(tickSeconds: 1, proposedKW: [1300, 1200, 1200, 600], overrideKW: [nil, nil, nil, nil],
                              commandedKW: [1300, 1200, 1200, 600], measuredKW: [1300, 1200, 1200, 600], deviceAgeS: [0, 0, 0, 0],
                              reachable: [true, true, true, true], nodeMeasuredKW: [4300, 4300], nodeAgeS: [0, 0])
        i.valueUsdPerMWh = [79, 76, 21, 10]
        i.underContract = [false, false, false, true]
        let out = SafetyGovernor.govern(valueSite(), i)
        #expect(out.setpointsKW == [1300, 1200, 400, 600], "\(out.interventions)")
        #expect(out.interventions.contains { $0.contains("shed least valuable first: asic-24 (21 $/MWh) 1.2 MW→400 kW") }, "\(out.interventions)")
        // A deeper cut reaches asic-03 before asic-01, and the contract last.
        i.nodeMeasuredKW = [4300, 4300]
        i.importCaps = [("DR ers-1", 1900)]
        let deep = SafetyGovernor.govern(valueSite(), i)
        #expect(deep.setpointsKW == [1300, 0, 0, 600], "\(deep.interventions)")
        #expect(deep.interventions.contains { $0.contains("asic-24 (21 $/MWh) 400 kW→0 kW, asic-03 (76 $/MWh) 1.2 MW→0 kW") }, "\(deep.interventions)")
        // Without values the governor still trims the largest mining setpoint first (asic-01).
        i.valueUsdPerMWh = nil
        i.underContract = nil
        i.importCaps = []
        #expect(SafetyGovernor.govern(valueSite(), i).setpointsKW[0] < 1300)
    }

    // MARK: Inference headroom that mining pays for (§4)

    @Test func inferenceHeadroomRunsMiningUntilInferenceNeedsIt() {
        // gpu-01 is told 1000 kW but draws 300 kW; reserve 200 kW: budgeted at 500 kW while 500 kW of
        // mining under the same PDU can be shed for it.
        var i = GovernorInput(tickSeconds: 1, proposedKW: [1300, 1200, 1200, 1000], overrideKW: [nil, nil, nil, nil],
                              commandedKW: [1300, 1200, 1200, 1000], measuredKW: [1300, 1200, 1200, 300], deviceAgeS: [0, 0, 0, 0],
                              reachable: [true, true, true, true], nodeMeasuredKW: [4000, 4000], nodeAgeS: [0, 0])
        i.valueUsdPerMWh = [79, 76, 21, 160]
        i.underContract = [false, false, false, false]
        let atSetpoint = SafetyGovernor.govern(valueSite(), i)
        // Budgeted at its setpoint, 4700 kW on the 3500 kW PDU: 1200 kW of mining goes.
        #expect(atSetpoint.setpointsKW == [1300, 1200, 0, 1000], "\(atSetpoint.interventions)")
        i.inferenceReserveKW = [.infinity, .infinity, .infinity, 200]
        let out = SafetyGovernor.govern(valueSite(), i)
        // Budgeted at 300 + 200 = 500 kW: 3700 + 500 = 4200 > 3500, 700 kW of mining goes (asic-24 to 500).
        #expect(out.setpointsKW == [1300, 1200, 500, 1000], "\(out.interventions)")
        #expect(out.budgetKW[3] == 500)
        #expect(out.interventions.contains { $0.contains("inference headroom: 500 kW") }, "\(out.interventions)")
        // Inference demand rises to 900 kW: the next pass budgets it at its 1000 kW setpoint and sheds
        // mining for it, the least valuable first.
        i.commandedKW = out.setpointsKW
        i.measuredKW = [1300, 1200, 500, 900]
        i.nodeMeasuredKW = [3900, 3900]
        let rise = SafetyGovernor.govern(valueSite(), i)
        #expect(rise.setpointsKW[3] == 1000)
        #expect(rise.setpointsKW[0] + rise.setpointsKW[1] + rise.setpointsKW[2] + 1000 <= 3500 + 1e-6, "\(rise.setpointsKW)")
        #expect(rise.setpointsKW[0] == 1300, "the most efficient ASIC is shed last: \(rise.setpointsKW)")
    }

    @Test func headroomIsOnlyAsLargeAsTheMiningThatCanPayForIt() {
        // No mining under the PDU to shed: the GPU is budgeted at its setpoint.
        let model = SafetyModel(nodes: [.init(id: "site", parent: nil, capKW: 10000, metered: true),
                                        .init(id: "pdu", parent: 0, capKW: 900, metered: true),
                                        .init(id: "pdu-b", parent: 0, capKW: 5000, metered: true)],
                                devices: [.init(id: "gpu-01", node: 1, loadClass: .inference, maxKW: 1000, minStableKW: 200, rampUpKWPerS: 100),
                                          .init(id: "asic-01", node: 2, loadClass: .mining, maxKW: 1300, minStableKW: 400, rampUpKWPerS: 50)],
                                importLimitKW: 10000, marginKW: 0)
        var i = GovernorInput(tickSeconds: 1, proposedKW: [1000, 1300], overrideKW: [nil, nil], commandedKW: [1000, 1300],
                              measuredKW: [300, 1300], deviceAgeS: [0, 0], reachable: [true, true], nodeMeasuredKW: [1600, 300, 1300],
                              nodeAgeS: [0, 0, 0], inferenceReserveKW: [200, .infinity])
        i.valueUsdPerMWh = [160, 80]
        let out = SafetyGovernor.govern(model, i)
        // 1000 kW budgeted on a 900 kW PDU: the GPU is trimmed; mining on another branch cannot pay for it.
        #expect(out.setpointsKW == [900, 1300], "\(out.interventions)")
        #expect(out.budgetKW[0] == 900)
    }

    // MARK: Stale data blocks ramp-up only where it matters (§5)

    @Test func aStalePduMeterBlocksRampUpOnlyUnderThatPdu() {
        let model = SafetyModel(nodes: [.init(id: "site", parent: nil, capKW: 10000, metered: true),
                                        .init(id: "pdu-1a", parent: 0, capKW: 5000, metered: true),
                                        .init(id: "pdu-2a", parent: 0, capKW: 5000, metered: true)],
                                devices: [.init(id: "asic-01", node: 1, loadClass: .mining, maxKW: 1300, rampUpKWPerS: 50),
                                          .init(id: "asic-13", node: 2, loadClass: .mining, maxKW: 1300, rampUpKWPerS: 50)],
                                importLimitKW: 10000, marginKW: 500, staleAfterS: 30)
        let i = GovernorInput(tickSeconds: 1, proposedKW: [1300, 1300], overrideKW: [nil, nil], commandedKW: [800, 800],
                              measuredKW: [800, 800], deviceAgeS: [0, 0], reachable: [true, true],
                              nodeMeasuredKW: [1700, nil, 800], nodeAgeS: [0, 45, 0])
        let out = SafetyGovernor.govern(model, i)
        #expect(out.setpointsKW == [800, 850], "\(out.interventions)")
        #expect(out.interventions.contains { $0.contains("stale meter data under pdu-1a: no ramp-up for 1 device(s) there (asic-01)") },
                "\(out.interventions)")
    }

    // MARK: Infeasible means infeasible (§5)

    @Test func theModeSaysOverCapUntilTheMeterIsUnderTheCap() {
        // Everything is already told 0 kW, but the containers ramp down slowly: the meter reads 30.9 MW
        // against a 1 MW DR cap.
        let model = demoLimitsSite()
        var i = offInput(proposed: [0, 0])
        i.measuredKW = [1250, 900]
        i.nodeMeasuredKW = [30_900]
        i.importCaps = [("DR ers-1", 1000)]
        let out = SafetyGovernor.govern(model, i)
        #expect(out.setpointsKW == [0, 0])
        #expect(out.mode == .overCap)
        #expect(out.overCapNodes == ["site"])
        #expect(out.interventions.contains { $0.contains("site: metered 30.9 MW is over the DR ers-1 cap 1.0 MW") }, "\(out.interventions)")
        // Under the cap (not the margin): the mode is no longer over-cap.
        i.nodeMeasuredKW = [990]
        i.measuredKW = [0, 0]
        let under = SafetyGovernor.govern(model, i)
        #expect(under.mode != .overCap && under.overCapNodes.isEmpty)
    }
}
