// The exact search (sites up to `Broker.exactSearchMaxDevices` devices) and the bound every plan
// reports.
//
// In one price regime the problem is: each device's value is concave in its kW above its on/off
// threshold, the caps form a laminar family, the restore budget is one more linear constraint, and
// a device with a min-stable power is either off or at least at its min-stable power. Relaxing that
// last rule (the start block may be taken in part) leaves a polymatroid with a separable concave
// objective plus one side constraint: greedy by value solves it exactly for any multiplier λ on the
// restore budget, and `greedy(λ) + λ·budget` is an upper bound for every λ ≥ 0 (Lagrangian
// duality). The branch-and-bound fixes start blocks on or off, best bound first, until the best
// plan found is within `targetGap` of every open bound or the work budget is spent. Whatever
// stops it, the bound it proves is reported with the plan.

/// What a device is to the search.
enum SearchClass: UInt8, Sendable {
    /// Nothing to decide (pinned, forced off, or no room above its mandatory kW).
    case fixed
    /// Continuous above its mandatory kW (no min-stable block, or held on by its dwell).
    case continuous
    /// Off, or at least its min-stable power: the on/off choice is the search's.
    case binary
}

/// One regime's data for the search, the bound and the top-up. Values are $/MWh per device kW net
/// of the regime's energy price (the decision value: a start block is charged at its start price).
struct Model: Sendable {
    let nD: Int
    let nN: Int
    /// Restore budget left after the mandatory allocation; `.infinity` without a restore rate.
    var restoreLeft: Double
    /// Decision value ($/h) of the mandatory allocation alone.
    let c0: Double
    /// Residual caps after the mandatory allocation (fixed load, pinned and held-on devices).
    var resid0: [Double]
    let x0: [Double]
    var cls: [SearchClass]
    let s: [Double]
    let ms: [Double]
    /// Binary devices: value per kW of the start block [0, ms], and its restore use per kW.
    let fVal: [Double]
    let fRest: [Double]
    /// Pieces above each device's threshold: pStart[d]..<pStart[d+1], each [pa, pb] at value pv,
    /// pr when the whole piece is above the ramp base (uses the restore budget).
    let pStart: [Int]
    let pa: [Double]
    let pb: [Double]
    let pv: [Double]
    let pr: [Bool]
    /// Binary devices in id order.
    var binaries: [Int32]
    let k0: [Int32]
    let k1: [Int32]
    /// Each device's path with its own multipliers (plans), and with each node's smallest
    /// multiplier (the relaxation: equal when every device below a node sees the same multiplier
    /// there, the usual case).
    let path: [PathEntry]
    let boundPath: [PathEntry]
    let byRank: [Int]
    let uniformMultipliers: Bool
    /// Parent of each node, -1 for the root (parents come first).
    let nodeParent: [Int]

    /// Decision value ($/h) of the allocation x (x[d] ≥ x0[d]; binary devices at 0 or ≥ ms).
    func value(_ x: [Double]) -> Double {
        var v = c0
        for d in 0..<nD {
            let xd = x[d]
            switch cls[d] {
            case .fixed: continue
            case .binary:
                if xd <= 1e-9 { continue }
                v += fVal[d] * ms[d] / 1000
            case .continuous: break
            }
            for p in pStart[d]..<pStart[d + 1] {
                let a = pa[p]
                if xd <= a { break }
                v += pv[p] * (min(xd, pb[p]) - a) / 1000
            }
        }
        return v
    }

    /// Whether x keeps every cap (with each device's own multipliers), the restore budget and the
    /// min-stable rule.
    func feasible(_ x: [Double]) -> Bool {
        var resid = resid0
        for d in 0..<nD where cls[d] != .fixed {
            let extra = x[d] - x0[d]
            if extra < -1e-6 { return false }
            if cls[d] == .binary && x[d] > 1e-6 && x[d] < ms[d] - 1e-6 { return false }
            if extra <= 0 { continue }
            for k in Int(k0[d])..<Int(k1[d]) {
                let e = path[k]
                resid[Int(e.node)] -= extra * e.mult
            }
        }
        for n in 0..<nN where resid[n] < -1e-4 { return false }
        if restoreLeft.isFinite && restoreUse(x) > restoreLeft + 1e-4 { return false }
        return true
    }

    /// Restore use (kW) above the mandatory allocation.
    func restoreUse(_ x: [Double]) -> Double {
        var u = 0.0
        for d in 0..<nD where cls[d] != .fixed {
            u += max(0, x[d] - max(s[d], x0[d]))
        }
        return u
    }
}

extension Model {
    /// The restore budget priced at λ $/MWh per kW of ramp-up instead of enforced: each value
    /// net of λ times its restore use. Its optimum plus λ × budget bounds the problem (for any
    /// λ ≥ 0), and without the budget the tree's subtrees are independent again.
    func priced(lambda: Double) -> Model {
        var m = self
        var pv = self.pv
        for p in 0..<pv.count where pr[p] { pv[p] -= lambda }
        var fVal = self.fVal
        for d in 0..<nD { fVal[d] -= lambda * fRest[d] }
        m = Model(
            nD: nD, nN: nN, restoreLeft: .infinity, c0: c0, resid0: resid0, x0: x0, cls: cls, s: s, ms: ms, fVal: fVal,
            fRest: fRest, pStart: pStart, pa: pa, pb: pb, pv: pv, pr: pr, binaries: binaries, k0: k0, k1: k1, path: path,
            boundPath: boundPath, byRank: byRank, uniformMultipliers: uniformMultipliers, nodeParent: nodeParent)
        return m
    }

    /// The same problem for the devices in `keep` only (the others stay at their mandatory kW),
    /// with the caps of the nodes in `lift` and, if `liftRestore`, the restore budget removed:
    /// a relaxation of the whole problem's part for those devices.
    func restricted(keep: [Bool], lift: [Bool], liftRestore: Bool) -> Model {
        var m = self
        for d in 0..<nD where !keep[d] { m.cls[d] = .fixed }
        m.binaries = binaries.filter { keep[Int($0)] }
        for n in 0..<nN where lift[n] { m.resid0[n] = .infinity }
        if liftRestore { m.restoreLeft = .infinity }
        return m
    }

    /// Devices that have something to decide (not fixed) below node n (n's subtree).
    func devices(below n: Int, among keep: [Bool]) -> [Bool] {
        var out = [Bool](repeating: false, count: nD)
        for d in 0..<nD where keep[d] && cls[d] != .fixed {
            for k in Int(k0[d])..<Int(k1[d]) where Int(path[k].node) == n {
                out[d] = true
                break
            }
        }
        return out
    }
}

/// One piece (or merged start block) of a device, as greedy takes it.
struct Item: Sendable {
    var dev: Int32
    /// 0: taken whatever the device's state; 1: only while its on/off is undecided (the start
    /// block, merged with the pieces worth more than it); 2: only once it is decided on.
    var variant: UInt8
    /// Position when built (id order): the tie-break.
    var seq: Int32
    var a: Double
    var b: Double
    /// $/MWh net of λ per kW of restore use.
    var key: Double
    /// Restore use per kW.
    var rf: Double
}

