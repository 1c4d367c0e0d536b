import Broker
import TestSupport

/// An independent statement of the dispatch rules (docs/dispatch.md), written without reusing any
/// Broker internals: allowed ranges, feasibility checks, the objective, and an exact solver
/// (LP-based branch and bound over on/off of min-stable devices, a bounded-variable simplex for
/// each LP). It shares no code, and no theory, with the Broker's greedy: every LP is solved as an
/// LP, and a node is closed only when its LP optimum is a plan that keeps every rule.
struct Oracle {
    nonisolated(unsafe) static var debug = false
    enum Kind { case pinned, forcedOn, forcedOff, free }

    let inst: Instance
    let nodes: [NodeSpec]
    var parent: [Int] = []
    var kind: [Kind] = []
    var lo: [Double] = []
    var hi: [Double] = []
    var base: [Double] = []  // ramp base
    var held: [Double] = []
    var value: [Double] = []
    var commit: [Double] = []
    var rate: [Double] = []
    var pen: [Double] = []
    /// $/h of penalty paid whatever the plan (contracts deliberately not served).
    var fullPenalty: [Double] = []
    var fixedSub: [Double] = []
    var cap: [Double] = []
    var price: Double = 0
    var curtailed = false
    /// mult[d][n]: kW counted at node n per kW of device d (0 when n is not an ancestor).
    var mult: [[Double]] = []
    /// The forecast start rule (docs/dispatch.md): a device that is off, has a min-stable power and
    /// a minimum on time pays for its start block at the worse of the price now and the forecast
    /// average over its minimum on time. `surcharge[d]` is what that adds, $/h, when it starts.
    var surcharge: [Double] = []

