// Reasons and binding constraints, derived from the plan itself rather than from how it was found:
// which caps are full, how much restore budget is left, and for each device the comparison of
// value and price that decided it. Every comparison is printed so that it holds for the numbers it
// prints (Cmp), and each one is a fact about the plan: a cap named "binding" is full, a device named
// "does not fit" would not fit in the room left.

/// What the reasons need to know about the plan.
struct Facts: Sendable {
    var regime: Regime
    /// Room left under each node's cap in the plan's regime (the baseline caps the root below it).
    var resid: [Double]
    var load: [Double]
    var restoreUsed: Double
    /// `.infinity` without a restore rate.
    var restoreLeft: Double
    /// The root's cap in this regime is the paid reduction's baseline.
    var rootIsBaseline: Bool
}

extension Engine {
    /// A node cap or the restore budget counts as full within this many kW.
    static let tightKw = 0.05

    func facts(_ x: [Double], _ r: Regime) -> Facts {
        let load = nodeLoads(x)
        var resid = effCap
        var rootIsBaseline = false
        if r.below && r.rootCap < effCap[0] {
            resid[0] = r.rootCap
            rootIsBaseline = true
        }
        for n in 0..<nN { resid[n] -= load[n] }
        var used = 0.0
        for d in 0..<nD where status[d] == .free || status[d] == .forcedOn { used += max(0, x[d] - rampBase[d]) }
        return Facts(
            regime: r, resid: resid, load: load, restoreUsed: used,
            restoreLeft: restoreRate.isFinite ? restoreRate - used : .infinity, rootIsBaseline: rootIsBaseline)
    }

    func tight(_ n: Int, _ f: Facts) -> Bool { f.resid[n] <= Self.tightKw }

    /// The full cap closest to device d on its way to the root, or -2 for a spent restore budget
    /// when d would need it to rise; -1 when nothing limits it.
    func limiter(_ d: Int, _ x: Double, _ f: Facts) -> Int32 {
        for k in plant.pathStart[d]..<plant.pathStart[d + 1] where tight(plant.pathNodes[k], f) {
            return Int32(plant.pathNodes[k])
        }
        if f.restoreLeft <= Self.tightKw && x >= rampBase[d] - eps { return -2 }
        return -1
    }

    /// Why an off device's start block (or first kW) does not fit: the node with the least room
    /// for it, or -2 for the restore budget; -1 when it fits.
    func rejecter(_ d: Int, need: Double, _ f: Facts) -> (code: Int32, roomKw: Double) {
        var code: Int32 = -1
        var room = Double.infinity
        for k in plant.pathStart[d]..<plant.pathStart[d + 1] {
            let n = plant.pathNodes[k]
            let r = max(0, f.resid[n]) / plant.pathMult[k]
            if r < need - 1e-6 && r < room {
                room = r
                code = Int32(n)
            }
        }
        if code == -1 && f.restoreLeft.isFinite {
            let needRestore = max(0, need - rampBase[d])
            if f.restoreLeft < needRestore - 1e-6 { return (-2, max(0, f.restoreLeft)) }
        }
        return (code, room)
    }

    func capLabel(_ n: Int, _ f: Facts) -> String {
        if n == 0 && f.rootIsBaseline, let pr = sig.paidReduction {
            return "\(pr.label) baseline \(Fmt.mw(pr.baselineKw)) (paid \(Fmt.price(pr.usdPerMWh)) $/MWh below it)"
        }
        return capLabel(n)
    }

    func capLabel(_ n: Int) -> String {
        if n == 0 { return rootCapLabel }
        let lent = headroomLent.isEmpty || headroomLent[n] <= 0 ? "" : " + inference headroom \(Fmt.mw(headroomLent[n]))"
        return "\(plant.nodes[n].id) cap \(Fmt.mw(plant.nodes[n].capKw)) − margin \(Fmt.mw(plant.safetyMarginKw))" + lent
    }

    func limitText(_ code: Int32, _ f: Facts) -> String {
        if code >= 0 { return "\(capLabel(Int(code), f)) binding" }
        if code == -2 { return "site restore rate \(Fmt.mw(restoreRate))/tick used up" }
        return "no room"
    }

    // MARK: prices and values as printed terms