/// Items in the order greedy takes them for one multiplier λ on the restore budget (only those
/// worth taking: key > 0).
struct Order: Sendable {
    var lambda: Double
    var items: [Item] = []
}

extension Model {
    func order(lambda: Double) -> Order {
        var items: [Item] = []
        items.reserveCapacity(pa.count + binaries.count)
        var seq: Int32 = 0
        func add(_ d: Int, _ v: UInt8, _ a: Double, _ b: Double, _ key: Double, _ rf: Double) {
            if key > 0 { items.append(Item(dev: Int32(d), variant: v, seq: seq, a: a, b: b, key: key, rf: rf)) }
            seq += 1
        }
        for d in byRank {
            let c = cls[d]
            if c == .fixed { continue }
            let p0 = pStart[d]
            let p1 = pStart[d + 1]
            var first = p0
            if c == .binary {
                // The start block, merged with the following pieces while they are worth more per
                // kW than the merged block (the concave envelope: a valid relaxation).
                var len = ms[d]
                var sumV = fVal[d] * len
                var sumR = fRest[d] * len
                var end = ms[d]
                while first < p1 {
                    let l = pb[first] - pa[first]
                    let r = pr[first] ? 1.0 : 0.0
                    let k = pv[first] - lambda * r
                    if k <= (sumV - lambda * sumR) / len { break }
                    sumV += pv[first] * l
                    sumR += r * l
                    len += l
                    end = pb[first]
                    first += 1
                }
                add(d, 1, 0, end, (sumV - lambda * sumR) / len, sumR / len)
                for p in p0..<first {
                    let r = pr[p] ? 1.0 : 0.0
                    add(d, 2, pa[p], pb[p], pv[p] - lambda * r, r)
                }
            }
            for p in first..<p1 {
                let r = pr[p] ? 1.0 : 0.0
                add(d, 0, pa[p], pb[p], pv[p] - lambda * r, r)
            }
        }
        items.sort { $0.key > $1.key || ($0.key == $1.key && $0.seq < $1.seq) }
        return Order(lambda: lambda, items: items)
    }
}

/// The branch-and-bound and its passes. A class: it owns scratch buffers reused by every pass.
final class Search {
    let m: Model
    /// Work done, in item visits (each one walks a device's path to the root).
    var work = 0
    var x: [Double]
    var resid: [Double]
    /// -1 off, 0 undecided, 1 on; only binary devices are read.
    var dec: [Int8]
    var orders: [Int: Order] = [:]
    /// After `bestRelax`: the grid point on the other side of the budget's crossing, or -1.
    var across = -1
    /// Branch first on start blocks that use the restore budget.
    var restoreFirst = false
    let eps = 1e-7

    init(_ m: Model) {
        self.m = m
        x = m.x0
        resid = m.resid0
        dec = Array(repeating: 0, count: m.nD)
    }

    // MARK: multiplier grid

    /// λ on a geometric grid: index 0 is 0, index k ≥ 1 is 0.001 × 1.12^(k-1) $/MWh.
    static func lambda(_ g: Int) -> Double {
        if g <= 0 { return 0 }
        var v = 0.001
        for _ in 1..<g { v *= 1.12 }
        return v
    }

    func order(_ g: Int) -> Order {
        if let o = orders[g] { return o }
        let o = order(lambda: Self.lambda(g))
        orders[g] = o
        return o
    }

    /// An order for any λ (not cached); its sort counts as work.
    func order(lambda: Double) -> Order {
        let o = m.order(lambda: lambda)
        work += 4 * o.items.count
        return o
    }

    // MARK: passes

    /// The relaxation under the current decisions, greedy in order `o`. Leaves the plan in `x`.
    /// Returns nil when the decided-on start blocks alone do not fit, else the bound
    /// (greedy value + λ × budget) and the restore use.
    func relax(_ o: Order) -> (bound: Double, used: Double)? {
        let m = self.m
        let lambda = o.lambda
        var val = m.c0
        var used = 0.0
        var ok = true
        x.withUnsafeMutableBufferPointer { x in
            resid.withUnsafeMutableBufferPointer { resid in
                m.x0.withUnsafeBufferPointer { x0 in
                    for d in 0..<m.nD { x[d] = x0[d] }
                }
                m.resid0.withUnsafeBufferPointer { r0 in
                    for n in 0..<m.nN { resid[n] = r0[n] }
                }
                m.boundPath.withUnsafeBufferPointer { path in
                    for d32 in m.binaries where dec[Int(d32)] == 1 {
                        let d = Int(d32)
                        let ms = m.ms[d]
                        x[d] = ms
                        for k in Int(m.k0[d])..<Int(m.k1[d]) {
                            let e = path[k]
                            resid[Int(e.node)] -= ms * e.mult
                        }
                        used += m.fRest[d] * ms
                        val += (m.fVal[d] - lambda * m.fRest[d]) * ms / 1000
                    }
                    for n in 0..<m.nN where resid[n] < -1e-6 { ok = false }
                    if used > m.restoreLeft + 1e-6 { ok = false }
                    guard ok else { return }
                    work += o.items.count
                    o.items.withUnsafeBufferPointer { items in
                        for it in items {
                            let d = Int(it.dev)
                            let v = it.variant
                            if v != 0 {
                                let s = dec[d]
                                if s == -1 || (v == 1 && s != 0) || (v == 2 && s != 1) { continue }
                            } else if m.cls[d] == .binary && dec[d] == -1 {
                                continue
                            }
                            let xd = x[d]
                            if xd < it.a - eps { continue }
                            var take = it.b - xd
                            if take <= eps { continue }
                            for k in Int(m.k0[d])..<Int(m.k1[d]) {
                                let e = path[k]
                                let room = max(0, resid[Int(e.node)]) * e.inv
                                if room < take { take = room }
                            }
                            if take <= eps { continue }
                            x[d] = xd + take
                            for k in Int(m.k0[d])..<Int(m.k1[d]) {
                                let e = path[k]
                                resid[Int(e.node)] -= take * e.mult
                            }
                            val += take * it.key / 1000
                            used += take * it.rf
                        }
                    }
                }
            }
        }
        guard ok else { return nil }
        let budget = m.restoreLeft.isFinite ? m.restoreLeft : 0
        return (val + lambda * budget / 1000, used)
    }

