import Broker

/// An independent statement of the dispatch rules (docs/dispatch.md), written without reusing any
/// Broker internals: allowed ranges, feasibility checks, the objective, and an exact solver
/// (branch over on/off of min-stable devices, a dense simplex for the continuous part).
struct Oracle {
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
                h = on ? min(spec.maxKw, s + up) : min(spec.maxKw, max(spec.minStableKw, up))
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

    /// The exact optimum: nil when no plan is feasible.
    func exact() -> (objective: Double, x: [Double])? {
        let free = kind.indices.filter { kind[$0] == .free && lo[$0] > 0 }
        var best: (Double, [Double])? = nil
        let regimes: [(Double, Double?)] = {
            var r: [(Double, Double?)] = [(price, nil)]
            if let pr = inst.signals.paidReduction, pr.usdPerMWh > 0 { r.append((price + pr.usdPerMWh, pr.baselineKw)) }
            return r
        }()
        // Branch and bound over on/off of free min-stable devices. Bound: the LP with every free
        // device allowed anywhere in [0, hi] (min-stable relaxed) is an upper bound.
        func solveSet(_ on: [Bool]) -> (Double, [Double])? {
            var bestHere: (Double, [Double])? = nil
            for (p, baseline) in regimes {
                guard let x = lp(on: on, price: p, baseline: baseline) else { continue }
                let o = objective(x)
                if bestHere == nil || o > bestHere!.0 { bestHere = (o, x) }
            }
            return bestHere
        }
        var on = Array(repeating: true, count: kind.count)
        func branch(_ k: Int) {
            if k == free.count {
                if let r = solveSet(on), best == nil || r.0 > best!.0 { best = r }
                return
            }
            // Bound with the remaining devices relaxed.
            if let b = best {
                var relaxedOn = on
                for j in k..<free.count { relaxedOn[free[j]] = true }
                if let ub = solveSetRelaxed(relaxedOn, from: k), ub < b.0 - 1e-9 { return }
            }
            let d = free[k]
            on[d] = true
            branch(k + 1)
            on[d] = false
            branch(k + 1)
            on[d] = true
        }
        func solveSetRelaxed(_ on: [Bool], from k: Int) -> Double? {
            // Devices free[k...] get lower bound 0; the LP value is then an upper bound.
            var best: Double? = nil
            for (p, baseline) in regimes {
                guard let x = lp(on: on, price: p, baseline: baseline, relaxFrom: Set(free[k...])) else {
                    continue
                }
                // In the below-baseline regime the LP objective equals the true one; in the other the
                // true objective is at least the LP's, so take the true objective as the bound.
                let o = objective(x) + 1e-9
                best = max(best ?? -.infinity, o)
            }
            return best
        }
        branch(0)
        return best
    }

    /// The LP for a fixed on/off choice. Pieces between breakpoints {lower, commit, ramp base, hi}
    /// each get a variable; pieces below the lower bound are fixed.
    func lp(on: [Bool], price p: Double, baseline: Double?, relaxFrom: Set<Int> = []) -> [Double]? {
        var x = Array(repeating: 0.0, count: kind.count)
        var resid = cap
        if let b = baseline { resid[0] = min(resid[0], b) }
        for n in nodes.indices { resid[n] -= fixedSub[n] }
        var restore = inst.restore ?? Double.infinity
        struct Piece { var d: Int; var len: Double; var val: Double; var restore: Bool }
        var pieces: [Piece] = []
        for d in kind.indices {
            var l = 0.0
            var h = 0.0
            switch kind[d] {
            case .pinned, .forcedOn:
                l = lo[d]
                h = kind[d] == .pinned ? lo[d] : hi[d]
            case .forcedOff: continue
            case .free:
                if !on[d] { continue }
                l = relaxFrom.contains(d) ? 0 : lo[d]
                h = hi[d]
            }
            x[d] = l
            for n in nodes.indices { resid[n] -= l * mult[d][n] }
            if kind[d] != .pinned { restore -= max(0, l - base[d]) }
            var pts = [l, h]
            for b in [commit[d], base[d]] where b > l && b < h { pts.append(b) }
            pts.sort()
            for i in 0..<(pts.count - 1) where pts[i + 1] > pts[i] + 1e-12 {
                let mid = (pts[i] + pts[i + 1]) / 2
                let v = mid < commit[d] ? rate[d] + pen[d] : value[d]
                pieces.append(
                    Piece(d: d, len: pts[i + 1] - pts[i], val: v - p * mult[d][0], restore: kind[d] != .pinned && mid > base[d]))
            }
        }
        if resid.contains(where: { $0 < -1e-7 }) || restore < -1e-7 { return nil }
        // maximize sum val*y  s.t. node rows, restore row, y_k <= len_k
        let nv = pieces.count
        if nv == 0 { return x }
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
        for k in 0..<nv {
            var row = Array(repeating: 0.0, count: nv)
            row[k] = 1
            A.append(row)
            b.append(pieces[k].len)
        }
        let y = Simplex.maximize(c: pieces.map(\.val), A: A, b: b)
        for k in 0..<nv { x[pieces[k].d] += y[k] }
        return x
    }
}

/// Dense tableau simplex for max c·y, A y <= b, y >= 0 with b >= 0 (y = 0 is feasible). Bland's rule.
enum Simplex {
    static func maximize(c: [Double], A: [[Double]], b: [Double]) -> [Double] {
        let m = A.count
        let n = c.count
        let w = n + m + 1
        var t = Array(repeating: Array(repeating: 0.0, count: w), count: m + 1)
        var basis = Array(repeating: 0, count: m)
        for i in 0..<m {
            for j in 0..<n { t[i][j] = A[i][j] }
            t[i][n + i] = 1
            t[i][w - 1] = b[i]
            basis[i] = n + i
        }
        for j in 0..<n { t[m][j] = -c[j] }
        let eps = 1e-11
        for _ in 0..<10_000 {
            var enter = -1
            for j in 0..<(n + m) where t[m][j] < -eps {
                enter = j
                break
            }
            if enter < 0 { break }
            var leave = -1
            var bestRatio = Double.infinity
            for i in 0..<m where t[i][enter] > eps {
                let r = t[i][w - 1] / t[i][enter]
                if r < bestRatio - 1e-12 || (abs(r - bestRatio) <= 1e-12 && leave >= 0 && basis[i] < basis[leave]) {
                    bestRatio = r
                    leave = i
                }
            }
            if leave < 0 { break }  // unbounded cannot happen: every variable has an upper-bound row
            let pv = t[leave][enter]
            for j in 0..<w { t[leave][j] /= pv }
            for i in 0...m where i != leave {
                let f = t[i][enter]
                if f != 0 { for j in 0..<w { t[i][j] -= f * t[leave][j] } }
            }
            basis[leave] = enter
        }
        var y = Array(repeating: 0.0, count: n)
        for i in 0..<m where basis[i] < n { y[basis[i]] = max(0, t[i][w - 1]) }
        return y
    }
}
