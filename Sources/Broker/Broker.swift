// Pure dispatch: how many kW each container gets this tick.
//
// The method (see docs/dispatch.md for the long form):
//  1. Per device, turn limits, dwell, ramp, stale data and the strike rule into an allowed range
//     and an on/off status: pinned (unavailable), forced on (inside min-on dwell), forced off,
//     or free.
//  2. Split each device's allowed range into pieces of constant value in $/MWh (contract
//     commitment at rate + penalty, the rest at spot or hashprice value), net of the energy price
//     times the kW of site import each device kW causes (auxiliary load such as cooling included).
//     A free device with a min-stable power has a start block [0, min-stable]: all or nothing.
//  3. Relaxing the start blocks (they may be taken in part) leaves greedy by value under the
//     laminar caps, which is exact (the caps form a polymatroid); a Lagrange multiplier handles the
//     site restore rate. That relaxation bounds every plan from above.
//  4. Up to `exactSearchMaxDevices` devices: branch and bound over the start blocks (Search.swift),
//     bounded by the relaxation, until the plan is proven within `exactTargetGap` of the optimum or
//     the work budget is spent. Larger sites: greedy plus a budgeted local search over whole blocks.
//  5. A paid-reduction DR event makes the energy cost concave; both sides of the baseline are
//     solved and the better plan kept.
//  6. Every plan reports the gap its bound proves (bound minus plan), and reasons derived from the
//     plan itself (Explain.swift): which cap is full, which comparison of value and price decided.
// Ties are broken by device id, so the same problem always gives the same plan.

import Safety

public enum Broker {
    /// Sites with at most this many devices get the exact search.
    public static let exactSearchMaxDevices = 300
    /// The exact search stops when the best plan is proven within this fraction of the optimum.
    public static let exactTargetGap = 1e-7
    /// Work budget of the exact search, in item visits (each walks one device's path in the tree):
    /// about 10 ms on the benchmark machine.
    public static let exactWorkBudget = 1_000_000

    /// One-shot dispatch. Pure and deterministic.
    public static func dispatch(_ problem: DispatchProblem) -> DispatchPlan {
        var engine = Engine(problem)
        return engine.run()
    }

    /// Mining value in $/MWh from hashprice ($/PH/day) and efficiency (J/TH): 1 PH/s at e J/TH
    /// draws e kW, so a day of 1 PH/s takes 0.024·e MWh and earns the hashprice.
    public static func miningValue(hashpriceUsdPerPHDay: Double, efficiencyJPerTH: Double) -> Double {
        hashpriceUsdPerPHDay / (0.024 * efficiencyJPerTH)
    }

    /// The objective of given setpoints (same accounting as the plan's breakdown). Setpoints are
    /// parallel to `plant.devices`; unavailable devices should carry their held draw.
    public static func evaluate(_ problem: DispatchProblem, setpointsKw: [Double]) -> Objective {
        let engine = Engine(problem)
        return engine.objective(setpointsKw)
    }
}

enum Status: UInt8, Sendable {
    case pinned, forcedOn, forcedOff, free
}

enum OffWhy: UInt8, Sendable {
    case none
    case minOff
    case strike
    case stale
    case cannotReachMinStable
}

/// One side of a paid-reduction baseline (or the only regime without one).
struct Regime: Sendable {
    /// Energy price with adders, plus the DR payment forgone per MWh in the below-baseline regime.
    var price: Double
    var rootCap: Double
    /// True in the below-baseline regime of a paid reduction.
    var below = false
    /// The DR payment per MWh in the below-baseline regime (0 otherwise).
    var extra = 0.0
    /// $/h the regime adds whatever the plan: the payment on the whole baseline when below it.
    var constant = 0.0
}

enum StrikeState: UInt8, Sendable {
    case none
    /// Price at or above the strike.
    case atStrike
    /// Curtailed before, price below the strike but not below strike − hysteresis.
    case hysteresis
    /// Curtailed before, price below strike − hysteresis, minimum off time not over.
    case minOff
}

struct PassState: Sendable {
    var x: [Double]
    var residual: [Double]
    var restoreLeft: Double
    var restoreUsed: Double
    var admitted: [Bool]
    var saturated: [Bool]
    /// -1 none, >= 0 node index, -2 restore rate.
    var rejectedBy: [Int32]
    var limitedBy: [Int32]
    var nodeHits: [Int32]
    var restoreHit: Bool
    var total: Double
}

struct Items: Sendable {
    var device: [Int32] = []
    var a: [Double] = []
    var b: [Double] = []
    var key: [Double] = []
    /// Whether this item starts at 0 with a min-stable block that must fit whole.
    var first: [Bool] = []
    /// Per device, its items are start[d]..<end[d] (contiguous, in increasing kW).
    var start: [Int] = []
    var end: [Int] = []
    var order: [Int32] = []
    // The positive items again, in processing order (sequential reads in the hot loop).
    var sortedDev: [Int32] = []
    var sortedB: [Double] = []
    var sortedFirst: [Bool] = []
}

struct Engine: Sendable {
    let plant: Plant
    let snap: Snapshot
    let sig: DispatchSignals
    let nD: Int
    let nN: Int
    let eps = 1e-7

    var price = 0.0
    var value: [Double] = []
    var commitKw: [Double] = []
    var rate: [Double] = []
    var pen: [Double] = []
    var contractLabel: [String?] = []
    var spotOverContract: [Bool] = []
    var rampBase: [Double] = []
    var lo: [Double] = []
    var hi: [Double] = []
    var minStable: [Double] = []
    var status: [Status] = []
    var offWhy: [OffWhy] = []
    var startPrice: [Double] = []
    var held: [Double] = []
    var stale: [Bool] = []
    var rampLimited: [Bool] = []
    var fixedSub: [Double] = []
    var effCap: [Double] = []
    var rootCapLabel = ""
    /// Inference headroom lent at each node (kW; `Snapshot.headroomCreditKw`), empty when none.
    var headroomLent: [Double] = []
    var curtailNow = false
    var restoreRate = Double.infinity
    var strikeState = StrikeState.none
    /// Some device's start block is charged above the price now (the forecast start rule).
    var anyStartSurcharge = false
    var devConst: [DevConst] = []

    init(_ p: DispatchProblem) {
        plant = p.plant
        snap = p.snapshot
        sig = p.signals
        nD = plant.devices.count
        nN = plant.nodes.count
        prepare()
    }