    /// A plan that keeps every rule: decided-on start blocks first, then greedy in order `o` with
    /// the restore budget enforced; an undecided device starts only if its whole start block fits.
    /// Leaves the plan in `x`; returns nil when the decided-on start blocks alone do not fit.
    func primal(_ o: Order) -> Bool {
        let m = self.m
        var left = m.restoreLeft
        var ok = true
        var rejected: [Int32] = []
        x.withUnsafeMutableBufferPointer { x in
            resid.withUnsafeMutableBufferPointer { resid in
                m.x0.withUnsafeBufferPointer { x0 in
                    for d in 0..<m.nD { x[d] = x0[d] }
                }
                m.resid0.withUnsafeBufferPointer { r0 in
                    for n in 0..<m.nN { resid[n] = r0[n] }
                }
                m.path.withUnsafeBufferPointer { path in
                    for d32 in m.binaries where dec[Int(d32)] == 1 {
                        let d = Int(d32)
                        let ms = m.ms[d]
                        x[d] = ms
                        for k in Int(m.k0[d])..<Int(m.k1[d]) {
                            let e = path[k]
                            resid[Int(e.node)] -= ms * e.mult
                        }
                        left -= max(0, ms - m.s[d])
                    }
                    for n in 0..<m.nN where resid[n] < -1e-6 { ok = false }
                    if left < -1e-6 { ok = false }
                    guard ok else { return }
                    work += o.items.count
                    o.items.withUnsafeBufferPointer { items in
                        for it in items {
                            let d = Int(it.dev)
                            let v = it.variant
                            if v != 0 {
                                let s = dec[d]
                                if s == -1 || (v == 1 && s != 0) || (v == 2 && s != 1) { continue }
                            } else if m.cls[d] == .binary && dec[d] == -1 {
                                continue
                            }
                            let xd = x[d]
                            if xd < it.a - eps { continue }
                            var take = it.b - xd
                            if take <= eps { continue }
                            for k in Int(m.k0[d])..<Int(m.k1[d]) {
                                let e = path[k]
                                let room = max(0, resid[Int(e.node)]) * e.inv
                                if room < take { take = room }
                            }
                            let sd = m.s[d]
                            let restoreRoom = max(0, sd - xd) + max(0, left)
                            if restoreRoom < take { take = restoreRoom }
                            if v == 1 && take < m.ms[d] - eps {
                                // The start block does not fit whole: the device stays off.
                                dec[d] = -1
                                rejected.append(Int32(d))
                                continue
                            }
                            if take <= eps { continue }
                            let nx = xd + take
                            left -= max(0, nx - max(xd, sd))
                            x[d] = nx
                            for k in Int(m.k0[d])..<Int(m.k1[d]) {
                                let e = path[k]
                                resid[Int(e.node)] -= take * e.mult
                            }
                        }
                    }
                }
            }
        }
        for d in rejected { dec[Int(d)] = 0 }
        return ok
    }

    /// Binary devices undecided and strictly between off and min-stable in `x`.
    func fractional() -> Int {
        var best = -1
        var bestW = -Double.infinity
        for d32 in m.binaries where dec[Int(d32)] == 0 {
            let d = Int(d32)
            let xd = x[d]
            if xd > 1e-6 && xd < m.ms[d] - 1e-6 {
                // The block with the most value at stake.
                // The block with the most value at stake; with the restore budget binding, blocks
                // that would use it first (the budget couples them all).
                let w = m.fVal[d] * m.ms[d] + (restoreFirst && m.fRest[d] > 0 ? 1e12 : 0)
                if w > bestW {
                    bestW = w
                    best = d
                }
            }
        }
        return best
    }

    /// The relaxation at the best multiplier on the grid, starting from grid index `g0`. The bound
    /// is convex in λ, smallest where the restore use crosses the budget: gallop along the grid in
    /// the direction the use points to, then bisect to the two neighbouring grid points around the
    /// crossing and keep the better. Leaves that point's plan in `x`.
    func bestRelax(from g0: Int) -> (bound: Double, used: Double, g: Int)? {
        across = -1
        guard m.restoreLeft.isFinite else {
            guard let r = relax(order(0)) else { return nil }
            return (r.bound, r.used, 0)
        }
        let budget = m.restoreLeft
        guard let r0 = relax(order(g0)) else { return nil }
        let over0 = r0.used > budget + 1e-6
        if !over0 && (g0 == 0 || r0.used >= budget - 1e-6) { return (r0.bound, r0.used, g0) }
        let dir = over0 ? 1 : -1
        let maxG = 400
        var seen: [Int: (bound: Double, used: Double)] = [g0: (r0.bound, r0.used)]
        func eval(_ g: Int) -> (bound: Double, used: Double)? {
            if let v = seen[g] { return v }
            guard let r = relax(order(g)) else { return nil }
            seen[g] = (r.bound, r.used)
            return (r.bound, r.used)
        }
        func over(_ v: (bound: Double, used: Double)) -> Bool { v.used > budget + 1e-6 }
        // a: last point on the starting side; b: first point past the crossing (or the grid's end).
        var a = g0
        var b = g0
        var step = 1
        while true {
            let next = max(0, min(maxG, a + dir * step))
            if next == a { break }
            guard let v = eval(next) else { return nil }
            if over(v) != over0 {
                b = next
                break
            }
            a = next
            b = next
            step *= 2
        }
        if a != b {
            while abs(b - a) > 1 {
                let mid = (a + b) / 2
                guard let v = eval(mid) else { return nil }
                if over(v) == over0 { a = mid } else { b = mid }
            }
        }
        var bestG = a
        for g in [a, b] {
            if let v = seen[g], v.bound < seen[bestG]!.bound { bestG = g }
        }
        if a != b { across = bestG == a ? b : a }
        guard let r = relax(order(bestG)) else { return nil }
        return (r.bound, r.used, bestG)
    }

    // MARK: exact continuous part for a fixed on/off choice

    /// With every binary decided, the best continuous allocation (the restore budget handled by
    /// bisection on λ and the convex combination of the two plans around it). Nil if infeasible.
    func leaf() -> (x: [Double], value: Double)? {
        guard let r0 = relax(order(0)) else { return nil }
        if !m.restoreLeft.isFinite || r0.used <= m.restoreLeft + 1e-6 {
            return (x, m.value(x))
        }
        var lo = 0.0
        var loX = x
        var loUsed = r0.used
        var hi = 1.0
        var hiX: [Double] = []
        var hiUsed = 0.0
        var grow = 0
        while true {
            guard let r = relax(order(lambda: hi)) else { return nil }
            if r.used <= m.restoreLeft + 1e-6 || grow > 40 {
                hiX = x
                hiUsed = r.used
                break
            }
            lo = hi
            loX = x
            loUsed = r.used
            hi *= 4
            grow += 1
        }
        for _ in 0..<40 {
            let mid = (lo + hi) / 2
            guard let r = relax(order(lambda: mid)) else { return nil }
            if r.used > m.restoreLeft + 1e-6 {
                lo = mid
                loX = x
                loUsed = r.used
            } else {
                hi = mid
                hiX = x
                hiUsed = r.used
            }
            if hi - lo <= 1e-9 * max(1, hi) { break }
        }
        guard hiUsed <= m.restoreLeft + 1e-6 else { return nil }
        // θ·lo + (1−θ)·hi spends the budget exactly; caps hold by convexity and every decided-on
        // device is at least at min-stable in both.
        let span = loUsed - hiUsed
        var best = (x: hiX, value: m.value(hiX))
        if span > 1e-9 {
            let theta = max(0, min(1, (m.restoreLeft - hiUsed) / span))
            var mix = hiX
            for d in 0..<m.nD { mix[d] = theta * loX[d] + (1 - theta) * hiX[d] }
            if m.restoreUse(mix) <= m.restoreLeft + 1e-6 {
                let v = m.value(mix)
                if v > best.value { best = (mix, v) }
            }
        }
        // Greedy in the order just below the multiplier, the budget enforced, is a vertex of the
        // same face when it is as good: ties go to the lower id instead of being shared.
        if primal(order(lambda: lo)), m.feasible(x) {
            let v = m.value(x)
            if v >= best.value - 1e-9 * max(1, abs(best.value)) { best = (x, v) }
        }
        return best
    }

