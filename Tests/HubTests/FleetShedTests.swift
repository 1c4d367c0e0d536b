// A fleet shed over time: caps from the allocation, confirmation from the sites' meters, re-allocation of a
// shortfall or a site that drops off, and nothing sent that a site's own rules would refuse.

@testable import Hub
import Testing

@Suite struct FleetShedTests {
    static let a = SiteKey(group: "ERCOT", edge: "a")
    static let b = SiteKey(group: "ERCOT", edge: "b")
    static let c = SiteKey(group: "ERCOT", edge: "c")

    static func inputs() throws -> [SiteKey: SiteShedInput] {
        [
            a: SiteShedInput(offer: try OfferCurve(steps: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)]), importKW: 30_000),
            b: SiteShedInput(offer: try OfferCurve(steps: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)]), importKW: 25_000),
            c: SiteShedInput(offer: try OfferCurve(steps: [OfferStep(mw: 15, dollarsPerHour: 300)]), importKW: 20_000),
        ]
    }

    func caps(_ actions: [FleetShedAction]) -> [SiteKey: Double] {
        actions.reduce(into: [:]) { out, a in if case let .cap(site, _, kw, _, _) = a { out[site] = kw } }
    }

    /// 40 MW: a's 20 MW at $10/MWh, c's 15 at $20, then b's 5 of 10 at $25. Caps = import at the start − share.
    @Test func capsAreTheImportAtTheStartLessEachShare() throws {
        var shed = FleetShed(id: "ercot-1", region: "ERCOT", targetMW: 40, until: 7200, reason: "utility call", periodS: 30)
        let actions = shed.start(now: 0, sites: try Self.inputs())
        #expect(caps(actions) == [Self.a: 10_000, Self.b: 20_000, Self.c: 5_000])
        for case let .cap(_, id, _, until, reason) in actions {
            #expect(id == "ercot-1-r1" && until == 7200)
            #expect(reason.hasPrefix("utility call (fleet shed ercot-1: "))
        }
        // Within the period nothing is re-checked; after it, every site on target: nothing sent.
        #expect(shed.tick(now: 10).isEmpty)
        shed.observe(site: Self.a, importKW: 10_000)
        shed.observe(site: Self.b, importKW: 20_050)  // 4.95 MW of 5: within the 0.1 MW tolerance
        shed.observe(site: Self.c, importKW: 5_000)
        #expect(shed.tick(now: 30).isEmpty)
        #expect(shed.summary[0] == "fleet shed ercot-1 in ERCOT: 40 MW until 7200; allocated 40 MW, metered 39.95 MW")
    }

    /// c delivers 9 of its 15 MW: it is held to 9, and the 6 MW go to the next cheapest, b's second 5 MW of its
    /// first step and 1 MW of a's second step.
    @Test func aShortfallIsReallocatedAfterAPeriod() throws {
        var shed = FleetShed(id: "s2", region: "ERCOT", targetMW: 40, until: 7200, reason: "call", periodS: 30)
        _ = shed.start(now: 0, sites: try Self.inputs())
        shed.observe(site: Self.a, importKW: 10_000)
        shed.observe(site: Self.b, importKW: 20_000)
        shed.observe(site: Self.c, importKW: 11_000)
        let actions = shed.tick(now: 30)
        let new = caps(actions)
        #expect(new[Self.c] == 11_000)  // held to the 9 MW it delivered
        #expect(new[Self.b] == 15_000)  // b: 10 MW
        #expect(new[Self.a] == 9_000)   // a: 21 MW
        #expect(actions.contains(.cancel(site: Self.c, eventID: "s2-r1")))
        #expect(abs((shed.allocation?.allocatedMW ?? 0) - 40) < 1e-9)
        for case let .cap(_, id, _, _, _) in actions { #expect(id == "s2-r2") }
    }

    @Test func aSiteThatDropsOffHasItsShareMovedAndNoNewCap() throws {
        var shed = FleetShed(id: "s3", region: "ERCOT", targetMW: 40, until: 7200, reason: "call", periodS: 30)
        _ = shed.start(now: 0, sites: try Self.inputs())
        shed.observe(site: Self.a, importKW: 10_000)
        shed.observe(site: Self.b, importKW: 20_000)
        shed.dropped(site: Self.c)
        let actions = shed.tick(now: 30)
        #expect(caps(actions)[Self.c] == nil)
        #expect(actions.contains(.cancel(site: Self.c, eventID: "s3-r1")))
        // 40 MW over a and b alone: a 30 (all it offers), b 10.
        #expect(caps(actions) == [Self.a: 0, Self.b: 15_000])
        #expect(shed.summary.contains("ERCOT/c: share 0 MW, metered 0 MW, offline"))
        // At the end nothing is sent: the caps expire at the sites.
        #expect(shed.tick(now: 7200).isEmpty)
    }

    /// A cap the site would refuse (the shed's end already past) is not sent, and the summary says why.
    @Test func nothingIsSentThatTheSiteWouldRefuse() throws {
        var shed = FleetShed(id: "s4", region: "ERCOT", targetMW: 5, until: 100, reason: "late call", periodS: 30)
        let actions = shed.start(now: 200, sites: try Self.inputs())
        #expect(actions.isEmpty)
        #expect(shed.refused[Self.a] == "until must be after from")
        #expect(shed.summary.contains("ERCOT/a: share 5 MW, metered 0 MW, cap not sent: until must be after from"))
    }
}