    // MARK: preparation

    mutating func prepare() {
        price = sig.energyPriceUsdPerMWh + sig.priceAdders.reduce(0) { $0 + $1.usdPerMWh }
        restoreRate = plant.restoreRateKwPerTick.map { max(0, $0) } ?? .infinity

        // Strike rule.
        if let s = sig.strike {
            if price >= s.strikeUsdPerMWh {
                curtailNow = true
                strikeState = .atStrike
            } else if snap.miningCurtailed {
                if price >= s.strikeUsdPerMWh - s.hysteresisUsdPerMWh {
                    curtailNow = true
                    strikeState = .hysteresis
                } else if snap.miningCurtailedForS < s.minOffS {
                    curtailNow = true
                    strikeState = .minOff
                }
            }
        }

        // Values and commitments.
        value = Array(repeating: 0, count: nD)
        commitKw = Array(repeating: 0, count: nD)
        rate = Array(repeating: 0, count: nD)
        pen = Array(repeating: 0, count: nD)
        contractLabel = Array(repeating: nil, count: nD)
        let override = plant.valueOverride
        let eff = plant.efficiencyJPerTH
        let kpg = plant.kwPerGpu
        let mining = plant.isMining
        for d in 0..<nD {
            if !override[d].isNaN {
                value[d] = override[d]
            } else if mining[d] {
                if let v = sig.miningValueUsdPerMWh {
                    value[d] = v
                } else if let h = sig.hashpriceUsdPerPHDay, eff[d] > 0 {
                    value[d] = Broker.miningValue(hashpriceUsdPerPHDay: h, efficiencyJPerTH: eff[d])
                }
            } else {
                if let v = sig.inferenceSpotUsdPerMWh {
                    value[d] = v
                } else if let g = sig.inferenceSpotUsdPerGpuHour, kpg[d] > 0 {
                    value[d] = g / kpg[d] * 1000
                }
            }
        }
        for c in sig.commitments {
            guard let d = plant.deviceIndexByID[c.deviceID], c.committedKw > 0 else { continue }
            let old = commitKw[d]
            let new = old + c.committedKw
            rate[d] = (rate[d] * old + c.rateUsdPerMWh * c.committedKw) / new
            pen[d] = (pen[d] * old + c.penaltyUsdPerMWh * c.committedKw) / new
            commitKw[d] = new
            contractLabel[d] = contractLabel[d].map { $0 + "+" + c.contractID } ?? c.contractID
        }
        // When spot pays more than rate + penalty, the best use of the device is to sell spot and
        // pay the penalty: the committed kW then count at spot value (keeps value concave in kW).
        spotOverContract = (0..<nD).map { commitKw[$0] > 0 && value[$0] >= rate[$0] + pen[$0] }

        // Device ranges and status.
        lo = Array(repeating: 0, count: nD)
        hi = Array(repeating: 0, count: nD)
        minStable = Array(repeating: 0, count: nD)
        rampBase = Array(repeating: 0, count: nD)
        status = Array(repeating: .free, count: nD)
        offWhy = Array(repeating: .none, count: nD)
        startPrice = Array(repeating: price, count: nD)
        held = Array(repeating: 0, count: nD)
        stale = Array(repeating: false, count: nD)
        rampLimited = Array(repeating: false, count: nD)
        let tick = plant.tickSeconds
        let maxKw = plant.maxKw
        let msKw = plant.minStableKw
        let ramp = plant.rampKwPerS
        let minOn = plant.minOnS
        let minOff = plant.minOffS
        let staleAfter = plant.staleAfterS
        let forecast = !sig.priceForecast.isEmpty
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD {
                let st = states[d]
                minStable[d] = msKw[d]
                if !st.available {
                    status[d] = .pinned
                    held[d] = max(0, st.measuredKw ?? st.setpointKw)
                    lo[d] = held[d]
                    hi[d] = held[d]
                    continue
                }
                let on = st.isOn && st.setpointKw > 0
                let s = on ? min(st.setpointKw, maxKw[d]) : 0
                rampBase[d] = s
                var h = RampRule.ceilingKw(fromKw: s, maxKw: maxKw[d], minStableKw: msKw[d], rampKwPerS: ramp[d], tickS: tick)
                rampLimited[d] = h < maxKw[d] - eps
                let isStale = st.dataAgeS > staleAfter
                stale[d] = isStale
                if isStale { h = on ? min(h, s) : 0 }
                let dwellOn = on && msKw[d] > 0 && st.stateForS < minOn[d]
                let dwellOff = !on && msKw[d] > 0 && st.stateForS < minOff[d]
                let struck = mining[d] && curtailNow
                if dwellOn {
                    status[d] = .forcedOn
                    lo[d] = msKw[d]
                    hi[d] = struck ? lo[d] : max(h, lo[d])
                    if struck { offWhy[d] = .strike }
                } else if dwellOff {
                    status[d] = .forcedOff
                    offWhy[d] = .minOff
                } else if struck {
                    status[d] = .forcedOff
                    offWhy[d] = .strike
                } else if isStale && !on {
                    status[d] = .forcedOff
                    offWhy[d] = .stale
                } else if h < msKw[d] - eps || h <= eps {
                    status[d] = .forcedOff
                    offWhy[d] = isStale ? .stale : .cannotReachMinStable
                } else {
                    status[d] = .free
                    hi[d] = h
                    // The start rule: a device held on for its minimum on time once started (only
                    // devices with a min-stable power have dwell) pays for its start block at the
                    // worse of the price now and the forecast average over that time.
                    if forecast && !on && minOn[d] > 0 && msKw[d] > 0 {
                        startPrice[d] = max(price, windowAverage(minOn[d]))
                        if startPrice[d] > price { anyStartSurcharge = true }
                    }
                }
            }
        }

        devConst = (0..<nD).map {
            DevConst(
                k0: Int32(plant.nodePathStart[plant.deviceNode[$0]]),
                k1: Int32(plant.nodePathStart[plant.deviceNode[$0] + 1]), rampBase: rampBase[$0],
                minStable: minStable[$0])
        }