    /// What one kW of device d costs in the plan's regime: the price (the forecast start price for
    /// a start block), plus the DR payment forgone below a baseline, times its auxiliary load.
    func costPerKw(_ d: Int, _ f: Facts, start: Bool) -> Double {
        ((start && startPrice[d] > price ? startPrice[d] : price) + f.regime.extra) * plant.rootMult[d]
    }

    /// What a kW of device d earns ($/MWh) just below x: the start block's average for a start.
    func grossPerKw(_ d: Int, at x: Double) -> Double {
        let c = servedCommit(d)
        if status[d] == .free && minStable[d] > 0 && x <= minStable[d] + eps {
            let m = minStable[d]
            if c >= m - eps { return rate[d] + pen[d] }
            if c <= eps { return value[d] }
            return (c * (rate[d] + pen[d]) + (m - c) * value[d]) / m
        }
        return c > 0 && x <= c + eps ? rate[d] + pen[d] : value[d]
    }

    func cost(_ d: Int, _ f: Facts, start: Bool) -> (term: Term, note: String) {
        let forecast = start && startPrice[d] > price
        let base = forecast ? startPrice[d] : price
        let m = plant.rootMult[d]
        let total = costPerKw(d, f, start: start)
        var parts: [String] = []
        if f.regime.extra > 0 || m > 1 + 1e-9 {
            var comp = Fmt.price(base)
            if f.regime.extra > 0 { comp += " + DR payment \(Fmt.price(f.regime.extra)) forgone below the baseline" }
            if m > 1 + 1e-9 { comp += (f.regime.extra > 0 ? ", " : "") + " + \(Fmt.price((m - 1) * 100))% auxiliary load" }
            parts.append(comp.replacingDoubleSpace())
        }
        if forecast {
            parts.append("average over its \(Fmt.seconds(plant.minOnS[d])) minimum on time; price now \(Fmt.price(price))")
        }
        let note = parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")"
        return (Term(forecast ? "forecast price" : "price", total), note)
    }

    func valueTerms(_ d: Int) -> [Term] {
        [Term(plant.isMining[d] ? "mining value" : "inference value", value[d])]
    }

    func commitTerms(_ d: Int) -> [Term] { [Term("rate", rate[d]), Term("penalty", pen[d])] }

    /// What a kW just below `x` earns ($/MWh, penalty avoided included), as printed terms.
    func grossTerms(_ d: Int, at x: Double) -> (terms: [Term], value: Double, note: String) {
        let c = servedCommit(d)
        if status[d] == .free && minStable[d] > 0 && x <= minStable[d] + eps {
            // The start block: its average.
            let m = minStable[d]
            if c >= m - eps { return (commitTerms(d), rate[d] + pen[d], "") }
            if c <= eps { return (valueTerms(d), value[d], "") }
            let avg = (revenueIntegral(d, 0, m) + pen[d] * c / 1000) * 1000 / m
            let note = " (rate + penalty on \(Fmt.power(c)), \(plant.isMining[d] ? "mining" : "inference") value on \(Fmt.power(m - c)))"
            return ([Term("start block average", avg)], avg, note)
        }
        if c > 0 && x <= c + eps { return (commitTerms(d), rate[d] + pen[d], "") }
        return (valueTerms(d), value[d], "")
    }

    /// "value V > price P $/MWh (note)" for the kW just below x (or the first kW above it).
    func econ(_ d: Int, at x: Double, _ f: Facts, valueFirst: Bool = true) -> String {
        let g = grossTerms(d, at: x)
        let isStart = status[d] == .free && minStable[d] > 0 && x <= minStable[d] + eps
        let c = cost(d, f, start: isStart)
        let cmp = valueFirst ? Cmp.text(g.terms, [c.term], tie: "=") : Cmp.text([c.term], g.terms, tie: "=")
        return cmp + g.note + c.note
    }

    /// Net value per kW ($/MWh) of the kW just above x in the plan's regime.
    func nextKey(_ d: Int, above x: Double, _ f: Facts) -> Double {
        let c = servedCommit(d)
        let gross = c > 0 && x < c - eps ? rate[d] + pen[d] : value[d]
        return gross - (price + f.regime.extra) * plant.rootMult[d]
    }

    // MARK: reasons