    init(_ inst: Instance) {
        self.inst = inst
        nodes = inst.nodes
        let ids = nodes.map(\.id)
        parent = nodes.map { n in n.parentID.map { ids.firstIndex(of: $0)! } ?? -1 }
        let sig = inst.signals
        price = sig.energyPriceUsdPerMWh + sig.priceAdders.map(\.usdPerMWh).reduce(0, +)
        if let s = sig.strike {
            if !inst.miningCurtailed {
                curtailed = price >= s.strikeUsdPerMWh
            } else {
                curtailed = !(price < s.strikeUsdPerMWh - s.hysteresisUsdPerMWh && inst.miningCurtailedFor >= s.minOffS)
            }
        }
        for (d, spec) in inst.devices.enumerated() {
            let st = inst.states[d]
            var m = Array(repeating: 0.0, count: nodes.count)
            var n = ids.firstIndex(of: spec.nodeID)!
            var acc = 1.0
            while n >= 0 {
                acc += nodes[n].auxFraction
                m[n] = acc
                n = parent[n]
            }
            mult.append(m)
            // value
            var v = 0.0
            if let direct = spec.valueUsdPerMWh {
                v = direct
            } else if spec.deviceClass == .mining {
                if let mv = sig.miningValueUsdPerMWh { v = mv } else if let h = sig.hashpriceUsdPerPHDay {
                    v = h / (0.024 * spec.efficiencyJPerTH!)
                }
            } else {
                if let sv = sig.inferenceSpotUsdPerMWh { v = sv } else if let g = sig.inferenceSpotUsdPerGpuHour {
                    v = g / spec.kwPerGpu! * 1000
                }
            }
            value.append(v)
            let cs = sig.commitments.filter { $0.deviceID == spec.id }
            let ck = cs.map(\.committedKw).reduce(0, +)
            let r = ck > 0 ? cs.map { $0.rateUsdPerMWh * $0.committedKw }.reduce(0, +) / ck : 0
            let pn = ck > 0 ? cs.map { $0.penaltyUsdPerMWh * $0.committedKw }.reduce(0, +) / ck : 0
            // Selling spot and paying the penalty when spot pays more than rate + penalty.
            let spotWins = ck > 0 && v >= r + pn
            commit.append(spotWins ? 0 : ck)
            fullPenalty.append(spotWins ? pn * ck / 1000 : 0)
            rate.append(r)
            pen.append(pn)
            // range
            var k = Kind.free
            var l = 0.0
            var h = 0.0
            var hv = 0.0
            var b = 0.0
            if !st.available {
                k = .pinned
                hv = max(0, st.measuredKw ?? st.setpointKw)
                l = hv
                h = hv
            } else {
                let on = st.isOn && st.setpointKw > 0
                let s = on ? min(st.setpointKw, spec.maxKw) : 0
                b = s
                let up = spec.rampKwPerS > 0 ? spec.rampKwPerS * inst.tick : .infinity
                // Below min-stable (or at 0) a rise is a start: straight to min-stable, or the ramp if more.
                let starting = s <= 0 || s < spec.minStableKw
                h = starting ? min(spec.maxKw, max(spec.minStableKw, up)) : min(spec.maxKw, s + up)
                let stale = st.dataAgeS > inst.staleAfter
                if stale { h = on ? min(h, s) : 0 }
                let ms = spec.minStableKw
                let struck = spec.deviceClass == .mining && curtailed
                if on && ms > 0 && st.stateForS < spec.minOnS {
                    k = .forcedOn
                    l = ms
                    h = struck ? ms : max(h, ms)
                } else if (!on && ms > 0 && st.stateForS < spec.minOffS) || struck || (stale && !on)
                    || h < ms - 1e-7 || h <= 1e-7
                {
                    k = .forcedOff
                    h = 0
                } else {
                    k = .free
                    l = ms
                }
            }
            var sc = 0.0
            if k == .free && l > 0 && !(st.isOn && st.setpointKw > 0) && spec.minOnS > 0 && !sig.priceForecast.isEmpty {
                let start = max(price, Self.windowAverage(sig, seconds: spec.minOnS) + (price - sig.energyPriceUsdPerMWh))
                sc = (start - price) * m[0] * l / 1000
            }
            surcharge.append(sc)
            kind.append(k)
            lo.append(l)
            hi.append(h)
            held.append(hv)
            base.append(b)
        }
        // fixed load: declared + meter residuals (bottom-up)
        var own = nodes.map { inst.uncontrolled[$0.id] ?? 0 }
        var explained = own
        for (d, spec) in inst.devices.enumerated() {
            explained[ids.firstIndex(of: spec.nodeID)!] += max(0, inst.states[d].measuredKw ?? 0)
        }
        // process deepest first
        let depth: [Int] = nodes.indices.map { i in
            var k = 0
            var n = parent[i]
            while n >= 0 {
                k += 1
                n = parent[n]
            }
            return k
        }
        // Cooling that follows IT load is modelled, so the meter's share of it is explained.
        for i in nodes.indices where nodes[i].auxFraction > 0 {
            var it = 0.0
            for (d, spec) in inst.devices.enumerated() {
                var n: Int = ids.firstIndex(of: spec.nodeID)!
                while n >= 0 && n != i { n = parent[n] }
                if n == i { it += max(0, inst.states[d].measuredKw ?? 0) }
            }
            explained[i] += nodes[i].auxFraction * it
        }
        for i in nodes.indices.sorted(by: { depth[$0] > depth[$1] }) {
            if let m = inst.measured[nodes[i].id], m > explained[i] {
                own[i] += m - explained[i]
                explained[i] = m
            }
            if parent[i] >= 0 { explained[parent[i]] += explained[i] }
        }
        fixedSub = own
        for i in nodes.indices.sorted(by: { depth[$0] > depth[$1] }) where parent[i] >= 0 {
            fixedSub[parent[i]] += fixedSub[i]
        }
        // The safety margin applies to every cap (node caps and import caps alike).
        cap = nodes.map { $0.capKw - inst.margin }
        cap[0] = min(cap[0], inst.importLimit - inst.margin)
        for c in sig.importCaps { cap[0] = min(cap[0], c.capKw - inst.margin) }
    }

