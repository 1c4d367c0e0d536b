// Improving on the greedy: the budgeted search above 300 devices, the restore multiplier, local moves
// over whole start blocks.

extension Engine {
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
}
