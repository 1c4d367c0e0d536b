// The greedy pass: blocks of constant value, taken in value order under every cap and the restore budget.

extension Engine {
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
}