    /// Average of the price step function (now, then the forecast points) over the next `seconds`.
    static func windowAverage(_ sig: DispatchSignals, seconds: Double) -> Double {
        var points: [(Double, Double)] = [(0, sig.energyPriceUsdPerMWh)]
        for f in sig.priceForecast where f.offsetS > 0 { points.append((f.offsetS, f.usdPerMWh)) }
        var acc = 0.0
        for (i, p) in points.enumerated() {
            let from = p.0
            let to = i + 1 < points.count ? points[i + 1].0 : Double.infinity
            let a = min(from, seconds)
            let b = min(to, seconds)
            if b > a { acc += p.1 * (b - a) }
        }
        return acc / seconds
    }

    /// The objective the dispatch maximises: the plan's, with each start block charged at its
    /// start price (equal to `objective` without a forecast).
    func decisionObjective(_ x: [Double]) -> Double {
        var t = objective(x)
        for d in x.indices where surcharge[d] > 0 && x[d] > 1e-9 { t -= surcharge[d] }
        return t
    }

    func revenue(_ d: Int, _ x: Double) -> Double {
        commit[d] > 0 ? (rate[d] * min(x, commit[d]) + value[d] * max(0, x - commit[d])) / 1000 : value[d] * x / 1000
    }

    func siteLoad(_ x: [Double]) -> Double {
        var s = fixedSub[0]
        for d in x.indices { s += x[d] * mult[d][0] }
        return s
    }

    /// Total objective in $/h.
    func objective(_ x: [Double]) -> Double {
        var t = 0.0
        for d in x.indices {
            t += revenue(d, x[d])
            if commit[d] > 0 { t -= pen[d] * max(0, commit[d] - x[d]) / 1000 }
            t -= fullPenalty[d]
        }
        let site = siteLoad(x)
        t -= price * site / 1000
        if let pr = inst.signals.paidReduction { t += pr.usdPerMWh * max(0, pr.baselineKw - site) / 1000 }
        return t
    }

    /// Every rule violated by `x`, in words (empty when feasible).
    func violations(_ x: [Double], tol: Double = 1e-4) -> [String] {
        var v: [String] = []
        for n in nodes.indices {
            var load = fixedSub[n]
            for d in x.indices { load += x[d] * mult[d][n] }
            if load > cap[n] + tol { v.append("node \(nodes[n].id) load \(load) > cap \(cap[n])") }
        }
        var up = 0.0
        for d in x.indices {
            let id = inst.devices[d].id
            switch kind[d] {
            case .pinned:
                if abs(x[d] - held[d]) > tol { v.append("\(id) unavailable but moved") }
            case .forcedOff:
                if x[d] > tol { v.append("\(id) must be off, got \(x[d])") }
            case .forcedOn:
                if x[d] < lo[d] - tol || x[d] > hi[d] + tol { v.append("\(id) forced on, \(x[d]) outside [\(lo[d]), \(hi[d])]") }
            case .free:
                if x[d] > hi[d] + tol { v.append("\(id) above ramp/max limit: \(x[d]) > \(hi[d])") }
                if x[d] > tol && x[d] < lo[d] - tol { v.append("\(id) below min-stable: \(x[d]) < \(lo[d])") }
                if x[d] < -tol { v.append("\(id) negative") }
            }
            if kind[d] != .pinned { up += max(0, x[d] - base[d]) }
        }
        if let r = inst.restore, up > r + tol { v.append("restore rate: ramp-up \(up) > \(r)") }
        return v
    }

    /// Whether the must-hold load alone (pinned, forced-on minimum, fixed) fits every cap.
    var mandatoryFits: Bool {
        var x = Array(repeating: 0.0, count: kind.count)
        for d in x.indices where kind[d] == .pinned || kind[d] == .forcedOn { x[d] = lo[d] }
        return violations(x, tol: 1e-6).filter { $0.hasPrefix("node") }.isEmpty
    }