        // Fixed load per node: declared uncontrollable load plus what meters see that the
        // devices below them do not explain.
        var own = Array(repeating: 0.0, count: nN)
        var explained = Array(repeating: 0.0, count: nN)
        for n in 0..<nN { own[n] = max(0, snap.uncontrolledKw[n]) }
        for n in 0..<nN { explained[n] = own[n] }
        let devNode = plant.deviceNode
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD { explained[devNode[d]] += max(0, states[d].measuredKw ?? 0) }
        }
        // Auxiliary load that follows IT load (cooling) is modelled, so the meters' share of it is
        // explained too: aux fraction x the measured IT load below the node.
        var itBelow = Array(repeating: 0.0, count: nN)
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD { itBelow[devNode[d]] += max(0, states[d].measuredKw ?? 0) }
        }
        for n in stride(from: nN - 1, through: 1, by: -1) { itBelow[plant.nodeParent[n]] += itBelow[n] }
        for n in 0..<nN where plant.nodes[n].auxFraction > 0 {
            explained[n] += plant.nodes[n].auxFraction * itBelow[n]
        }
        for n in stride(from: nN - 1, through: 0, by: -1) {
            if let m = snap.nodeMeasuredKw[n], m > explained[n] {
                own[n] += m - explained[n]
                explained[n] = m
            }
            let p = plant.nodeParent[n]
            if p >= 0 { explained[p] += explained[n] }
        }
        // Fixed load also scales with auxiliary fractions? No: auxiliary fractions follow IT load
        // of controllable devices only. Fixed load is counted as is at its node and above.
        fixedSub = own
        for n in stride(from: nN - 1, through: 1, by: -1) {
            let p = plant.nodeParent[n]
            if p >= 0 { fixedSub[p] += fixedSub[n] }
        }

        // Effective caps.
        // The safety margin applies to every cap, as the safety governor applies it: a plan the
        // governor would trim is never proposed.
        let margin = plant.safetyMarginKw
        effCap = plant.nodes.map { $0.capKw - margin }
        rootCapLabel = "\(plant.nodes[0].id) cap \(Fmt.mw(plant.nodes[0].capKw)) − margin \(Fmt.mw(margin))"
        let importCap = plant.importLimitKw - margin
        if importCap < effCap[0] {
            effCap[0] = importCap
            rootCapLabel = "site import limit \(Fmt.mw(plant.importLimitKw)) − margin \(Fmt.mw(margin))"
        }
        for c in sig.importCaps where c.capKw - margin < effCap[0] {
            effCap[0] = c.capKw - margin
            rootCapLabel = "\(c.label) import cap \(Fmt.mw(c.capKw)) − margin \(Fmt.mw(margin))"
        }
        // Inference headroom that the safety governor lends (docs/governor.md): kW that inference
        // containers are told but do not draw, covered by mining that can be shed. Not while a paid
        // reduction is in force: its baseline is metered import, which headroom does not change.
        if let credit = snap.headroomCreditKw, credit.count == nN, sig.paidReduction == nil, credit.contains(where: { $0 > 0 }) {
            headroomLent = credit.map { max(0, $0) }
            for n in 0..<nN { effCap[n] += headroomLent[n] }
            if headroomLent[0] > 0 { rootCapLabel += " + inference headroom \(Fmt.mw(headroomLent[0]))" }
        }
    }

    /// Average price (with adders) over the next `seconds`, from the forecast step function.
    func windowAverage(_ seconds: Double) -> Double {
        let adders = price - sig.energyPriceUsdPerMWh
        var t = 0.0
        var p = sig.energyPriceUsdPerMWh
        var acc = 0.0
        for f in sig.priceForecast where f.offsetS > 0 {
            let end = min(f.offsetS, seconds)
            if end > t {
                acc += p * (end - t)
                t = end
            }
            if t >= seconds { break }
            p = f.usdPerMWh
        }
        if t < seconds { acc += p * (seconds - t) }
        return acc / seconds + adders
    }

    // MARK: objective

    /// Committed kW that the plan tries to serve (0 when selling spot pays more).
    func servedCommit(_ d: Int) -> Double { spotOverContract[d] ? 0 : commitKw[d] }

    func revenue(_ d: Int, _ x: Double) -> Double {
        let c = servedCommit(d)
        if c > 0 { return (rate[d] * min(x, c) + value[d] * max(0, x - c)) / 1000 }
        return value[d] * x / 1000
    }

    func objective(_ x: [Double]) -> Objective {
        var o = Objective()
        var site = fixedSub[0]
        let rootMult = plant.rootMult
        let mining = plant.isMining
        for d in 0..<nD {
            let xd = x[d]
            site += xd * rootMult[d]
            let c = commitKw[d]
            var r: Double
            if c > 0 {
                if spotOverContract[d] {
                    r = value[d] * xd / 1000
                    o.penalty -= pen[d] * c / 1000
                } else {
                    r = (rate[d] * min(xd, c) + value[d] * max(0, xd - c)) / 1000
                    o.penalty -= pen[d] * max(0, c - xd) / 1000
                }
            } else {
                r = value[d] * xd / 1000
            }
            if mining[d] { o.mining += r } else { o.inference += r }
        }
        o.energy = -price * site / 1000
        if let pr = sig.paidReduction { o.drCredit = pr.usdPerMWh * max(0, pr.baselineKw - site) / 1000 }
        return o
    }

    // MARK: run

    mutating func run() -> DispatchPlan {
        var regimes = [Regime(price: price, rootCap: effCap[0])]
        if let pr = sig.paidReduction, pr.usdPerMWh > 0 {
            regimes.append(
                Regime(
                    price: price + pr.usdPerMWh, rootCap: min(effCap[0], pr.baselineKw), below: true, extra: pr.usdPerMWh,
                    constant: pr.usdPerMWh * pr.baselineKw / 1000))
        }
        guard let base0 = mandatory(regimes[0]) else { return infeasiblePlan() }
        let exact = nD <= Broker.exactSearchMaxDevices
        var best: (x: [Double], value: Double, regime: Regime)? = nil
        var bound = -Double.infinity
        var complete = true
        var nodes = 0
        var finalState: PassState? = nil
        for (i, r) in regimes.enumerated() {
            guard let base = i == 0 ? base0 : mandatory(r) else { continue }
            let x: [Double]
            if exact {
                let model = makeModel(r, base: base)
                var search = Decomposed(model, budget: Broker.exactWorkBudget, targetGap: Broker.exactTargetGap)
                guard let res = search.solve() else { continue }
                x = res.x
                bound = max(bound, res.bound)
                complete = complete && search.complete
                nodes += search.nodes
            } else {
                let (st, b) = solveLarge(r, base: base)
                x = st.x
                finalState = st
                bound = max(bound, b)
                complete = false
            }
            let v = decisionObjective(x)
            if best == nil || v > best!.value + 1e-9 * max(1, abs(best!.value)) { best = (x, v, r) }
        }
        guard let best else { return infeasiblePlan() }
        return makePlan(best.x, regime: best.regime, bound: max(bound, best.value), exact: exact, complete: complete, nodes: nodes, keep: finalState)
    }

    /// Value of a start block's kW above the plan's price (the forecast start rule), $/h: the
    /// objective the search maximises is the plan's objective minus these.
    func startSurcharge(_ x: [Double]) -> Double {
        guard anyStartSurcharge else { return 0 }
        var s = 0.0
        for d in 0..<nD where status[d] == .free && minStable[d] > 0 && x[d] > eps && startPrice[d] > price {
            s += (startPrice[d] - price) * plant.rootMult[d] * minStable[d] / 1000
        }
        return s
    }

    /// The objective the search maximises: the plan's objective, with each start block charged
    /// at its start price (the same as the objective without a price forecast).
    func decisionObjective(_ x: [Double]) -> Double { objective(x).total - startSurcharge(x) }

    /// The objective on one side of a paid-reduction baseline (the regime's price on the whole
    /// import, plus its constant): never above the plan's objective, equal on that side.
    func regimeValue(_ x: [Double], _ r: Regime) -> Double {
        let o = objective(x)
        var site = fixedSub[0]
        for d in 0..<nD { site += x[d] * plant.rootMult[d] }
        return o.mining + o.inference + o.penalty - r.price * site / 1000 + r.constant
    }

    /// The search's view of one regime: pieces of constant value per device above its threshold.
    func makeModel(_ r: Regime, base: PassState) -> Model {
        var cls = [SearchClass](repeating: .fixed, count: nD)
        var ms = [Double](repeating: 0, count: nD)
        var fVal = [Double](repeating: 0, count: nD)
        var fRest = [Double](repeating: 0, count: nD)
        var pStart = [Int](repeating: 0, count: nD + 1)
        var pa: [Double] = []
        var pb: [Double] = []
        var pv: [Double] = []
        var pr: [Bool] = []
        var binaries: [Int32] = []
        pa.reserveCapacity(nD * 2)
        pb.reserveCapacity(nD * 2)
        pv.reserveCapacity(nD * 2)
        pr.reserveCapacity(nD * 2)
        let rootMult = plant.rootMult
        for d in 0..<nD {
            pStart[d] = pa.count
            let st = status[d]
            guard st == .free || st == .forcedOn else { continue }
            let from = st == .free ? 0.0 : lo[d]
            let top = hi[d]
            if top <= from + eps { continue }
            let c = servedCommit(d)
            let sd = rampBase[d]
            let cost = r.price * rootMult[d]
            var start = from
            if st == .free && minStable[d] > 0 {
                let m = minStable[d]
                cls[d] = .binary
                ms[d] = m
                binaries.append(Int32(d))
                // Per-kW values are computed from the rates, not from integrals, so that equal
                // values are equal to the last bit (greedy's ties then fall to the id order).
                let startCost = (startPrice[d] + r.extra) * rootMult[d]
                let gross: Double
                if c <= 0 {
                    gross = value[d]
                } else if c >= m {
                    gross = rate[d] + pen[d]
                } else {
                    gross = (c * (rate[d] + pen[d]) + (m - c) * value[d]) / m
                }
                fVal[d] = gross - startCost
                fRest[d] = max(0, m - sd) / m
                start = m
            } else {
                cls[d] = .continuous
            }
            // Pieces [start, top] split where the value (commitment) or the restore use (ramp base) changes.
            guard top > start + eps else { continue }
            var cuts = [start]
            for v in [c, sd].sorted() where v > start + eps && v < top - eps && v > cuts.last! + eps { cuts.append(v) }
            cuts.append(top)
            for k in 0..<(cuts.count - 1) {
                let a = cuts[k]
                let b = cuts[k + 1]
                pa.append(a)
                pb.append(b)
                // Pieces are cut at the commitment: each is all committed or all above it.
                pv.append((c > 0 && b <= c + eps ? rate[d] + pen[d] : value[d]) - cost)
                pr.append(a >= sd - eps)
            }
        }
        pStart[nD] = pa.count
        // The relaxation's multiplier at each node: the smallest any device below it sees there.
        var mu = [Double](repeating: .infinity, count: nN)
        for e in plant.nodePath where e.mult < mu[Int(e.node)] { mu[Int(e.node)] = e.mult }
        var uniform = true
        let boundPath = plant.nodePath.map { e -> PathEntry in
            let m = mu[Int(e.node)]
            if abs(m - e.mult) > 1e-12 * e.mult { uniform = false }
            return PathEntry(node: e.node, inv: 1 / m, mult: m)
        }
        return Model(
            nD: nD, nN: nN, restoreLeft: restoreRate.isFinite ? base.restoreLeft : .infinity,
            c0: regimeValue(base.x, r), resid0: base.residual, x0: base.x, cls: cls, s: rampBase, ms: ms, fVal: fVal,
            fRest: fRest, pStart: pStart, pa: pa, pb: pb, pv: pv, pr: pr, binaries: binaries,
            k0: devConst.map(\.k0), k1: devConst.map(\.k1), path: plant.nodePath, boundPath: boundPath,
            byRank: plant.byRank, uniformMultipliers: uniform, nodeParent: plant.nodeParent)
    }

    /// Pass state after the mandatory allocation (pinned draw and forced-on minimum), or nil if
    /// that alone exceeds a cap.
    func mandatory(_ r: Regime) -> PassState? {
        var residual = effCap
        residual[0] = r.rootCap
        for n in 0..<nN { residual[n] -= fixedSub[n] }
        var x = Array(repeating: 0.0, count: nD)
        var used = 0.0
        for d in 0..<nD where status[d] == .pinned || status[d] == .forcedOn {
            x[d] = lo[d]
            if status[d] == .forcedOn { used += max(0, lo[d] - rampBase[d]) }
            for k in plant.pathStart[d]..<plant.pathStart[d + 1] {
                residual[plant.pathNodes[k]] -= lo[d] * plant.pathMult[k]
            }
        }
        for n in 0..<nN where residual[n] < -1e-6 { return nil }
        return PassState(
            x: x, residual: residual, restoreLeft: max(0, restoreRate - used), restoreUsed: used,
            admitted: status.map { $0 == .forcedOn || $0 == .pinned },
            saturated: Array(repeating: false, count: nD), rejectedBy: Array(repeating: -1, count: nD),
            limitedBy: Array(repeating: -1, count: nD), nodeHits: Array(repeating: 0, count: nN), restoreHit: false,
            total: 0)
    }

    /// Blocks of constant value for every device that may run, keyed by net value ($/MWh)
    /// minus `lambda` on the part that uses the restore budget.
    func buildItems(_ r: Regime, lambda: Double) -> Items {
        var start = [Int](repeating: 0, count: nD)
        var end = [Int](repeating: 0, count: nD)
        var device: [Int32] = []
        var av: [Double] = []
        var bv: [Double] = []
        var keyv: [Double] = []
        var firstv: [Bool] = []
        device.reserveCapacity(nD * 2)
        av.reserveCapacity(nD * 2)
        bv.reserveCapacity(nD * 2)
        keyv.reserveCapacity(nD * 2)
        firstv.reserveCapacity(nD * 2)
        let extra = r.price - price  // paid-reduction rate in the below-baseline regime
        let rootMult = plant.rootMult
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 6) { pts in
            // Devices in id order, so that item index order is the tie-break order.
            for d in plant.byRank {
                start[d] = device.count
                defer { end[d] = device.count }
                let st = status[d]
                guard st == .free || st == .forcedOn else { continue }
                let isFree = st == .free
                let from = isFree ? 0.0 : lo[d]
                let top = hi[d]
                if top <= from + eps { continue }
                let ms = isFree ? minStable[d] : lo[d]
                let c = servedCommit(d)
                let s = rampBase[d]
                let cost = r.price * rootMult[d]
                let startCost = (startPrice[d] + extra) * rootMult[d]
                // Breakpoints in [from, top], sorted by insertion (at most 5).
                pts[0] = from
                var n = 1
                for q in 0..<3 {
                    let v = q == 0 ? ms : (q == 1 ? c : s)
                    guard v > from + eps && v < top - eps else { continue }
                    var j = n
                    while j > 0 && pts[j - 1] > v {
                        pts[j] = pts[j - 1]
                        j -= 1
                    }
                    pts[j] = v
                    n += 1
                }
                pts[n] = top
                n += 1
                var prevKey = Double.infinity
                var lastEnd = from
                for k in 0..<(n - 1) {
                    let a = pts[k]
                    let b = pts[k + 1]
                    if b - a <= eps { continue }
                    // For a free min-stable device, [0, ms] is one block: it is taken whole or not at all.
                    if isFree && ms > 0 && b < ms - eps { continue }
                    let lower = lastEnd
                    let gross = revenueIntegral(d, lower, b)
                    let restoreUse = max(0, b - max(lower, s))
                    let usePrice = (lower < eps && isFree) ? startCost : cost
                    // Penalty avoided counts as value for the committed part.
                    let avoided = c > 0 ? pen[d] * max(0, min(b, c) - min(lower, c)) / 1000 : 0
                    var key = ((gross + avoided) * 1000 - usePrice * (b - lower) - lambda * restoreUse) / (b - lower)
                    key = min(key, prevKey)
                    prevKey = key
                    device.append(Int32(d))
                    av.append(lower)
                    bv.append(b)
                    keyv.append(key)
                    firstv.append(lower < eps && isFree && ms > 0)
                    lastEnd = b
                }
            }
        }
        var it = Items()
        it.start = start
        it.end = end
        it.order = radixSortDescending(keyv)
        it.sortedDev = it.order.map { device[Int($0)] }
        it.sortedB = it.order.map { bv[Int($0)] }
        it.sortedFirst = it.order.map { firstv[Int($0)] }
        it.device = device
        it.a = av
        it.b = bv
        it.key = keyv
        it.first = firstv
        return it
    }

    func revenueIntegral(_ d: Int, _ a: Double, _ b: Double) -> Double { revenue(d, b) - revenue(d, a) }

    /// One greedy pass over the items in order (boosted devices first), skipping forbidden devices.
    func pass(
        _ it: Items, base: PassState, forbidden: [Bool], boost: [Int], enforceRestore: Bool, relaxMinStable: Bool = false
    ) -> PassState {
        var w = PassWork(base, plant: plant, devConst: devConst, forbidden: forbidden, eps: eps)
        if !enforceRestore { w.restoreLeft = .infinity }
        // Boosted devices get their min-stable block first; the rest follows in value order.
        for d in boost where it.start[d] < it.end[d] && it.key[it.start[d]] > 0 {
            let i = it.start[d]
            w.take(d, it.b[i], it.first[i])
        }
        it.sortedDev.withUnsafeBufferPointer { dev in
            it.sortedB.withUnsafeBufferPointer { bs in
                it.sortedFirst.withUnsafeBufferPointer { first in
                    if relaxMinStable {
                        for i in 0..<dev.count { w.take(Int(dev[i]), bs[i], false) }
                    } else {
                        for i in 0..<dev.count { w.take(Int(dev[i]), bs[i], first[i]) }
                    }
                }
            }
        }
        var st = w.finish()
        st.total = objective(st.x).total
        return st
    }

    /// The budgeted search for sites above `exactSearchMaxDevices`: greedy (with the restore
    /// multiplier) plus local moves over whole start blocks, then a last greedy pass that takes any
    /// piece still worth taking. Returns the plan and the relaxation's bound on it.
    func solveLarge(_ r: Regime, base: PassState) -> (PassState, Double) {
        let none = Array(repeating: false, count: nD)
        let plain = buildItems(r, lambda: 0)
        let first = pass(plain, base: base, forbidden: none, boost: [], enforceRestore: true)
        // Greedy with the start blocks relaxed is the relaxation's optimum when nothing else couples
        // the devices (no restore limit reached, no start surcharge, one multiplier per node), and its
        // objective bounds every plan (the plan's objective is concave on each start block).
        let cheap = plant.uniformMultipliers && startSurcharge(hi) == 0
        if !(first.restoreHit && restoreRate.isFinite) {
            let relaxed = pass(plain, base: base, forbidden: none, boost: [], enforceRestore: true, relaxMinStable: true)
            let bound = cheap && !relaxed.restoreHit ? relaxed.total : Search(makeModel(r, base: base)).lagrangeBound()
            // Within 0.01 %: nothing worth a local search.
            if bound - first.total <= 1e-4 * max(1, abs(first.total)) { return (first, bound) }
            let better = improve(base: base, start: first) { f, b in
                pass(plain, base: base, forbidden: f, boost: b, enforceRestore: true)
            }
            return (topUp(better, plain), bound)
        }
        let (best, lambdaItems) = restoreSearch(r, plain: plain, base: base, forbidden: none, boost: [])
        // Local moves use the two fixed orders (multiplier and plain value).
        let better = improve(base: base, start: best) { f, b in
            let p1 = pass(lambdaItems, base: base, forbidden: f, boost: b, enforceRestore: true)
            let p2 = pass(plain, base: base, forbidden: f, boost: b, enforceRestore: true)
            return p2.total > p1.total ? p2 : p1
        }
        return (topUp(better, plain), Search(makeModel(r, base: base)).lagrangeBound(iterations: nD > 2000 ? 10 : 24))
    }

    /// Greedy again from a plan: any piece still worth taking that fits is taken (a start block
    /// only whole), so no reason can say "does not fit" of something that fits.
    func topUp(_ st: PassState, _ items: Items) -> PassState {
        var base = st
        for d in 0..<nD {
            base.saturated[d] = false
            base.rejectedBy[d] = -1
            base.admitted[d] = base.admitted[d] || st.x[d] > eps
        }
        let p = pass(items, base: base, forbidden: Array(repeating: false, count: nD), boost: [], enforceRestore: true)
        return p.total >= st.total ? p : st
    }

    /// The site restore budget couples every upward move. Bisection on its multiplier gives two
    /// relaxed plans around the budget; the best of (plain greedy, greedy in either multiplier
    /// order with the budget enforced, the convex combination that spends the budget exactly)
    /// is kept. Returns the plan and the item order of the multiplier found.
    func restoreSearch(_ r: Regime, plain: Items, base: PassState, forbidden: [Bool], boost: [Int]) -> (PassState, Items) {
        var best = pass(plain, base: base, forbidden: forbidden, boost: boost, enforceRestore: true)
        guard best.restoreHit else { return (best, plain) }
        var lowP = pass(plain, base: base, forbidden: forbidden, boost: boost, enforceRestore: false)
        guard lowP.restoreUsed > restoreRate + eps else { return (best, plain) }
        var lowL = 0.0
        var highL = 1.0
        var lowItems = plain
        var highItems = buildItems(r, lambda: highL)
        var highP = pass(highItems, base: base, forbidden: forbidden, boost: boost, enforceRestore: false)
        var grow = 0
        while highP.restoreUsed > restoreRate + eps && grow < 40 {
            lowL = highL
            lowItems = highItems
            lowP = highP
            highL *= 4
            highItems = buildItems(r, lambda: highL)
            highP = pass(highItems, base: base, forbidden: forbidden, boost: boost, enforceRestore: false)
            grow += 1
        }
        for _ in 0..<(nD > 2000 ? 14 : 30) {
            let mid = (lowL + highL) / 2
            let midItems = buildItems(r, lambda: mid)
            let p = pass(midItems, base: base, forbidden: forbidden, boost: boost, enforceRestore: false)
            if p.restoreUsed > restoreRate + eps {
                lowL = mid
                lowItems = midItems
                lowP = p
            } else {
                highL = mid
                highItems = midItems
                highP = p
            }
        }
        var items = plain
        for cand in [lowItems, highItems] {
            let p = pass(cand, base: base, forbidden: forbidden, boost: boost, enforceRestore: true)
            if p.total > best.total + 1e-12 {
                best = p
                items = cand
            }
        }
        if let mix = combine(lowP, highP, base: base), mix.total > best.total + 1e-12 {
            best = mix
            items = highItems
        }
        return (best, items)
    }

    /// θ·low + (1-θ)·high with θ chosen so that the restore budget is spent exactly. Caps and ramps
    /// hold by convexity; min-stable must be checked. Nil if some device would sit below min-stable.
    func combine(_ low: PassState, _ high: PassState, base: PassState) -> PassState? {
        let span = low.restoreUsed - high.restoreUsed
        guard span > eps else { return nil }
        let theta = max(0, min(1, (restoreRate - high.restoreUsed) / span))
        var st = high
        for d in 0..<nD {
            let x = theta * low.x[d] + (1 - theta) * high.x[d]
            if status[d] == .free && minStable[d] > 0 && x > eps && x < minStable[d] - eps { return nil }
            if x < high.x[d] - eps || x < low.x[d] - eps { st.limitedBy[d] = -2 }
            if x > eps { st.rejectedBy[d] = -1 }
            st.x[d] = x
        }
        var residual = base.residual
        var used = 0.0
        for d in 0..<nD {
            if status[d] == .free || status[d] == .forcedOn {
                used += max(0, st.x[d] - max(rampBase[d], status[d] == .forcedOn ? lo[d] : 0))
            }
            let extra = st.x[d] - base.x[d]
            if extra != 0 {
                for k in plant.pathStart[d]..<plant.pathStart[d + 1] {
                    residual[plant.pathNodes[k]] -= extra * plant.pathMult[k]
                }
            }
        }
        st.residual = residual
        st.restoreUsed = base.restoreUsed + used
        st.restoreLeft = max(0, restoreRate - st.restoreUsed)
        st.restoreHit = true
        st.total = objective(st.x).total
        return st
    }

    /// Local search over min-stable on/off choices.
    func improve(base: PassState, start: PassState, _ evaluate: ([Bool], [Int]) -> PassState) -> PassState {
        var best = start
        var forbidden = Array(repeating: false, count: nD)
        var boost: [Int] = []
        let small = nD <= 16
        // Budget: exhaustive for small sites, a few moves for large ones (each move is a full pass).
        let perKind = small ? nD : (nD > 2000 ? 1 : 6)
        let rounds = small ? 2 * nD + 4 : (nD > 2000 ? 1 : 3)
        for _ in 0..<rounds {
            // Contested subtrees: nodes that turned something away, or the restore budget.
            var hot = Array(repeating: false, count: nN)
            var anyHot = best.restoreHit
            for n in 0..<nN where best.nodeHits[n] > 0 {
                hot[n] = true
                anyHot = true
            }
            if !anyHot { break }
            func contested(_ d: Int) -> Bool {
                if best.restoreHit && best.x[d] > rampBase[d] + eps { return true }
                for k in plant.pathStart[d]..<plant.pathStart[d + 1] where hot[plant.pathNodes[k]] { return true }
                return false
            }
            var drops: [(Double, Int)] = []
            var adds: [(Double, Int)] = []
            for d in 0..<nD where status[d] == .free && minStable[d] > 0 && !forbidden[d] {
                let k = value[d] + (servedCommit(d) > 0 ? rate[d] + pen[d] - value[d] : 0) - price * plant.rootMult[d]
                guard k > 0 else { continue }
                if best.x[d] > eps {
                    if contested(d) {
                        drops.append((k, d))
                        // Taking its min-stable block first can still change what fits around it.
                        if small && !boost.contains(d) { adds.append((k, d)) }
                    }
                } else if (best.rejectedBy[d] != -1 || contested(d)) && !boost.contains(d) {
                    adds.append((k, d))
                    // A device turned away by the restore budget still shapes the multiplier.
                    if best.restoreHit && small { drops.append((k, d)) }
                }
            }
            var undo: [Int] = []
            for d in 0..<nD where forbidden[d] { undo.append(d) }
            let rank = plant.idRank
            if !small {
                // Large sites: only moves whose direct value could reach 0.01% of the objective
                // are worth a full pass each (a block's net value × its size).
                let floor = 1e-4 * max(1, abs(best.total))
                let topKey = adds.map(\.0).max() ?? 0
                adds = adds.filter { $0.0 * hi[$0.1] / 1000 >= floor }
                drops = drops.filter { topKey * best.x[$0.1] / 1000 >= floor }
            }
            drops.sort { $0.0 != $1.0 ? $0.0 < $1.0 : rank[$0.1] < rank[$1.1] }
            adds.sort { $0.0 != $1.0 ? $0.0 > $1.0 : rank[$0.1] < rank[$1.1] }
            var bestMove: (PassState, Int, Bool)? = nil
            var bestTotal = best.total + 1e-9 * max(1, abs(best.total))
            for (_, d) in drops.prefix(perKind) {
                forbidden[d] = true
                let p = evaluate(forbidden, boost)
                forbidden[d] = false
                if p.total > bestTotal {
                    bestTotal = p.total
                    bestMove = (p, d, true)
                }
            }
            for (_, d) in adds.prefix(perKind) {
                let p = evaluate(forbidden, boost + [d])
                if p.total > bestTotal {
                    bestTotal = p.total
                    bestMove = (p, d, false)
                }
            }
            var undoMove: (PassState, Int)? = nil
            for d in undo.prefix(perKind) {
                forbidden[d] = false
                let p = evaluate(forbidden, boost)
                forbidden[d] = true
                if p.total > bestTotal {
                    bestTotal = p.total
                    undoMove = (p, d)
                }
            }
            if let (p, d) = undoMove {
                forbidden[d] = false
                best = p
                continue
            }
            guard let (p, d, isDrop) = bestMove else { break }
            if isDrop { forbidden[d] = true } else { boost.append(d) }
            best = p
        }
        for d in 0..<nD where forbidden[d] && best.x[d] <= eps { best.rejectedBy[d] = -3 }
        return best
    }

    // MARK: output

    func nodeLoads(_ x: [Double]) -> [Double] {
        var load = fixedSub
        for d in 0..<nD where x[d] != 0 {
            for k in plant.pathStart[d]..<plant.pathStart[d + 1] {
                load[plant.pathNodes[k]] += x[d] * plant.pathMult[k]
            }
        }
        return load
    }

    func infeasiblePlan() -> DispatchPlan {
        var x = Array(repeating: 0.0, count: nD)
        for d in 0..<nD where status[d] == .pinned || status[d] == .forcedOn { x[d] = lo[d] }
        let load = nodeLoads(x)
        var worst = 0
        var worstOver = -Double.infinity
        var binding: [String] = []
        for n in 0..<nN where load[n] > effCap[n] + 1e-6 {
            binding.append("\(capLabel(n)) exceeded (load \(Fmt.mw(load[n])))")
            if load[n] - effCap[n] > worstOver {
                worstOver = load[n] - effCap[n]
                worst = n
            }
        }
        var mustOn = 0.0
        var pinned = 0.0
        for d in 0..<nD {
            let onPath = (plant.pathStart[d]..<plant.pathStart[d + 1]).contains { plant.pathNodes[$0] == worst }
            guard onPath else { continue }
            if status[d] == .forcedOn { mustOn += lo[d] } else if status[d] == .pinned { pinned += lo[d] }
        }
        var parts = ["uncontrollable load \(Fmt.mw(fixedSub[worst]))"]
        if pinned > 0 { parts.append("unavailable devices \(Fmt.mw(pinned))") }
        if mustOn > 0 { parts.append("must-stay-on minimum \(Fmt.mw(mustOn))") }
        let why =
            "\(capLabel(worst)) cannot be met: " + parts.joined(separator: " + ") + " = \(Fmt.mw(load[worst]))"
        var reasons = Array(repeating: "", count: nD)
        for d in 0..<nD {
            switch status[d] {
            case .pinned:
                reasons[d] = pinnedText(d)
            case .forcedOn:
                reasons[d] =
                    "infeasible, held at min-stable \(Fmt.power(x[d])): minimum on time, \(Fmt.seconds(plant.devices[d].minOnS - snap.devices[d].stateForS)) left"
            default:
                reasons[d] = "infeasible, shed to 0 kW: \(why)"
            }
        }
        return DispatchPlan(
            setpointsKw: x, commanded: status.map { $0 != .pinned }, objective: objective(x),
            binding: binding, feasible: false, infeasibleReason: why, nodeLoadKw: load, nodeCapKw: effCap,
            miningCurtailed: curtailNow,
            valueUsdPerMWh: (0..<nD).map { servedCommit($0) > 0 ? rate[$0] : value[$0] }, boundUsdPerH: .nan,
            gapBoundUsdPerH: .nan, exactSearch: false, searchComplete: false, optimality: "no feasible plan", searchNodes: 0,
            strike: strikeStatus(), dwell: dwellHolds(), explainer: .fixed(reasons), kept: nil)
    }
}

