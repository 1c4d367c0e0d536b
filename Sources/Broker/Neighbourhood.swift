// Large-neighbourhood search for sites where the restore budget binds and the exact search stops at
// its work budget (issue 13). On the sweep's sites still short of the optimum, the better plan was
// a few on/off changes below one transformer (running blocks restarted, others turned off, a start
// dropped) that no single local move pays for: the branch-and-bound finds them once every other
// on/off choice is fixed as the plan has it.

extension Search {
    /// The branch-and-bound again with every on/off choice fixed as in `start` except those below
    /// one transformer (the root's child on a device's path), for the `count` transformers where
    /// the relaxation and the plan disagree most; the restore budget and every cap stay in force.
    /// The work left is shared among them. The best plan found if it beats `start`, else nil.
    func neighbourhoods(_ start: [Double], workBudget: Int, count: Int) -> [Double]? {
        var best = start
        var bestV = m.value(start)
        var improved = false
        // Each binary's transformer.
        var group = [Int](repeating: -1, count: m.nD)
        var groups: [Int] = []
        for b32 in m.binaries {
            let d = Int(b32)
            for k in Int(m.k0[d])..<Int(m.k1[d]) where m.nodeParent[Int(m.path[k].node)] == 0 {
                group[d] = Int(m.path[k].node)
            }
            if group[d] >= 0 && !groups.contains(group[d]) { groups.append(group[d]) }
        }
        guard !groups.isEmpty else { return nil }
        // Rank them by the start-block value ($/h) the relaxation places differently from the plan.
        for d in 0..<m.nD { dec[d] = 0 }
        var score = [Double](repeating: 0, count: m.nN)
        if bestRelax(from: 0) != nil {
            for b32 in m.binaries {
                let d = Int(b32)
                guard group[d] >= 0 else { continue }
                score[group[d]] += abs(x[d] - best[d]) * m.fVal[d] / 1000
            }
        }
        groups.sort { score[$0] > score[$1] || (score[$0] == score[$1] && $0 < $1) }
        let hoods = Array(groups.prefix(count))
        for (i, g) in hoods.enumerated() {
            // The first gets two thirds of the work left, the next what is then left (and so on).
            let left = max(0, workBudget - work)
            let share = i == hoods.count - 1 ? left : 2 * left / 3
            if share <= 0 { break }
            for d in 0..<m.nD { dec[d] = 0 }
            for b32 in m.binaries where group[Int(b32)] != g {
                dec[Int(b32)] = best[Int(b32)] > 1e-6 ? 1 : -1
            }
            // `run` leaves the fixed choices alone (it only sets and clears those it branches on).
            guard let r = run(workBudget: work + share, targetGap: 1e-7, initial: best) else { continue }
            if r.value > bestV + 1e-9 * max(1, abs(bestV)), m.feasible(r.x) {
                best = r.x
                bestV = r.value
                improved = true
            }
        }
        for d in 0..<m.nD { dec[d] = 0 }
        return improved ? best : nil
    }
}