    // MARK: exact solver

    /// The exact optimum of the decision objective, nil when no plan is feasible. Branch and bound
    /// over the on/off choice of every free device with a min-stable power; at each node an LP
    /// (bounded-variable simplex) with the undecided devices allowed anywhere in [0, hi], their
    /// start surcharge spread over their first min-stable kW: a relaxation, exact once every
    /// choice is made. Paid reductions: solved on both sides of the baseline.
    func exact() -> (objective: Double, x: [Double])? {
        let binaries = kind.indices.filter { kind[$0] == .free && lo[$0] > 0 }
        var best: (Double, [Double])? = nil
        var regimes: [(price: Double, baseline: Double?, constant: Double)] = [(price, nil, 0)]
        if let pr = inst.signals.paidReduction, pr.usdPerMWh > 0 {
            regimes.append((price + pr.usdPerMWh, pr.baselineKw, pr.usdPerMWh * pr.baselineKw / 1000))
        }
        for r in regimes {
            // Best first over nodes (decision vectors: -1 off, 0 undecided, 1 on).
            var open: [(bound: Double, dec: [Int])] = []
            let root = Array(repeating: 0, count: kind.count)
            guard let rootLP = lp(dec: root, price: r.price, baseline: r.baseline) else { continue }
            open.append((rootLP.value + r.constant, root))
            var iterations = 0
            while let top = open.indices.max(by: { open[$0].bound < open[$1].bound }) {
                let node = open.remove(at: top)
                if let b = best, node.bound <= b.0 + 1e-9 * max(1, abs(b.0)) { break }
                iterations += 1
                precondition(iterations < 200_000, "oracle branch and bound did not finish")
                guard let sol = lp(dec: node.dec, price: r.price, baseline: r.baseline) else { continue }
                let bound = sol.value + r.constant
                if let b = best, bound <= b.0 + 1e-9 * max(1, abs(b.0)) { continue }
                // Branch on a device strictly inside (0, min-stable), else on any undecided one whose
                // LP value could differ from the true one (a start surcharge), else it is solved.
                var branch = -1
                for d in binaries where node.dec[d] == 0 && sol.x[d] > 1e-7 && sol.x[d] < lo[d] - 1e-7 {
                    branch = d
                    break
                }
                if branch < 0 {
                    let trueValue = regimeObjective(sol.x, price: r.price, constant: r.constant)
                    if abs(trueValue - bound) > 1e-7 * max(1, abs(bound)) {
                        branch = binaries.first { node.dec[$0] == 0 && sol.x[$0] > 1e-7 } ?? -1
                    }
                    if branch < 0 {
                        let v = decisionObjective(sol.x)
                        if best == nil || v > best!.0 { best = (v, sol.x) }
                        continue
                    }
                }
                for side in [1, -1] {
                    var dec = node.dec
                    dec[branch] = side
                    if let c = lp(dec: dec, price: r.price, baseline: r.baseline) {
                        let cb = min(bound, c.value + r.constant)
                        if best == nil || cb > best!.0 + 1e-9 * max(1, abs(best!.0)) { open.append((cb, dec)) }
                    }
                }
            }
        }
        return best
    }

    /// The objective on one side of a paid-reduction baseline, start surcharges included: the
    /// regime's price on the whole import plus its constant, no other DR credit.
    func regimeObjective(_ x: [Double], price p: Double, constant: Double) -> Double {
        var t = constant
        for d in x.indices {
            t += revenue(d, x[d])
            if commit[d] > 0 { t -= pen[d] * max(0, commit[d] - x[d]) / 1000 }
            t -= fullPenalty[d]
            if surcharge[d] > 0 && x[d] > 1e-9 { t -= surcharge[d] }
        }
        return t - p * siteLoad(x) / 1000
    }

