// Pure dispatch: how many kW each container gets this tick.
//
// The method (see docs/dispatch.md for the long form):
//  1. Per device, turn limits, dwell, ramp, stale data and the strike rule into an allowed range
//     and an on/off status: pinned (unavailable), forced on (inside min-on dwell), forced off,
//     or free.
//  2. Split each device's allowed range into blocks of constant value in $/MWh (contract
//     commitment at rate + penalty, the rest at spot or hashprice value), net of the energy price
//     times the kW of site import each device kW causes (auxiliary load such as cooling included).
//  3. Greedy by net value under the residual caps of the laminar capacity tree. For continuous
//     blocks this is optimal (the caps form a polymatroid). A free device with a min-stable block
//     is admitted only when its whole min-stable block fits, as one piece with its first block.
//  4. The site restore rate couples all upward moves: a Lagrange multiplier on it (found by
//     bisection) reorders blocks so that scarce ramp-up goes where it earns most.
//  5. Local improvement for min-stable blocks: try turning off admitted blocks that crowd out
//     others, and try admitting rejected blocks first; keep any change that raises the objective.
//  6. A paid-reduction DR event makes the energy cost concave; both sides of the baseline are
//     solved and the better plan kept.
// Ties are broken by device id, so the same problem always gives the same plan.

