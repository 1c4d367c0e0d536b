// Fleet DR allocation against a hand computation and an exact LP (TestSupport.Simplex), which shares no code with
// the allocator's greedy.

import Foundation
@testable import Hub
import Testing
import TestSupport

@Suite struct AllocationTests {
    static let a = SiteKey(group: "ERCOT", edge: "site-a")
    static let b = SiteKey(group: "ERCOT", edge: "site-b")
    static let c = SiteKey(group: "ERCOT", edge: "site-c")

    static func curve(_ steps: [(Double, Double)]) throws -> OfferCurve {
        try OfferCurve(steps: steps.map { OfferStep(mw: $0.0, dollarsPerHour: $0.1) })
    }

    /// Three sites, 50 MW. By hand: a's 20 MW at $10/MWh, c's 15 MW at $20, b's 10 MW at $25 (45 MW so far), then
    /// the cheapest left is a's second step at $40: 5 of its 10 MW. a 25 MW ($200 + $200 = $400/h), b 10 MW ($250/h),
    /// c 15 MW ($300/h); $950/h in all; marginal $40/MWh.
    @Test func splitsByLeastValueLostPerMW() throws {
        let offers = [
            Self.a: try Self.curve([(20, 200), (10, 400)]),
            Self.b: try Self.curve([(10, 250), (10, 600)]),
            Self.c: try Self.curve([(15, 300), (5, 250)]),  // 20, then 50 $/MWh
        ]
        let r = FleetShedAllocator.allocate(targetMW: 50, offers: offers)
        #expect(abs(r.share(of: Self.a) - 25) < 1e-9)
        #expect(abs(r.share(of: Self.b) - 10) < 1e-9)
        #expect(abs(r.share(of: Self.c) - 15) < 1e-9)
        #expect(abs(r.dollarsPerHour - 950) < 1e-9)
        #expect(r.marginalDollarsPerMWh == 40)
        #expect(r.shortfallMW == 0)
        #expect(r.explanation == [
            "allocated 50 of 50 MW, losing $950/h; every MW allocated loses at most $40/MWh, every MW offered and not allocated at least that",
            "ERCOT/site-a: shed 25 MW, losing $400/h (last MW at $40/MWh)",
            "ERCOT/site-b: shed 10 MW, losing $250/h (last MW at $25/MWh)",
            "ERCOT/site-c: shed 15 MW, losing $300/h (last MW at $20/MWh)",
        ])
    }

    @Test func aTargetAboveWhatIsOfferedTakesEverythingAndSaysTheShortfall() throws {
        let offers = [Self.a: try Self.curve([(5, 50)]), Self.b: try Self.curve([])]
        let r = FleetShedAllocator.allocate(targetMW: 8, offers: offers)
        #expect(r.allocatedMW == 5)
        #expect(r.shortfallMW == 3)
        #expect(r.explanation.contains("short by 3 MW: the sites offered only 5 MW"))
        #expect(r.explanation.contains("ERCOT/site-b: nothing: it offers no MW"))
    }

    /// A later step cheaper than an earlier one cannot be shed first: the two are pooled (the lower convex hull).
    @Test func aCurveWhoseRateFallsIsPooled() throws {
        let c = try Self.curve([(10, 500), (10, 100), (5, 400)])  // 50, 10, 80 $/MWh
        #expect(c.convex == [OfferStep(mw: 20, dollarsPerHour: 600), OfferStep(mw: 5, dollarsPerHour: 400)])
        #expect(c.dollarsPerHourLost(sheddingMW: 10) == 300)
        #expect(c.dollarsPerHourLost(sheddingMW: 25) == 1000)
        let r = FleetShedAllocator.allocate(targetMW: 10, offers: [Self.a: c, Self.b: try Self.curve([(10, 320)])])
        #expect(r.share(of: Self.a) == 10)  // $30/MWh pooled beats b's $32
    }

    @Test func badStepsAreRefusedWithTheirPlace() {
        #expect(throws: OfferCurveError.step(index: 1, why: "MW must be positive and finite, not 0.0")) {
            try Self.curve([(1, 1), (0, 1)])
        }
        #expect(throws: OfferCurveError.step(index: 0, why: "$/h lost must be finite and not negative, not -1.0")) {
            try Self.curve([(1, -1)])
        }
        #expect("\(OfferCurveError.step(index: 1, why: "x"))" == "offer curve step 2: x")
    }

    /// A site that drops off is given nothing and its share moves to the next cheapest MW; one that delivered less
    /// than its share is held to what it delivered and the rest moves too.
    @Test func aShortfallIsReallocatedToTheOthers() throws {
        let offers = [
            Self.a: try Self.curve([(20, 200), (10, 400)]),
            Self.b: try Self.curve([(10, 250), (10, 600)]),
            Self.c: try Self.curve([(15, 300), (5, 250)]),
        ]
        let first = FleetShedAllocator.allocate(targetMW: 50, offers: offers)
        let gone = FleetShedAllocator.reallocate(first, offers: offers, deliveredMW: [:], offline: [Self.c])
        #expect(gone.share(of: Self.c) == 0)
        #expect(abs(gone.share(of: Self.a) - 30) < 1e-9 && abs(gone.share(of: Self.b) - 20) < 1e-9)
        #expect(gone.explanation.contains("ERCOT/site-c: nothing: held to 0 MW (offline)"))

        let short = FleetShedAllocator.reallocate(first, offers: offers, deliveredMW: [Self.b: 4, Self.a: 25, Self.c: 15], offline: [])
        #expect(abs(short.share(of: Self.b) - 4) < 1e-9)
        #expect(abs(short.allocatedMW - 50) < 1e-9)
        #expect(short.explanation.contains("ERCOT/site-b: shed 4 MW, losing $100/h (last MW at $25/MWh); held to 4 MW (delivered 4 of its 10 MW share)"))
    }

    /// Random regions (2–40 sites, 1–6 steps each, convex and not): the greedy's $/h equals the exact LP optimum
    /// over the pooled curves, the allocated MW is min(target, offered), and the marginal separates what was
    /// allocated from what was not.
    @Test func equalsTheExactLPOnRandomRegions() throws {
        var rng = SeededRandom(seed: 0x5EED_F1EE7)
        for instance in 0..<500 {
            let n = rng.int(2, 40)
            var offers: [SiteKey: OfferCurve] = [:]
            var limits: [SiteKey: ShedLimit] = [:]
            for i in 0..<n {
                let site = SiteKey(group: "R", edge: "s\(i)")
                let steps = (0..<rng.int(0, 6)).map { _ in
                    // Whole-dollar rates so that ties happen too.
                    OfferStep(mw: Double(rng.int(1, 40)) / 2, dollarsPerHour: 0) }
                    .map { OfferStep(mw: $0.mw, dollarsPerHour: $0.mw * Double(rng.int(0, 120))) }
                offers[site] = try OfferCurve(steps: steps)
                if rng.chance(0.1) { limits[site] = ShedLimit(mw: Double(rng.int(0, 20)), reason: "test") }
            }
            let offered = offers.reduce(0.0) { sum, e in sum + min(e.value.totalMW, limits[e.key]?.mw ?? .infinity) }
            let target = rng.range(0, offered * 1.2)
            let r = FleetShedAllocator.allocate(targetMW: target, offers: offers, limits: limits)

            let (lpMW, lpCost, _) = ShedLP.optimum(targetMW: target, offers: offers, limits: limits)

            #expect(abs(r.allocatedMW - min(target, offered)) < 1e-6, "instance \(instance)")
            #expect(abs(lpMW - r.allocatedMW) < 1e-6, "instance \(instance)")
            #expect(abs(lpCost - r.dollarsPerHour) <= 1e-6 * max(1, lpCost), "instance \(instance): LP \(lpCost), greedy \(r.dollarsPerHour)")
            for s in r.shares {
                #expect(s.mw <= min(offers[s.site]!.totalMW, limits[s.site]?.mw ?? .infinity) + 1e-9)
                // The share's $/h is the site's own curve at that share.
                #expect(abs(s.dollarsPerHour - offers[s.site]!.dollarsPerHourLost(sheddingMW: s.mw)) <= 1e-6 * max(1, s.dollarsPerHour))
                if let m = r.marginalDollarsPerMWh, s.mw > 1e-9 { #expect(s.marginalDollarsPerMWh <= m) }
            }
        }
    }

    /// The same offers in another dictionary order give the same allocation (ties are broken by site).
    @Test func isDeterministic() throws {
        var offers: [SiteKey: OfferCurve] = [:]
        for i in 0..<30 { offers[SiteKey(group: "R", edge: "s\(i)")] = try Self.curve([(5, 100), (5, 150)]) }
        let first = FleetShedAllocator.allocate(targetMW: 47, offers: offers)
        var reordered: [SiteKey: OfferCurve] = [:]
        for (k, v) in offers.reversed() { reordered[k] = v }
        #expect(FleetShedAllocator.allocate(targetMW: 47, offers: reordered) == first)
        // Equal rates: the first sites by name take the MW.
        #expect(first.share(of: SiteKey(group: "R", edge: "s0")) == 5)
    }
}