/// Renders reasons on demand from the facts the dispatch kept.
enum Explainer: Sendable {
    case engine(Engine, Facts)
    case fixed([String])

    func reason(_ d: Int, _ x: Double) -> String {
        switch self {
        case .engine(let e, let f): return e.reason(d, x, f)
        case .fixed(let r): return r[d]
        }
    }
}

/// The mutable state of one greedy pass, with the constant topology it needs.
struct DevConst: Sendable {
    var k0: Int32
    var k1: Int32
    var rampBase: Double
    var minStable: Double
}

struct DevMut {
    var x: Double
    var rejectedBy: Int32
    var limitedBy: Int32
    var saturated: Bool
    var admitted: Bool
    var forbidden: Bool
}

struct PassWork {
    // Mutable state in raw buffers, one record per device: one cache line per visit and no
    // copy-on-write checks in the hot loop.
    let dev: UnsafeMutableBufferPointer<DevMut>
    let residual: UnsafeMutableBufferPointer<Double>
    let nodeHits: UnsafeMutableBufferPointer<Int32>
    var restoreLeft: Double
    var restoreUsed: Double
    var restoreHit: Bool
    let path: [PathEntry]
    let devConst: [DevConst]
    let eps: Double

    init(_ st: PassState, plant: Plant, devConst: [DevConst], forbidden: [Bool], eps: Double) {
        let n = st.x.count
        dev = .allocate(capacity: n)
        for d in 0..<n {
            (dev.baseAddress! + d).initialize(
                to: DevMut(
                    x: st.x[d], rejectedBy: st.rejectedBy[d], limitedBy: st.limitedBy[d], saturated: st.saturated[d],
                    admitted: st.admitted[d], forbidden: forbidden[d]))
        }
        residual = .allocate(capacity: st.residual.count)
        _ = residual.initialize(from: st.residual)
        nodeHits = .allocate(capacity: st.nodeHits.count)
        _ = nodeHits.initialize(from: st.nodeHits)
        restoreLeft = st.restoreLeft
        restoreUsed = st.restoreUsed
        restoreHit = st.restoreHit
        path = plant.nodePath
        self.devConst = devConst
        self.eps = eps
    }

