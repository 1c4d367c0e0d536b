// From the engine's state to the plan: node loads and the infeasible plan.

extension Engine {
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