    /// Bisection on λ under the current decisions, for a node whose relaxation is whole at its best
    /// grid point but leaves restore budget unspent there: the two plans around the multiplier
    /// where the budget is spent exactly. Returns the bound found, a device to branch on (part of a
    /// start block in either plan, or on in one and off in the other) or -1, and then the node's
    /// optimum: the combination of the two plans that spends the budget exactly.
    func refine() -> (bound: Double, branch: Int, x: [Double]?) {
        guard let r0 = relax(order(lambda: 0)) else { return (-.infinity, -1, nil) }
        var best = r0.bound
        if r0.used <= m.restoreLeft + 1e-6 { return (best, fractional(), x) }
        var lo = 0.0
        var loX = x
        var loUsed = r0.used
        var hi = 1.0
        var hiX = x
        var hiUsed = r0.used
        var grow = 0
        while true {
            guard let r = relax(order(lambda: hi)) else { return (best, -1, nil) }
            best = min(best, r.bound)
            if r.used <= m.restoreLeft + 1e-6 || grow > 40 {
                hiX = x
                hiUsed = r.used
                break
            }
            lo = hi
            loX = x
            loUsed = r.used
            hi *= 4
            grow += 1
        }
        for _ in 0..<50 {
            if hi - lo <= 1e-10 * max(1, hi) { break }
            let mid = (lo + hi) / 2
            guard let r = relax(order(lambda: mid)) else { break }
            best = min(best, r.bound)
            if r.used > m.restoreLeft + 1e-6 {
                lo = mid
                loX = x
                loUsed = r.used
            } else {
                hi = mid
                hiX = x
                hiUsed = r.used
            }
        }
        for cand in [loX, hiX] {
            x = cand
            let d = fractional()
            if d >= 0 { return (best, d, nil) }
        }
        for b32 in m.binaries where dec[Int(b32)] == 0 {
            let b = Int(b32)
            if (loX[b] > 1e-6) != (hiX[b] > 1e-6) { return (best, b, nil) }
        }
        let span = loUsed - hiUsed
        var mix = hiX
        if span > 1e-9 {
            let theta = max(0, min(1, (m.restoreLeft - hiUsed) / span))
            for d in 0..<m.nD { mix[d] = theta * loX[d] + (1 - theta) * hiX[d] }
        }
        x = mix
        return (best, -1, mix)
    }

    // MARK: branch and bound

    struct Node {
        var parent: Int32
        var dev: Int32
        var on: Bool
        var bound: Double
        var g: Int32
    }

    struct Result {
        var x: [Double]
        var value: Double
        /// Proven upper bound on the decision value in this regime.
        var bound: Double
        var nodes: Int
        var complete: Bool
    }

    /// Sets `dec` to node `i`'s decisions (and back to undecided for the previous node's).
    func apply(_ nodes: [Node], _ i: Int, touched: inout [Int32]) {
        for d in touched { dec[Int(d)] = 0 }
        touched.removeAll(keepingCapacity: true)
        var k = i
        while k > 0 {
            let n = nodes[k]
            dec[Int(n.dev)] = n.on ? 1 : -1
            touched.append(n.dev)
            k = Int(n.parent)
        }
    }

