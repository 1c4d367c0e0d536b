// The exact LP of a regional shed (TestSupport.Simplex, which shares no code with the allocator's greedy), for
// AllocationTests' random regions and FleetDR40Tests' 40 simulated sites.

@testable import Hub
import TestSupport

enum ShedLP {
    /// One variable per pooled step, 0 ≤ y ≤ its MW, Σ over a site ≤ its limit, Σ y ≤ target; maximise
    /// Σ (M − rate)·y with M above every rate, so it sheds min(target, offered) at least cost. The MW shed, the $/h
    /// lost, and each site's MW.
    static func optimum(targetMW: Double, offers: [SiteKey: OfferCurve], limits: [SiteKey: ShedLimit] = [:])
        -> (mw: Double, dollarsPerHour: Double, shares: [SiteKey: Double]) {
        let sites = offers.keys.sorted()
        var rates: [Double] = [], upper: [Double] = [], owner: [Int] = []
        for (k, s) in sites.enumerated() {
            for step in offers[s]!.convex { rates.append(step.dollarsPerMWh); upper.append(step.mw); owner.append(k) }
        }
        let big = (rates.max() ?? 0) + 1000
        var A: [[Double]] = [[Double](repeating: 1, count: rates.count)]
        var bounds = [targetMW]
        for (k, s) in sites.enumerated() {
            guard let l = limits[s] else { continue }
            A.append(owner.map { $0 == k ? 1 : 0 })
            bounds.append(l.mw)
        }
        let y = Simplex.maximize(c: rates.map { big - $0 }, A: A, b: bounds, upper: upper)
        var shares: [SiteKey: Double] = [:]
        for (i, v) in y.enumerated() { shares[sites[owner[i]], default: 0] += v }
        return (y.reduce(0, +), zip(y, rates).reduce(0.0) { $0 + $1.0 * $1.1 }, shares)
    }
}