    func strikeText() -> String {
        guard let s = sig.strike else { return "curtailed" }
        switch strikeState {
        case .atStrike, .none:
            return "curtailed: " + Cmp.text([Term("price", price)], [Term("strike", s.strikeUsdPerMWh)], prefer: "≥")
        case .hysteresis:
            return "curtailed: strike hysteresis, "
                + Cmp.text(
                    [Term("price", price)], [Term("strike", s.strikeUsdPerMWh), Term("hysteresis", s.hysteresisUsdPerMWh, minus: true)],
                    prefer: "≥")
        case .minOff:
            return
                "curtailed: strike minimum off time, \(Fmt.seconds(s.minOffS - snap.miningCurtailedForS)) left ("
                + Cmp.text(
                    [Term("price", price)], [Term("strike", s.strikeUsdPerMWh), Term("hysteresis", s.hysteresisUsdPerMWh, minus: true)])
                + ")"
        }
    }

    /// The strike rule's state for the plan; nil when it does not curtail.
    func strikeStatus() -> StrikeStatus? {
        guard let s = sig.strike else { return nil }
        let hold: StrikeHold
        switch strikeState {
        case .none: return nil
        case .atStrike: hold = .atStrike
        case .hysteresis: hold = .hysteresis
        case .minOff: hold = .minOffTime
        }
        let curtailedFor = snap.miningCurtailed ? snap.miningCurtailedForS : 0
        return StrikeStatus(hold: hold, priceUsdPerMWh: price, policy: s, minOffLeftS: max(0, s.minOffS - curtailedFor),
                            reason: strikeText())
    }

    /// Devices held by their dwell: forced on inside their minimum on time, forced off inside their minimum off time.
    func dwellHolds() -> [DwellHold] {
        var out: [DwellHold] = []
        for d in 0..<nD {
            if status[d] == .forcedOn {
                out.append(DwellHold(device: d, kind: .minOn, leftS: max(0, plant.devices[d].minOnS - snap.devices[d].stateForS)))
            } else if status[d] == .forcedOff && offWhy[d] == .minOff {
                out.append(DwellHold(device: d, kind: .minOff, leftS: max(0, plant.devices[d].minOffS - snap.devices[d].stateForS)))
            }
        }
        return out
    }

    func pinnedText(_ d: Int) -> String {
        let st = snap.devices[d]
        if !st.inSnapshot {
            return "not in the snapshot: budgeted at max \(Fmt.power(held[d])); not commanded"
        }
        if st.measuredKw != nil {
            return "unavailable: last known draw \(Fmt.power(held[d])) held in the budget; not commanded"
        }
        return "unavailable: no measured draw, its setpoint \(Fmt.power(held[d])) held in the budget; not commanded"
    }