    /// The LP for decisions `dec` (binary devices: -1 off, 1 on, 0 relaxed to [0, hi]) at energy
    /// price `p`, the root capped at `baseline` too when given. Returns the regime objective
    /// without its constant, and the plan; nil when the fixed load alone breaks a limit.
    func lp(dec: [Int], price p: Double, baseline: Double?) -> (value: Double, x: [Double])? {
        var x = Array(repeating: 0.0, count: kind.count)
        var resid = cap
        if let b = baseline { resid[0] = min(resid[0], b) }
        for n in nodes.indices { resid[n] -= fixedSub[n] }
        var restore = inst.restore ?? Double.infinity
        var constant = 0.0
        struct Piece { var d: Int; var len: Double; var val: Double; var restore: Bool }
        var pieces: [Piece] = []
        for d in kind.indices {
            var l = 0.0
            var h = 0.0
            var breaks: [Double] = [commit[d], base[d]]
            var spread = 0.0
            // A device held at 0 still pays its commitment's penalty.
            let atZero = -(commit[d] > 0 ? pen[d] * commit[d] / 1000 : 0) - fullPenalty[d]
            switch kind[d] {
            case .pinned, .forcedOn:
                l = lo[d]
                h = kind[d] == .pinned ? lo[d] : hi[d]
            case .forcedOff:
                constant += atZero
                continue
            case .free:
                if lo[d] > 0 && dec[d] == -1 {
                    constant += atZero
                    continue
                }
                h = hi[d]
                if lo[d] > 0 && dec[d] == 1 {
                    l = lo[d]
                    constant -= surcharge[d]
                } else if lo[d] > 0 {
                    // Relaxed: the start surcharge spread over the first min-stable kW.
                    breaks.append(lo[d])
                    spread = surcharge[d] * 1000 / lo[d]
                }
            }
            x[d] = l
            for n in nodes.indices { resid[n] -= l * mult[d][n] }
            if kind[d] != .pinned { restore -= max(0, l - base[d]) }
            // The value of [0, l]: revenue, penalty avoided, energy.
            constant += revenue(d, l) - (commit[d] > 0 ? pen[d] * max(0, commit[d] - l) / 1000 : 0) - fullPenalty[d]
            constant -= p * l * mult[d][0] / 1000
            var pts = [l, h]
            for b in breaks where b > l && b < h { pts.append(b) }
            pts.sort()
            for i in 0..<(pts.count - 1) where pts[i + 1] > pts[i] + 1e-12 {
                let mid = (pts[i] + pts[i + 1]) / 2
                var v = (mid < commit[d] ? rate[d] + pen[d] : value[d]) - p * mult[d][0]
                if spread > 0 && mid < lo[d] { v -= spread }
                pieces.append(
                    Piece(d: d, len: pts[i + 1] - pts[i], val: v, restore: kind[d] != .pinned && mid > base[d]))
            }
        }
        constant -= p * fixedSub[0] / 1000
        if resid.contains(where: { $0 < -1e-7 }) || restore < -1e-7 { return nil }
        let nv = pieces.count
        if nv == 0 { return (constant, x) }
        var A: [[Double]] = []
        var b: [Double] = []
        for n in nodes.indices {
            A.append(pieces.map { mult[$0.d][n] })
            b.append(max(0, resid[n]))
        }
        if restore.isFinite {
            A.append(pieces.map { $0.restore ? 1 : 0 })
            b.append(max(0, restore))
        }
        let y = Simplex.maximize(c: pieces.map(\.val), A: A, b: b, upper: pieces.map(\.len))
        var v = constant
        for k in 0..<nv {
            x[pieces[k].d] += y[k]
            v += pieces[k].val * y[k] / 1000
            if Oracle.debug { print("piece", pieces[k].d, pieces[k].len, pieces[k].val, y[k]) }
        }
        if Oracle.debug { print("constant", constant) }
        return (v, x)
    }
}
