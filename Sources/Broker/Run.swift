// One dispatch: the regimes (with a paid reduction, both sides of its baseline), the mandatory load,
// the exact or budgeted search, and the plan.

extension Engine {
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
}
