// Issue 12 §7 "No price yet": the last known price, else economics.fallback_price_usd_per_mwh,
// else mining held at its current level; the report (and so the tick line) says which.

import Foundation
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

@Suite("No price yet", .serialized)
struct NoPriceTests {
    /// The only price point is an hour ahead, and it is a spike: before, the loop took the first (future)
    /// point as today's price and shed mining on it. Now mining holds where it is, and says why.
    @Test func noPriceAtAllHoldsMining() async throws {
        let rig = try GatedRig.make(yaml: hilSiteYAML, file: "hil.yaml", prices: [(t0 + 3600, 900)])
        var t = t0
        var last: TickReport?
        for _ in 0..<5 { last = await rig.tick(t); t += 1 }
        let r = try #require(last)
        #expect(r.priceBasis == .none)
        #expect(rig.miningSetpoints().allSatisfy { $0 > 950 }, "mining moved on a made-up price: \(rig.miningSetpoints())")
        #expect(r.interventions.contains { $0.contains("mining held at its current level") }, "\(r.interventions)")
        #expect(rig.loop.persistentState.lastPrice == nil)
        // The price arrives: the loop follows it, and remembers it.
        rig.source.update { $0.energyPrices = [PricePoint(at: t, usdPerMWh: 900)] }
        for _ in 0..<3 { last = await rig.tick(t); t += 1 }
        #expect(last?.priceBasis == .series)
        #expect(rig.miningSetpoints() == [0, 0, 0])
        #expect(rig.loop.persistentState.lastPrice?.usdPerMWh == 900)
    }

    /// The site file's fallback price is used while nothing else is known.
    @Test(arguments: [(500.0, true), (40.0, false)])
    func fallbackPriceFromTheSiteFile(price: Double, curtailed: Bool) async throws {
        let yaml = hilSiteYAML.replacingOccurrences(of: "economics:\n", with: "economics:\n  fallback_price_usd_per_mwh: \(price)\n")
        let site = try Site.parse(yaml: yaml, file: "hil.yaml")
        #expect(site.economics.fallbackPriceUsdPerMWh == price)
        let rig = try GatedRig.make(yaml: yaml, file: "hil.yaml", prices: [])
        var t = t0
        var last: TickReport?
        for _ in 0..<4 { last = await rig.tick(t); t += 1 }
        let r = try #require(last)
        #expect(r.priceBasis == .fallback(usdPerMWh: price))
        #expect(r.priceUsdPerMWh == price)
        #expect(curtailed ? rig.miningSetpoints() == [0, 0, 0] : rig.miningSetpoints().allSatisfy { $0 > 500 }, "\(rig.miningSetpoints())")
    }

    /// A feed whose points all lie ahead (it replaced its series): the last price a tick used still holds,
    /// also for a loop resumed from the saved state (a restart), and the report says where it came from.
    @Test func lastKnownPriceCarriesOn() async throws {
        let rig = try GatedRig.make(yaml: hilSiteYAML, file: "hil.yaml", prices: [(t0 - 60, 500)])
        var t = t0
        for _ in 0..<3 { await rig.tick(t); t += 1 }
        #expect(rig.miningSetpoints() == [0, 0, 0])
        rig.source.update { $0.energyPrices = [PricePoint(at: t + 3600, usdPerMWh: 20)] }
        let r = await rig.tick(t)
        #expect(r.priceBasis == .lastKnown(usdPerMWh: 500, at: t - 1))
        #expect(r.priceUsdPerMWh == 500)
        #expect(rig.miningSetpoints() == [0, 0, 0], "the future $20 was taken as today's price")
        let saved = rig.loop.persistentState
        let restarted = try ControlLoop(site: rig.loop.site, profiles: rig.profiles, buses: [:], signals: rig.source, restoring: saved)
        #expect(restarted.persistentState.lastPrice == LastPrice(usdPerMWh: 500, at: t - 1))
    }

    @Test(arguments: [("fallback_price_usd_per_mwh: cheap", "number"), ("fallback_price_usd_per_mwh: 20000", "-1000…10000")])
    func badFallbackPriceIsALocatedError(line: String, says: String) throws {
        let yaml = hilSiteYAML.replacingOccurrences(of: "economics:\n", with: "economics:\n  \(line)\n")
        do {
            _ = try Site.parse(yaml: yaml, file: "hil.yaml")
            Issue.record("accepted \(line)")
        } catch {
            let lineNo = yaml.components(separatedBy: "\n").firstIndex { $0.contains("fallback_price") }! + 1
            #expect(error.file == "hil.yaml" && error.line == lineNo, "\(error)")
            #expect(error.message.contains("fallback_price_usd_per_mwh") && error.message.contains(says), "\(error.message)")
        }
    }
}