    /// - Parameters:
    ///   - initial: a plan to start from (an incumbent found elsewhere).
    ///   - boundCap: a bound proven elsewhere; the result's bound is never above it.
    func run(workBudget: Int, targetGap: Double, initial: [Double]? = nil, boundCap: Double = .infinity) -> Result? {
        var bestX: [Double] = []
        var bestV = -Double.infinity
        func offer(_ xs: [Double]) {
            work += m.nD
            let v = m.value(xs)
            if v > bestV + 1e-12 * max(1, abs(v)) && m.feasible(xs) {
                bestV = v
                bestX = xs
            }
        }
        if let initial { offer(initial) }
        func tolerance() -> Double { bestV + targetGap * max(1, abs(bestV)) }
        /// Decides every undecided binary as the plan in `x` has it, runs `body`, then restores `saved`.
        func withDecidedFromX(_ body: () -> Void) {
            var saved: [Int8] = []
            saved.reserveCapacity(m.binaries.count)
            for b in m.binaries {
                saved.append(dec[Int(b)])
                if dec[Int(b)] == 0 { dec[Int(b)] = x[Int(b)] > 1e-6 ? 1 : -1 }
            }
            body()
            for (k, b) in m.binaries.enumerated() { dec[Int(b)] = saved[k] }
        }
        func spent(_ r: (bound: Double, used: Double, g: Int)) -> Bool {
            r.g == 0 ? r.used <= m.restoreLeft + 1e-6 : abs(r.used - m.restoreLeft) <= 1e-6
        }

        guard let root = bestRelax(from: 0) else { return nil }
        restoreFirst = root.g > 0
        // Incumbents from the greedy orders, and the continuous optimum of their on/off choices.
        for g in Set([0, root.g]).sorted() where primal(order(g)) {
            offer(x)
            withDecidedFromX { if primal(order(g)) { offer(x) } }
        }
        var nodes: [Node] = [Node(parent: -1, dev: -1, on: false, bound: root.bound, g: Int32(root.g))]
        var touched: [Int32] = []
        var heap = MaxHeap()
        heap.push(root.bound, 0)
        var nodeCount = 1
        var complete = true
        // The largest bound of any part of the search given up without being solved.
        var openBound = -Double.infinity
        // Best bound first, plunging: after a branch the better child is taken next, so the
        // search reaches whole plans (and better incumbents) early.
        var plunge: (Double, Int)? = nil
        while true {
            let fromHeap = plunge == nil
            guard let (bound, i) = plunge ?? heap.pop() else { break }
            plunge = nil
            if bound <= tolerance() {
                openBound = max(openBound, bound)
                if fromHeap { break }
                continue
            }
            if work > workBudget {
                complete = false
                openBound = max(openBound, bound)
                break
            }
            apply(nodes, i, touched: &touched)
            guard let r = bestRelax(from: Int(nodes[i].g)) else { continue }
            var d = fractional()
            let fractionalAtBest = d >= 0
            if d < 0 {
                // Every start block is whole: with the budget spent (or not binding) this is the
                // node's optimum; otherwise the best continuous plan of this on/off choice.
                let relaxX = x
                if spent(r) {
                    offer(relaxX)
                    if !m.uniformMultipliers { withDecidedFromX { if primal(order(r.g)) { offer(x) } } }
                    continue
                }
                // Every start block whole at the best grid point, but the budget not spent there.
                // The plan on the other side of the crossing may differ in a start: branch on it.
                if across >= 0, relax(order(across)) != nil {
                    d = fractional()
                    if d < 0 {
                        for b32 in m.binaries where dec[Int(b32)] == 0 && (x[Int(b32)] > 1e-6) != (relaxX[Int(b32)] > 1e-6) {
                            d = Int(b32)
                            break
                        }
                    }
                    if d >= 0 {
                        withDecidedFromX { if primal(order(r.g)) { offer(x) } }
                    }
                }
            }
            if d < 0 {
                // Otherwise bisect on λ for this node.
                let ref = refine()
                if let mx = ref.x { offer(mx) }
                withDecidedFromX { if primal(order(r.g)) { offer(x) } }
                let nodeBound = min(r.bound, ref.bound)
                d = ref.branch
                if d < 0 {
                    // Solved, up to the bisection's precision: the bound stands.
                    if nodeBound > tolerance() { openBound = max(openBound, nodeBound) }
                    continue
                }
                nodes[i].bound = nodeBound
            } else if fractionalAtBest, primal(order(r.g)) {
                offer(x)
                withDecidedFromX { if primal(order(r.g)) { offer(x) } }
            }
            let nodeBound = min(r.bound, nodes[i].bound)
            var kids: [(Double, Int)] = []
            for on in [true, false] {
                nodes.append(Node(parent: Int32(i), dev: Int32(d), on: on, bound: nodeBound, g: Int32(r.g)))
                let c = nodes.count - 1
                apply(nodes, c, touched: &touched)
                nodeCount += 1
                guard let cr = bestRelax(from: r.g) else { continue }
                let cb = min(nodeBound, cr.bound)
                nodes[c].bound = cb
                nodes[c].g = Int32(cr.g)
                if fractional() < 0 && spent(cr) && m.uniformMultipliers {
                    offer(x)  // integral and optimal for its subtree
                    continue
                }
                if cb > tolerance() { kids.append((cb, c)) } else { openBound = max(openBound, cb) }
            }
            if let best = kids.max(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 > $1.1) }) {
                plunge = best
                for k in kids where k.1 != best.1 { heap.push(k.0, k.1) }
            }
        }
        if let p = plunge { heap.push(p.0, p.1) }
        guard !bestX.isEmpty else { return nil }
        if let top = heap.peek(), !complete { openBound = max(openBound, top) }
        // Final polish: the continuous optimum of the best on/off choice.
        for d in 0..<m.nD { dec[d] = 0 }
        for b in m.binaries { dec[Int(b)] = bestX[Int(b)] > 1e-6 ? 1 : -1 }
        if let l = leaf() { offer(l.x) }
        for d in 0..<m.nD { dec[d] = 0 }
        let bound = max(bestV, min(boundCap, openBound))
        return Result(x: bestX, value: bestV, bound: bound, nodes: nodeCount, complete: complete || bound <= tolerance())
    }
}

/// Solves a regime by parts where the tree allows: the subtrees below a node are independent once
/// that node's cap (and the restore budget) is lifted, so each is searched on its own; if their
/// plans together keep the lifted limits, together they are optimal and the sum of their bounds is
/// the bound. Otherwise the subtree is searched as a whole (the parts' bounds still cap its bound).
/// Sites are trees of transformers and PDUs: searched whole, the branch-and-bound would have to
/// close every subtree's gap at once; by parts, the work adds up instead of multiplying.
struct Decomposed {
    let m: Model
    let budget: Int
    let targetGap: Double
    var work = 0
    var nodes = 0
    var complete = true
    var children: [[Int]]

    init(_ m: Model, budget: Int, targetGap: Double) {
        self.m = m
        self.budget = budget
        self.targetGap = targetGap
        children = Array(repeating: [], count: m.nN)
        for n in 1..<m.nN where m.nodeParent[n] >= 0 { children[m.nodeParent[n]].append(n) }
    }

    /// A plan and a bound from the restore budget priced rather than enforced (filled in at the
    /// top when the budget binds): the search with the budget then starts from this plan, and
    /// its bound is never above this one.
    var priced: (x: [Double], bound: Double)? = nil
    /// Multipliers tried by `priceRestore`.
    static let priceSteps = 1
    /// With the restore budget binding, 1/swapShare of the work budget is kept for `swapStarts`.
    static let swapShare = 4
    /// After both, when the search stopped at its work budget with the restore budget binding,
    /// `Search.neighbourhoods` gets this much more work (item visits: on top of `budget`, so the
    /// search and the swaps keep theirs), over this many transformers. In the 2,000-site sweep's
    /// 100–300-device class, 100,000 left 2 sites above 0.1 %, 200,000 left 1, 300,000 none.
    static let neighbourhoodBudget = 300_000
    static let neighbourhoods = 2
    var pricedDone = false

    mutating func solve() -> Search.Result? {
        // Most ticks: the relaxation is already a plan (every start block whole, the restore
        // budget not binding) and so the optimum; nothing to search.
        let s = Search(m)
        if let r = s.bestRelax(from: 0), r.g == 0, s.fractional() < 0, m.feasible(s.x) {
            work += s.work
            nodes += 1
            return Search.Result(x: s.x, value: m.value(s.x), bound: r.bound, nodes: 1, complete: true)
        }
        work += s.work
        let all = [Bool](repeating: true, count: m.nD)
        var lift = [Bool](repeating: false, count: m.nN)
        return solve(node: 0, keep: all, lift: &lift, top: true)
    }