    /// The result as a PassState; frees the buffers.
    func finish() -> PassState {
        let st = PassState(
            x: dev.map(\.x), residual: Array(residual), restoreLeft: restoreLeft, restoreUsed: restoreUsed,
            admitted: dev.map(\.admitted), saturated: dev.map(\.saturated), rejectedBy: dev.map(\.rejectedBy),
            limitedBy: dev.map(\.limitedBy), nodeHits: Array(nodeHits), restoreHit: restoreHit, total: 0)
        dev.deallocate()
        residual.deallocate()
        nodeHits.deallocate()
        return st
    }

    @inline(__always)
    mutating func hit(_ limNode: Int32) {
        if limNode >= 0 { nodeHits[Int(limNode)] += 1 } else if limNode == -2 { restoreHit = true }
    }

    /// Give device `d` as much as fits of its block ending at `b` kW.
    @inline(__always)
    mutating func take(_ d: Int, _ b: Double, _ first: Bool) {
        var m = dev[d]
        if m.forbidden || m.saturated || m.rejectedBy != -1 { return }
        let x0 = m.x
        if b <= x0 + eps { return }
        let c = devConst[d]
        var avail = b - x0
        var limNode: Int32 = -1
        let k0 = Int(c.k0)
        let k1 = Int(c.k1)
        path.withUnsafeBufferPointer { path in
            for k in k0..<k1 {
                let e = path[k]
                let room = max(0, residual[Int(e.node)]) * e.inv
                // The limiter named is the first clearly tighter one: rounding noise (which depends
                // on summation order) must not change which constraint a reason names.
                if room < avail - 1e-6 {
                    avail = room
                    limNode = e.node
                } else if room < avail {
                    avail = room
                }
            }
        }
        let s = c.rampBase
        let restoreRoom = max(0, s - x0) + restoreLeft
        if restoreRoom < avail - 1e-6 {
            avail = restoreRoom
            limNode = -2
        } else if restoreRoom < avail {
            avail = restoreRoom
        }
        if first && !m.admitted {
            if avail < c.minStable - eps {
                m.rejectedBy = limNode == -1 ? -4 : limNode  // -4: a near-tie, still rejected
                dev[d] = m
                hit(limNode)
                return
            }
            m.admitted = true
        }
        if avail <= eps {
            m.saturated = true
            m.limitedBy = limNode
            dev[d] = m
            hit(limNode)
            return
        }
        let newX = x0 + avail
        let use = max(0, newX - max(x0, s))
        restoreLeft -= use
        restoreUsed += use
        m.x = newX
        path.withUnsafeBufferPointer { path in
            for k in k0..<k1 {
                let e = path[k]
                residual[Int(e.node)] -= avail * e.mult
            }
        }
        if avail < b - x0 - eps {
            m.saturated = true
            m.limitedBy = limNode
            hit(limNode)
        }
        dev[d] = m
    }
}