public enum Broker {
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

struct Regime: Sendable {
    var price: Double
    var rootCap: Double
    var label: String?
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
    var curtailNow = false
    var restoreRate = Double.infinity
    var strikeWhy = ""
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
            if !snap.miningCurtailed {
                curtailNow = price >= s.strikeUsdPerMWh
                strikeWhy = "curtailed: price \(Fmt.price(price)) ≥ strike \(Fmt.price(s.strikeUsdPerMWh)) $/MWh"
            } else {
                let release = s.strikeUsdPerMWh - s.hysteresisUsdPerMWh
                if price >= release {
                    curtailNow = true
                    strikeWhy =
                        "curtailed: strike hysteresis, price \(Fmt.price(price)) ≥ \(Fmt.price(release)) $/MWh (strike \(Fmt.price(s.strikeUsdPerMWh)) − \(Fmt.price(s.hysteresisUsdPerMWh)))"
                } else if snap.miningCurtailedForS < s.minOffS {
                    curtailNow = true
                    strikeWhy =
                        "curtailed: strike minimum off time, \(Fmt.seconds(s.minOffS - snap.miningCurtailedForS)) left (price \(Fmt.price(price)) $/MWh)"
                } else {
                    curtailNow = false
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
                    if forecast && !on && minOn[d] > 0 {
                        startPrice[d] = max(price, windowAverage(minOn[d]))
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
        let normal = Regime(price: price, rootCap: effCap[0], label: nil)
        guard let base = mandatory(normal) else { return infeasiblePlan() }
        var best = solve(normal, base: base)
        if let pr = sig.paidReduction, pr.usdPerMWh > 0 {
            let below = Regime(
                price: price + pr.usdPerMWh, rootCap: min(effCap[0], pr.baselineKw),
                label: "\(pr.label) baseline \(Fmt.mw(pr.baselineKw))")
            if let b2 = mandatory(below) {
                let alt = solve(below, base: b2)
                if alt.total > best.total + 1e-9 * max(1, abs(best.total)) { best = alt }
            }
        }
        return makePlan(best)
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

    /// Greedy (with the restore multiplier) plus local improvement, in one regime.
    func solve(_ r: Regime, base: PassState) -> PassState {
        let none = Array(repeating: false, count: nD)
        let plain = buildItems(r, lambda: 0)
        let first = pass(plain, base: base, forbidden: none, boost: [], enforceRestore: true)
        guard first.restoreHit && restoreRate.isFinite else {
            if nD > 16 && sig.paidReduction == nil && sig.priceForecast.isEmpty {
                // Without the restore coupling, greedy with min-stable relaxed is the optimum of the
                // continuous relaxation: an upper bound. If it is within 0.01% there is nothing
                // worth a local search.
                let bound = pass(plain, base: base, forbidden: none, boost: [], enforceRestore: true, relaxMinStable: true)
                if bound.total - first.total <= 1e-4 * max(1, abs(first.total)) { return first }
            }
            return improve(base: base, start: first) { f, b in pass(plain, base: base, forbidden: f, boost: b, enforceRestore: true) }
        }
        let (best, lambdaItems) = restoreSearch(r, plain: plain, base: base, forbidden: none, boost: [])
        if nD <= 16 {
            // Small problems: every local move re-runs the full multiplier search.
            return improve(base: base, start: best) { f, b in
                restoreSearch(r, plain: plain, base: base, forbidden: f, boost: b).0
            }
        }
        // Large problems: local moves use the two fixed orders (multiplier and plain value).
        return improve(base: base, start: best) { f, b in
            let p1 = pass(lambdaItems, base: base, forbidden: f, boost: b, enforceRestore: true)
            let p2 = pass(plain, base: base, forbidden: f, boost: b, enforceRestore: true)
            return p2.total > p1.total ? p2 : p1
        }
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

    func capLabel(_ n: Int) -> String {
        n == 0 ? rootCapLabel : "\(plant.nodes[n].id) cap \(Fmt.mw(plant.nodes[n].capKw)) − margin \(Fmt.mw(plant.safetyMarginKw))"
    }

    func limitText(_ code: Int32, _ st: PassState) -> String {
        if code >= 0 {
            let n = Int(code)
            return "\(capLabel(n)) binding"
        }
        if code == -2 { return "site restore rate \(Fmt.mw(restoreRate))/tick used up" }
        return "no room"
    }

    func valueText(_ d: Int) -> String {
        let cls = plant.isMining[d] ? "mining value" : "inference value"
        return "\(cls) \(Fmt.price(value[d]))"
    }

    func priceText(_ d: Int) -> String {
        let m = plant.rootMult[d]
        if m > 1 + 1e-9 {
            return "price \(Fmt.price(price * m)) (\(Fmt.price(price)) + \(Fmt.price((m - 1) * 100))% auxiliary load)"
        }
        return "price \(Fmt.price(price))"
    }

    func makePlan(_ st: PassState) -> DispatchPlan {
        var x = st.x
        for d in 0..<nD where abs(x[d]) < eps { x[d] = 0 }
        let load = nodeLoads(x)
        var caps = effCap
        var binding: [String] = []
        for n in 0..<nN {
            let tight = load[n] >= effCap[n] - max(0.5, 1e-6 * effCap[n])
            if st.nodeHits[n] > 0 || tight {
                binding.append("\(capLabel(n)) binding (load \(Fmt.mw(load[n])))")
            }
        }
        if let pr = sig.paidReduction, pr.usdPerMWh > 0, abs(load[0] - pr.baselineKw) < 0.5 {
            binding.append("\(pr.label) baseline \(Fmt.mw(pr.baselineKw)) binding (paid \(Fmt.price(pr.usdPerMWh)) $/MWh below it)")
        }
        if st.restoreHit {
            binding.append("site restore rate \(Fmt.mw(restoreRate))/tick binding (ramp-up \(Fmt.mw(st.restoreUsed)))")
        }
        caps[0] = effCap[0]
        return DispatchPlan(
            setpointsKw: x, commanded: status.map { $0 != .pinned }, objective: objective(x),
            binding: binding, feasible: true, infeasibleReason: nil, nodeLoadKw: load, nodeCapKw: caps,
            miningCurtailed: curtailNow,
            valueUsdPerMWh: (0..<nD).map { servedCommit($0) > 0 ? rate[$0] : value[$0] },
            explainer: .engine(self, st))
    }

    func reason(_ d: Int, _ x: Double, _ st: PassState) -> String {
        let spec = plant.devices[d]
        let mining = plant.isMining[d]
        var contract = ""
        if let c = contractLabel[d] {
            contract =
                "contract \(c) (\(Fmt.power(commitKw[d])) committed at \(Fmt.price(rate[d])) $/MWh, penalty \(Fmt.price(pen[d]))): "
            if spotOverContract[d] {
                contract +=
                    "spot \(Fmt.price(value[d])) ≥ rate + penalty \(Fmt.price(rate[d] + pen[d])) $/MWh, selling spot and paying the penalty; "
            }
        }
        let net = value[d] - price * plant.rootMult[d]
        switch status[d] {
        case .pinned:
            return "unavailable: last known draw \(Fmt.power(held[d])) held in the budget; not commanded"
        case .forcedOff:
            let off: String
            switch offWhy[d] {
            case .minOff: off = "off: minimum off time, \(Fmt.seconds(spec.minOffS - snap.devices[d].stateForS)) left"
            case .strike: off = strikeWhy
            case .stale: off = "off: stale data (\(Fmt.seconds(snap.devices[d].dataAgeS)) old), not started"
            case .cannotReachMinStable:
                off = "off: cannot reach min-stable \(Fmt.power(minStable[d])) this tick"
            case .none: off = "off"
            }
            return contract + off
        case .forcedOn:
            if offWhy[d] == .strike {
                let why = strikeWhy
                return contract
                    + "held on at min-stable \(Fmt.power(x)): minimum on time, \(Fmt.seconds(spec.minOnS - snap.devices[d].stateForS)) left; \(why)"
            }
            if x <= lo[d] + eps {
                let why: String
                if st.limitedBy[d] >= 0 || st.limitedBy[d] == -2 {
                    why = limitText(st.limitedBy[d], st)
                } else if net <= 0 && servedCommit(d) <= eps {
                    why = "\(priceText(d)) > \(valueText(d)) $/MWh"
                } else {
                    why = "\(valueText(d)) vs \(priceText(d)) $/MWh"
                }
                return contract
                    + "held on at min-stable \(Fmt.power(x)): minimum on time, \(Fmt.seconds(spec.minOnS - snap.devices[d].stateForS)) left; \(why)"
            }
        case .free:
            break
        }
        if x <= eps {
            if st.rejectedBy[d] == -3 {
                return contract
                    + "off: its min-stable \(Fmt.power(minStable[d])) block would crowd out higher-value load"
            }
            if st.rejectedBy[d] != -1 {
                return contract
                    + "off: min-stable \(Fmt.power(minStable[d])) does not fit (\(limitText(st.rejectedBy[d], st)))"
            }
            if st.limitedBy[d] != -1 { return contract + "off: \(limitText(st.limitedBy[d], st))" }
            let verb = mining ? "curtailed" : "idle"
            if startPrice[d] > price + 1e-9 && net > 0 {
                return contract
                    + "\(verb): forecast price \(Fmt.price(startPrice[d])) over its minimum on time > \(valueText(d)) $/MWh"
            }
            if servedCommit(d) > 0 {
                return contract + "\(verb): \(priceText(d)) > rate \(Fmt.price(rate[d])) + penalty \(Fmt.price(pen[d])) $/MWh"
            }
            return "\(verb): \(priceText(d)) > \(valueText(d)) $/MWh"
        }
        let econ: String
        if servedCommit(d) > 0 && x <= commitKw[d] + eps && net <= 0 {
            econ = "rate + penalty \(Fmt.price(rate[d] + pen[d])) > \(priceText(d)) $/MWh; above it \(valueText(d)) does not pay"
        } else {
            econ = "\(valueText(d)) > \(priceText(d)) $/MWh"
        }
        if x >= spec.maxKw - eps { return contract + "full \(Fmt.power(x)): " + econ }
        if st.limitedBy[d] != -1 {
            return contract
                + "\(Fmt.power(x)) of \(Fmt.power(spec.maxKw)): \(limitText(st.limitedBy[d], st)); " + econ
        }
        if stale[d] && x >= hi[d] - eps {
            return contract
                + "held at \(Fmt.power(x)): stale data (\(Fmt.seconds(snap.devices[d].dataAgeS)) old), no ramp-up; " + econ
        }
        if rampLimited[d] && x >= hi[d] - eps {
            let from = rampBase[d]
            return contract
                + "ramping \(Fmt.power(from)) → \(Fmt.power(x)) (ramp \(Fmt.price(spec.rampKwPerS)) kW/s × \(Fmt.seconds(plant.tickSeconds))); "
                + econ
        }
        if servedCommit(d) > 0 && abs(x - commitKw[d]) <= eps { return contract + "at its commitment: " + econ }
        return contract + "\(Fmt.power(x)): " + econ
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
                reasons[d] = "unavailable: last known draw \(Fmt.power(held[d])) held in the budget; not commanded"
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
            valueUsdPerMWh: (0..<nD).map { servedCommit($0) > 0 ? rate[$0] : value[$0] }, explainer: .fixed(reasons))
    }
}

/// Renders reasons on demand from the facts the dispatch kept.
enum Explainer: Sendable {
    case engine(Engine, PassState)
    case fixed([String])

    func reason(_ d: Int, _ x: Double) -> String {
        switch self {
        case .engine(let e, let st): return e.reason(d, x, st)
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