    /// The budget priced at the relaxation's multiplier λ: the priced problem is searched by parts
    /// (its optimum + λ × budget is a bound, tighter than the relaxation's), and its plan, made to
    /// keep the budget, is the incumbent of the search that enforces it.
    mutating func priceRestore() {
        let s = Search(m)
        let (lambda0, _) = s.lagrangeMultiplier()
        work += s.work
        guard lambda0 > 0 else { return }
        // Multipliers from the relaxation's, bisecting on the priced plans' restore use: each priced
        // optimum (+ λ × budget) is a bound, each one repaired a plan. One (`priceSteps`): on the
        // knapsack-like sites of the exactness sweep the relaxation's own multiplier gave the best
        // bound every time, and the work of more steps (each repair alone is an exact continuous
        // plan) is better spent in the search and in `swapStarts`.
        var lambda = lambda0
        var lo = 0.0
        var hi = Double.infinity
        var best: (x: [Double], value: Double)? = nil
        var bound = Double.infinity
        let fixer = Search(m)
        for step in 0..<Self.priceSteps {
            // Half the budget at most, the repairs' work counted.
            let share = max(0, budget / 2 - work - fixer.work) / (Self.priceSteps - step)
            if share <= 0 { break }
            var sub = Decomposed(m.priced(lambda: lambda), budget: share, targetGap: targetGap)
            guard let r = sub.solve() else { break }
            work += sub.work
            nodes += sub.nodes
            bound = min(bound, r.bound + lambda * m.restoreLeft / 1000)
            if let x = fixer.repair(r.x, fixer.order(lambda: lambda)) {
                let v = m.value(x)
                if best == nil || v > best!.value { best = (x, v) }
            }
            if m.restoreUse(r.x) > m.restoreLeft + 1e-6 { lo = lambda } else { hi = lambda }
            lambda = hi.isFinite ? (lo + hi) / 2 : lambda * 2
        }
        work += fixer.work
        if let best {
            let x = priced.map { m.value($0.x) > best.value ? $0.x : best.x } ?? best.x
            priced = (x, max(bound, m.value(x)))
        }
    }

    /// Whole search over `keep` with the caps in `lift` removed (and the restore budget unless top).
    mutating func whole(_ keep: [Bool], _ lift: [Bool], top: Bool) -> Search.Result? {
        let sub = m.restricted(keep: keep, lift: lift, liftRestore: !top)
        let s = Search(sub)
        if top && m.restoreLeft.isFinite && keep.allSatisfy({ $0 }) && !pricedDone {
            pricedDone = true
            // The budget couples everything: price it first.
            let probe = Search(m)
            if let r0 = probe.relax(probe.order(0)), r0.used > m.restoreLeft + 1e-6 { priceRestore() }
            work += probe.work
        }
        let usePriced = top && keep.allSatisfy { $0 } && lift.allSatisfy { !$0 }
        // With the restore budget binding, keep some work for swapping starts at the end.
        let swaps = usePriced && priced != nil
        let r = s.run(
            workBudget: max(0, budget - work - (swaps ? budget / Self.swapShare : 0)), targetGap: targetGap, initial: usePriced ? priced?.x : nil,
            boundCap: usePriced ? priced?.bound ?? .infinity : .infinity)
        work += s.work
        guard var r else { return nil }
        nodes += r.nodes
        complete = complete && r.complete
        if swaps && !r.complete {
            let fixer = Search(m)
            if let better = fixer.swapStarts(r.x, workBudget: max(0, budget - work)) {
                r.x = better
                r.value = m.value(better)
                r.bound = max(r.bound, r.value)
            }
            work += fixer.work
            // Then the branch-and-bound again below the transformers where the plan is most in
            // doubt, with its own work budget on top of the search's.
            let lns = Search(m)
            if let better = lns.neighbourhoods(r.x, workBudget: Self.neighbourhoodBudget, count: Self.neighbourhoods) {
                r.x = better
                r.value = m.value(better)
                r.bound = max(r.bound, r.value)
            }
            work += lns.work
        }
        return r
    }

    mutating func solve(node n: Int, keep: [Bool], lift: inout [Bool], top: Bool) -> Search.Result? {
        // The parts below n: one per child subtree with devices to decide, and n's own devices.
        var parts: [(node: Int, keep: [Bool])] = []
        var own = keep
        for c in children[n] {
            let below = m.devices(below: c, among: keep)
            guard below.contains(true) else { continue }
            for d in 0..<m.nD where below[d] { own[d] = false }
            parts.append((c, below))
        }
        let ownHas = (0..<m.nD).contains { own[$0] && m.cls[$0] != .fixed }
        if parts.count + (ownHas ? 1 : 0) < 2 {
            if parts.count == 1 && !ownHas { return solve(node: parts[0].node, keep: parts[0].keep, lift: &lift, top: top) }
            return whole(keep, lift, top: top)
        }
        // Lift n's cap and every cap above it not lifted yet (and the budget): the parts are
        // independent; their plans must then keep those caps together.
        var shared: [Int] = []
        var a = n
        while a >= 0 {
            if !lift[a] {
                shared.append(a)
                lift[a] = true
            }
            a = m.nodeParent[a]
        }
        var x = m.x0
        var value = m.c0
        var bound = m.c0
        var ok = true
        for p in parts {
            guard let r = solve(node: p.node, keep: p.keep, lift: &lift, top: false) else {
                ok = false
                break
            }
            for d in 0..<m.nD where p.keep[d] { x[d] = r.x[d] }
            value += r.value - m.c0
            bound += r.bound - m.c0
        }
        if ok && ownHas {
            if let r = whole(own, lift, top: false) {
                for d in 0..<m.nD where own[d] { x[d] = r.x[d] }
                value += r.value - m.c0
                bound += r.bound - m.c0
            } else {
                ok = false
            }
        }
        for a in shared { lift[a] = false }
        // Do the parts' plans keep the limits that were lifted here?
        if ok {
            var load = [Double](repeating: 0, count: m.nN)
            for d in 0..<m.nD where keep[d] && x[d] != m.x0[d] {
                for k in Int(m.k0[d])..<Int(m.k1[d]) {
                    load[Int(m.path[k].node)] += (x[d] - m.x0[d]) * m.path[k].mult
                }
            }
            let capsFit = shared.allSatisfy { load[$0] <= max(0, m.resid0[$0]) + 1e-6 }
            let restoreFits = !(top && m.restoreLeft.isFinite && m.restoreUse(x) > m.restoreLeft + 1e-6)
            if capsFit && restoreFits { return Search.Result(x: x, value: value, bound: max(bound, value), nodes: 0, complete: true) }
        }
        guard var r = whole(keep, lift, top: top) else { return nil }
        if ok { r.bound = max(r.value, min(r.bound, bound)) }
        return r
    }
}

/// A binary max-heap of (bound, node), ties to the older node: deterministic.
struct MaxHeap {
    var keys: [Double] = []
    var ids: [Int] = []

    func better(_ i: Int, _ j: Int) -> Bool {
        keys[i] > keys[j] || (keys[i] == keys[j] && ids[i] < ids[j])
    }

    mutating func push(_ k: Double, _ id: Int) {
        keys.append(k)
        ids.append(id)
        var i = keys.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if better(i, p) {
                keys.swapAt(i, p)
                ids.swapAt(i, p)
                i = p
            } else {
                break
            }
        }
    }

    func peek() -> Double? { keys.first }

    mutating func pop() -> (Double, Int)? {
        guard !keys.isEmpty else { return nil }
        let top = (keys[0], ids[0])
        let last = keys.count - 1
        keys.swapAt(0, last)
        ids.swapAt(0, last)
        keys.removeLast()
        ids.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var b = i
            if l < keys.count && better(l, b) { b = l }
            if r < keys.count && better(r, b) { b = r }
            if b == i { break }
            keys.swapAt(i, b)
            ids.swapAt(i, b)
            i = b
        }
        return top
    }
}