    func reason(_ d: Int, _ x: Double, _ f: Facts) -> String {
        let spec = plant.devices[d]
        var contract = ""
        if let c = contractLabel[d] {
            contract =
                "contract \(c) (\(Fmt.power(commitKw[d])) committed at \(Fmt.price(rate[d])) $/MWh, penalty \(Fmt.price(pen[d]))): "
            if spotOverContract[d] {
                contract += Cmp.text(valueTerms(d), commitTerms(d), tie: "=") + ", selling spot and paying the penalty; "
            }
        }
        switch status[d] {
        case .pinned:
            return pinnedText(d)
        case .forcedOff:
            let off: String
            switch offWhy[d] {
            case .minOff: off = "off: minimum off time, \(Fmt.seconds(spec.minOffS - snap.devices[d].stateForS)) left"
            case .strike: off = strikeText()
            case .stale: off = "off: stale data (\(Fmt.seconds(snap.devices[d].dataAgeS)) old), not started"
            case .cannotReachMinStable: off = "off: cannot reach min-stable \(Fmt.power(minStable[d])) this tick"
            case .none: off = "off"
            }
            return contract + off
        case .forcedOn:
            let held = "held on at min-stable \(Fmt.power(x)): minimum on time, \(Fmt.seconds(spec.minOnS - snap.devices[d].stateForS)) left; "
            if offWhy[d] == .strike { return contract + held + strikeText() }
            if x <= lo[d] + eps {
                if hi[d] <= lo[d] + eps { return contract + held + "no ramp-up possible" }
                if nextKey(d, above: x, f) <= 0 {
                    let c = cost(d, f, start: false)
                    let g = grossTerms(d, at: x + 2 * eps)
                    return contract + held + Cmp.text([c.term], g.terms, tie: "=") + g.note + c.note
                }
                let lim = limiter(d, x, f)
                return contract + held + (lim != -1 ? limitText(lim, f) : econ(d, at: x, f))
            }
        case .free:
            break
        }
        let mining = plant.isMining[d]
        if x <= eps {
            let verb = mining ? "curtailed" : "idle"
            let isBinary = minStable[d] > 0
            // Would its first kW (its whole start block) pay?
            let g = grossTerms(d, at: isBinary ? minStable[d] : eps)
            let c = cost(d, f, start: isBinary)
            if g.value - c.term.value <= 0 {
                return contract + "\(verb): " + Cmp.text([c.term], g.terms, tie: "=") + g.note + c.note
            }
            if isBinary {
                let (code, room) = rejecter(d, need: minStable[d], f)
                if code >= 0 {
                    return contract + "off: min-stable \(Fmt.power(minStable[d])) does not fit (\(capLabel(Int(code), f)): "
                        + Cmp.text([Term("room", room)], [Term("", minStable[d])], unit: "", style: .kw) + ")"
                }
                if code == -2 {
                    let need = max(0, minStable[d] - rampBase[d])
                    return contract + "off: min-stable \(Fmt.power(minStable[d])) does not fit (site restore rate \(Fmt.mw(restoreRate))/tick: "
                        + Cmp.text([Term("left", room)], [Term("", need)], unit: "", style: .kw) + " of ramp-up)"
                }
                return contract + "\(verb): not started (" + Cmp.text(g.terms, [c.term], tie: "=") + g.note + c.note + ")"
            }
            let lim = limiter(d, x, f)
            if lim != -1 { return contract + "off: \(limitText(lim, f)); " + econ(d, at: eps, f) }
            return contract + "\(verb): " + econ(d, at: eps, f)
        }
        if x >= spec.maxKw - eps { return contract + "full \(Fmt.power(x)): " + econ(d, at: x, f) }
        if x < hi[d] - eps && nextKey(d, above: x, f) > 0 {
            let lim = limiter(d, x, f)
            if lim != -1 {
                return contract + "\(Fmt.power(x)) of \(Fmt.power(spec.maxKw)): \(limitText(lim, f)); " + econ(d, at: x, f)
            }
        }
        if x >= hi[d] - eps && stale[d] {
            return contract
                + "held at \(Fmt.power(x)): stale data (\(Fmt.seconds(snap.devices[d].dataAgeS)) old), no ramp-up; " + econ(d, at: x, f)
        }
        if x >= hi[d] - eps && rampLimited[d] {
            let from = rampBase[d]
            return contract
                + "ramping \(Fmt.power(from)) → \(Fmt.power(x)) (ramp \(Fmt.price(spec.rampKwPerS)) kW/s × \(Fmt.seconds(plant.tickSeconds))); "
                + econ(d, at: x, f)
        }
        if x < hi[d] - eps && nextKey(d, above: x, f) <= 0 {
            // It stops where the next kW no longer pays.
            let c = cost(d, f, start: false)
            let g = grossTerms(d, at: x + 2 * eps)
            let above = Cmp.text(g.terms, [c.term], tie: "=")
            let at = servedCommit(d) > 0 && abs(x - servedCommit(d)) <= eps ? "at its commitment" : "\(Fmt.power(x)) of \(Fmt.power(spec.maxKw))"
            return contract + "\(at): " + econ(d, at: x, f) + "; above it " + above
        }
        return contract + "\(Fmt.power(x)) of \(Fmt.power(spec.maxKw)): " + econ(d, at: x, f)
    }

    // MARK: the plan