/// Indices of the positive keys, by key descending; equal keys keep index order (stable LSD radix
/// sort on the IEEE bit pattern, which orders positive doubles like integers).
func radixSortDescending(_ keys: [Double]) -> [Int32] {
    var idx: [Int32] = []
    var bits: [UInt64] = []
    idx.reserveCapacity(keys.count)
    bits.reserveCapacity(keys.count)
    for i in keys.indices where keys[i] > 0 {
        idx.append(Int32(i))
        bits.append(~keys[i].bitPattern)  // inverted: ascending order of ~bits is descending key
    }
    let n = idx.count
    if n < 2 { return idx }
    var idx2 = [Int32](repeating: 0, count: n)
    var bits2 = [UInt64](repeating: 0, count: n)
    var count = [Int](repeating: 0, count: 2049)
    // The top 44 bits of the pattern (relative precision 2^-32) are plenty to order $/MWh values;
    // keys equal to that precision keep their index (id) order.
    var shift: UInt64 = 20
    while shift < 64 {
        for k in 0..<2049 { count[k] = 0 }
        var allSame = true
        let first = (bits[0] >> shift) & 0x7FF
        for i in 0..<n {
            let digit = (bits[i] >> shift) & 0x7FF
            count[Int(digit) + 1] += 1
            if digit != first { allSame = false }
        }
        if !allSame {
            for k in 1..<2049 { count[k] += count[k - 1] }
            for i in 0..<n {
                let digit = Int((bits[i] >> shift) & 0x7FF)
                let pos = count[digit]
                count[digit] = pos + 1
                idx2[pos] = idx[i]
                bits2[pos] = bits[i]
            }
            swap(&idx, &idx2)
            swap(&bits, &bits2)
        }
        shift += 11
    }
    return idx
}