extension Search {
    /// The restore budget's multiplier in the relaxation with nothing decided (the smallest λ at
    /// which greedy keeps the budget, by bisection), and the bound found on the way.
    func lagrangeMultiplier(iterations: Int = 30) -> (lambda: Double, bound: Double) {
        guard let r0 = relax(order(lambda: 0)) else { return (0, .infinity) }
        var best = r0.bound
        guard m.restoreLeft.isFinite, r0.used > m.restoreLeft + 1e-6 else { return (0, best) }
        var lo = 0.0
        var hi = 1.0
        var grow = 0
        while grow < 40 {
            guard let r = relax(order(lambda: hi)) else { return (hi, best) }
            best = min(best, r.bound)
            if r.used <= m.restoreLeft { break }
            lo = hi
            hi *= 4
            grow += 1
        }
        for _ in 0..<iterations {
            let mid = (lo + hi) / 2
            guard let r = relax(order(lambda: mid)) else { break }
            best = min(best, r.bound)
            if r.used > m.restoreLeft { lo = mid } else { hi = mid }
        }
        return (hi, best)
    }

    /// Makes the plan `xs` keep the restore budget: its started blocks (dropping those that earn
    /// least per kW until the rest fit), any other start block greedy in order `o` still fits,
    /// then the best continuous plan of those starts.
    func repair(_ xs: [Double], _ o: Order) -> [Double]? {
        for d in 0..<m.nD { dec[d] = 0 }
        var prealloc = 0.0
        var on: [Int] = []
        for b in m.binaries {
            let d = Int(b)
            if xs[d] > 1e-6 {
                dec[d] = 1
                on.append(d)
                prealloc += m.fRest[d] * m.ms[d]
            }
        }
        if m.restoreLeft.isFinite && prealloc > m.restoreLeft + 1e-6 {
            on.sort { m.fVal[$0] < m.fVal[$1] || (m.fVal[$0] == m.fVal[$1] && $0 > $1) }
            for d in on where m.fRest[d] > 0 {
                dec[d] = -1
                prealloc -= m.fRest[d] * m.ms[d]
                if prealloc <= m.restoreLeft + 1e-6 { break }
            }
        }
        // Starts that still fit, greedy; then the exact continuous part for the starts chosen.
        guard primal(o) else {
            for d in 0..<m.nD { dec[d] = 0 }
            return nil
        }
        for b in m.binaries { dec[Int(b)] = x[Int(b)] > 1e-6 ? 1 : -1 }
        let l = leaf()
        for d in 0..<m.nD { dec[d] = 0 }
        return l?.x
    }
}