    func bindingTexts(_ x: [Double], _ f: Facts) -> [String] {
        var binding: [String] = []
        // Start blocks worth starting that do not fit, by the node (or -2: restore) that refuses them.
        var refused: [Int32: (d: Int, room: Double)] = [:]
        for d in plant.byRank where status[d] == .free && minStable[d] > 0 && x[d] <= eps {
            guard grossPerKw(d, at: minStable[d]) > costPerKw(d, f, start: true) else { continue }
            let (code, room) = rejecter(d, need: minStable[d], f)
            guard code != -1 else { continue }
            if let r = refused[code], minStable[r.d] <= minStable[d] { continue }
            refused[code] = (d, room)
        }
        for n in 0..<nN {
            if tight(n, f) {
                binding.append("\(capLabel(n, f)) binding (load \(Fmt.mw(f.load[n])))")
            } else if let r = refused[Int32(n)] {
                binding.append(
                    "\(capLabel(n, f)) binding: "
                        + Cmp.text([Term("room", r.room)], [Term("min-stable", minStable[r.d])], unit: "", style: .kw)
                        + " of \(plant.devices[r.d].id) (load \(Fmt.mw(f.load[n])))")
            }
        }
        if let pr = sig.paidReduction, pr.usdPerMWh > 0, !f.rootIsBaseline, abs(f.load[0] - pr.baselineKw) <= Self.tightKw {
            binding.append("\(pr.label) baseline \(Fmt.mw(pr.baselineKw)) binding (paid \(Fmt.price(pr.usdPerMWh)) $/MWh below it)")
        }
        if f.restoreLeft.isFinite {
            if f.restoreLeft <= Self.tightKw {
                binding.append("site restore rate \(Fmt.mw(restoreRate))/tick binding (ramp-up \(Fmt.mw(f.restoreUsed)))")
            } else if let r = refused[-2] {
                // Not spent, but too little left for a start block that would pay.
                let need = max(0, minStable[r.d] - rampBase[r.d])
                binding.append(
                    "site restore rate \(Fmt.mw(restoreRate))/tick binding: "
                        + Cmp.text([Term("left", r.room)], [Term("", need)], unit: "", style: .kw)
                        + " of ramp-up to start \(plant.devices[r.d].id) (ramp-up \(Fmt.mw(f.restoreUsed)))")
            }
        }
        return binding
    }

    func makePlan(
        _ xIn: [Double], regime: Regime, bound: Double, exact: Bool, complete: Bool, nodes: Int, keep: PassState? = nil
    ) -> DispatchPlan {
        var x = xIn
        for d in 0..<nD where abs(x[d]) < eps { x[d] = 0 }
        let f = facts(x, regime)
        let objectiveNow = objective(x)
        let planValue = objectiveNow.total - startSurcharge(x)
        let gap = max(0, bound - planValue)
        let share = gap / max(1, abs(bound))
        var optimality: String
        let within = "within $\(Fmt.fixed(gap, 2))/h (\(Fmt.fixed(share * 100, 3)) %) of the optimum (proven bound $\(Fmt.fixed(bound, 2))/h)"
        if exact {
            optimality = complete ? "exact search: \(within)" : "exact search, stopped at its work budget: \(within)"
        } else {
            optimality = "budgeted search (\(nD) devices > \(Broker.exactSearchMaxDevices)): \(within)"
        }
        if startSurcharge(hi) > 0 { optimality += "; objective with each start block at its start price" }
        return DispatchPlan(
            setpointsKw: x, commanded: status.map { $0 != .pinned }, objective: objectiveNow,
            binding: bindingTexts(x, f), feasible: true, infeasibleReason: nil, nodeLoadKw: f.load, nodeCapKw: effCap,
            miningCurtailed: curtailNow,
            valueUsdPerMWh: (0..<nD).map { servedCommit($0) > 0 ? rate[$0] : value[$0] },
            boundUsdPerH: bound, gapBoundUsdPerH: gap, exactSearch: exact, searchComplete: exact && complete,
            optimality: optimality, searchNodes: nodes, strike: strikeStatus(), dwell: dwellHolds(),
            explainer: .engine(self, f), kept: keep.map(Kept.init))
    }
}

/// A reference to the large search's last state (a class, so the plan stays small to copy).
final class Kept: Sendable {
    let state: PassState
    init(_ state: PassState) { self.state = state }
}

extension String {
    /// "a  b" → "a b" (a composed note may meet a leading space).
    fileprivate func replacingDoubleSpace() -> String {
        var out = ""
        var prevSpace = false
        for ch in self {
            if ch == " " && prevSpace { continue }
            prevSpace = ch == " "
            out.append(ch)
        }
        return out
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