extension Search {
    /// Local search for a plan under a binding restore budget. Four kinds of move, each with the
    /// devices below the leaves of the devices moved re-decided greedily and every other on/off
    /// choice kept:
    ///  - swap: start one device that is off (its start using the budget or not: a running block
    ///    turned off earlier starts again for free) and turn off one running block that shares its
    ///    nearest full cap (any running block when no cap on its path is full);
    ///  - trim to admit: start it alone, its start block placed first and the kW it needs given
    ///    up by the lowest-valued kW under that cap;
    ///  - trade: start it and turn off a block elsewhere that uses the budget, when the budget so
    ///    freed takes the start;
    ///  - drop: turn off one block that uses the budget, which then goes to ramp-ups (or to a
    ///    start in a later move: the budget couples the whole site).
    /// Moves are ranked by an estimate of what they earn, with the budget priced at its multiplier
    /// for the starting plan's on/off choice and each full cap at the value of the kW it could give
    /// up. Each is then a plan: greedy at that price with the budget enforced, the budget it
    /// leaves unspent filled in value order. The first plan that beats the plan is kept and the
    /// moves ranked again; when none does, the closest few are filled again at prices around the
    /// multiplier. Two thirds of the work for the greedy plans, a third for those refills, the
    /// exact continuous plan of the final on/off choice if the budget still has it. The budget's
    /// knapsack is where the search stops short; these are the moves that close it.
    func swapStarts(_ start: [Double], workBudget: Int) -> [Double]? {
        guard m.restoreLeft.isFinite else { return nil }
        var best = start
        var bestV = m.value(start)
        var improved = false
        // Residual room per node in the plan, to find each candidate's nearest full cap.
        func resid(_ x: [Double]) -> [Double] {
            var r = m.resid0
            for d in 0..<m.nD where x[d] != m.x0[d] {
                for k in Int(m.k0[d])..<Int(m.k1[d]) { r[Int(m.path[k].node)] -= (x[d] - m.x0[d]) * m.path[k].mult }
            }
            return r
        }
        func leafNode(_ d: Int) -> Int { Int(m.path[Int(m.k0[d])].node) }
        func under(_ d: Int, _ node: Int) -> Bool {
            (Int(m.k0[d])..<Int(m.k1[d])).contains { Int(m.path[$0].node) == node }
        }
        struct Move {
            /// Device started (-1: none) and device turned off (-1: none).
            var c: Int
            var b: Int
            var key: Double
        }
        func decideAsBest() {
            for d in 0..<m.nD { dec[d] = 0 }
            for b in m.binaries { dec[Int(b)] = best[Int(b)] > 1e-6 ? 1 : -1 }
        }
        var tried = Set<[Int32]>()
        // The budget's price for the starting plan's on/off choice: moves are ranked, and plans
        // filled, with each kW of restore use charged at it.
        let w0 = work
        decideAsBest()
        let lambda = lagrangeMultiplier(iterations: 12).lambda
        // The work of the exact continuous plan at the end (a guess): only if the budget has it.
        let leafCost = 2 * (work - w0)
        // Greedy at that price (and at prices around it), then what it leaves out (worth less
        // than the price per kW of budget, but more than nothing) in value order: the budget
        // left is spent, not lost.
        let o0 = order(lambda: 0)
        let orders = [1.0, 0.5, 0.8, 1.25, 2].map { f -> Order in
            var o = order(lambda: lambda * f)
            o.items += o0.items.filter { $0.key - lambda * f * $0.rf <= 0 }
            return o
        }
        let oL = orders[0]
        while work <= workBudget {
            let room = resid(best)
            let used = m.restoreUse(best)
            func net(_ d: Int) -> Double { m.fVal[d] - lambda * m.fRest[d] }
            // What a kW is worth at each node: the least net value ($/MWh) of the kW the plan could
            // give up there (continuous kW above a threshold); none: the node cannot give any.
            var mu = [Double](repeating: .infinity, count: m.nN)
            for d in 0..<m.nD where m.cls[d] != .fixed {
                let xd = best[d]
                let floor = m.cls[d] == .binary ? m.ms[d] : m.x0[d]
                guard xd > floor + 1e-6 else { continue }
                var v = Double.infinity
                for p in m.pStart[d]..<m.pStart[d + 1] where m.pa[p] < xd - 1e-9 && xd <= m.pb[p] + 1e-9 {
                    v = m.pv[p] - (m.pr[p] ? lambda : 0)
                }
                guard v.isFinite else { continue }
                for k in Int(m.k0[d])..<Int(m.k1[d]) where v < mu[Int(m.path[k].node)] { mu[Int(m.path[k].node)] = v }
            }
            // A running block's worth ($/h, net of the budget's price) and what its kW are worth at
            // its nearest full cap once freed.
            func worth(_ b: Int) -> Double { net(b) * best[b] / 1000 }
            func freed(_ b: Int) -> Double {
                for k in Int(m.k0[b])..<Int(m.k1[b]) where room[Int(m.path[k].node)] < 1 {
                    let u = mu[Int(m.path[k].node)]
                    return u.isFinite ? max(0, u) * best[b] / 1000 : 0
                }
                return 0
            }
            var moves: [Move] = []
            let running = m.binaries.map(Int.init).filter { best[$0] > 1e-6 }
            let restoreUsers = running.filter { m.fRest[$0] > 0 }
            // Each move ranked by an estimate of what it earns ($/h).
            for c32 in m.binaries where best[Int(c32)] <= 1e-6 && m.fVal[Int(c32)] > 0 {
                let c = Int(c32)
                let need = m.fRest[c] * m.ms[c]
                guard need <= m.restoreLeft + 1e-6 else { continue }
                // Its nearest full cap: the node where it would not fit.
                var node = -1
                for k in Int(m.k0[c])..<Int(m.k1[c]) where room[Int(m.path[k].node)] < m.ms[c] * m.path[k].mult - 1e-6 {
                    node = Int(m.path[k].node)
                    break
                }
                let gain = net(c) * m.ms[c] / 1000
                // Trim to admit: c's start block first, the kW it needs given up under its full cap.
                let trim = node < 0 ? 0 : (mu[node].isFinite ? max(0, mu[node]) * m.ms[c] / 1000 : .infinity)
                if need <= m.restoreLeft - used + 1e-6 || node >= 0 {
                    moves.append(Move(c: c, b: -1, key: gain - trim))
                }
                for b in running where node < 0 || under(b, node) {
                    let given = node < 0 ? 0 : (mu[node].isFinite ? max(0, mu[node]) * max(0, m.ms[c] - best[b]) / 1000 : 0)
                    let back = node < 0 ? freed(b) : (mu[node].isFinite ? max(0, mu[node]) * max(0, best[b] - m.ms[c]) / 1000 : 0)
                    moves.append(Move(c: c, b: b, key: gain - worth(b) - given + back))
                }
                if need > 0 {
                    for b in restoreUsers where node >= 0 && !under(b, node) {
                        if need > m.restoreLeft - used + m.fRest[b] * m.ms[b] + 1e-6 { continue }
                        moves.append(Move(c: c, b: b, key: gain - trim - worth(b) + freed(b)))
                    }
                }
            }
            for b in restoreUsers { moves.append(Move(c: -1, b: b, key: freed(b) - worth(b))) }
            moves.sort { $0.key > $1.key || ($0.key == $1.key && ($0.c, $0.b) < ($1.c, $1.b)) }
            var moved = false
            // Moves whose greedy plans come close: their exact continuous plans are tried after.
            var close: [(v: Double, on: [Int32])] = []
            // Half the work left for the greedy plans of the moves, then the exact continuous plans
            // of the closest ones.
            let quickLimit = work + 2 * max(0, workBudget - work) / 3
            for mv in moves {
                if work > quickLimit { break }
                // Decisions: as the plan, c on, b off; devices sharing c's or b's leaf re-decided.
                let leaves = [mv.c, mv.b].filter { $0 >= 0 }.map(leafNode)
                for d in 0..<m.nD { dec[d] = 0 }
                for b32 in m.binaries {
                    let d = Int(b32)
                    let shares = leaves.contains { under(d, $0) }
                    dec[d] = shares ? 0 : (best[d] > 1e-6 ? 1 : -1)
                }
                if mv.c >= 0 { dec[mv.c] = 1 }
                if mv.b >= 0 { dec[mv.b] = -1 }
                // Greedy at the budget's price with the budget enforced: a plan.
                guard primal(oL) else { continue }
                // The same on/off choice is tried once.
                let on = m.binaries.filter { x[Int($0)] > 1e-6 }
                if tried.contains(on) { continue }
                tried.insert(on)
                guard m.feasible(x) else { continue }
                let cand = x
                let v = m.value(x)
                if v > bestV + 1e-9 * max(1, abs(bestV)) {
                    best = cand
                    bestV = v
                    improved = true
                    moved = true
                    break
                }
                if v > bestV - 0.003 * max(1, abs(bestV)) { close.append((v, on)) }
            }
            if !moved {
                // The exact continuous plan of the closest moves' on/off choices.
                close.sort { $0.v > $1.v || ($0.v == $1.v && $0.on.lexicographicallyPrecedes($1.on)) }
                for c in close.prefix(16) {
                    if work > workBudget { break }
                    for d in 0..<m.nD { dec[d] = 0 }
                    for b in m.binaries { dec[Int(b)] = -1 }
                    for b in c.on { dec[Int(b)] = 1 }
                    for o in orders.dropFirst() where primal(o) && m.feasible(x) {
                        let v = m.value(x)
                        if v > bestV + 1e-9 * max(1, abs(bestV)) {
                            best = x
                            bestV = v
                            improved = true
                            moved = true
                            break
                        }
                    }
                    if moved { break }
                }
            }
            if !moved { break }
        }
        // The exact continuous plan of the final on/off choice.
        if improved && work + leafCost <= workBudget {
            decideAsBest()
            if let l = leaf(), l.value > bestV, m.feasible(l.x) { best = l.x }
        }
        for d in 0..<m.nD { dec[d] = 0 }
        return improved ? best : nil
    }
}

extension Search {
    /// The relaxation's bound with nothing decided: the smallest greedy(λ) + λ·budget found by
    /// growing λ until the budget holds, then bisecting. Any λ ≥ 0 gives a valid bound.
    func lagrangeBound(iterations: Int = 24) -> Double {
        guard let r0 = relax(order(lambda: 0)) else { return .infinity }
        var best = r0.bound
        guard m.restoreLeft.isFinite, r0.used > m.restoreLeft + 1e-6 else { return best }
        var lo = 0.0
        var hi = 1.0
        var grow = 0
        while grow < 40 {
            guard let r = relax(order(lambda: hi)) else { return best }
            best = min(best, r.bound)
            if r.used <= m.restoreLeft { break }
            lo = hi
            hi *= 4
            grow += 1
        }
        for _ in 0..<iterations {
            let mid = (lo + hi) / 2
            guard let r = relax(order(lambda: mid)) else { break }
            best = min(best, r.bound)
            if r.used > m.restoreLeft { lo = mid } else { hi = mid }
        }
        return best
    }
}
