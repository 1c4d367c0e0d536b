import Basics
import Broker
import Foundation
import struct Signals.ContractCalendar
import Site
import Testing
@testable import Control

/// serve's loop resolves contracts in their own time zone, DST aware (the kind replay uses): a contract's
/// must-run applies at the local time on both sides of a DST change. Before the one signals vocabulary, serve
/// knew only UTC daily windows, so a 14:00–22:00 window could not follow Chicago across 2026-03-08.
@Suite("Contracts in a DST zone, in serve's signal source")
struct ContractTimeZoneTests {
    static let site = """
        site: {id: dst, import_limit_kw: 5000, safety_margin_kw: 0}
        tree:
          id: site
          cap_kw: 5000
        devices:
          - id: gpu-1
            class: inference
            node: site
            address: {tcp: "127.0.0.1:15021"}
            limits: {max_kw: 1000}
            gpus: 800
            kw_per_gpu: 1.25
        economics:
          inference_spot: {usd_per_gpu_hour: 0.2}
        contracts:
          - id: local
            devices: [gpu-1]
            committed_kw: 600
            rate_usd_per_mwh: 200
            penalty_usd_per_mwh: 300
            daily: {from: "14:00", to: "22:00", time_zone: America/Chicago}
          - id: utc
            devices: [gpu-1]
            committed_kw: 100
            rate_usd_per_mwh: 150
            penalty_usd_per_mwh: 250
            daily: {from: "22:00", to: "02:00"}
        """

    static func source(calendar: String? = nil) throws -> SiteSignalSource {
        let site = try Site.parse(yaml: Self.site, file: "dst.yaml")
        var signals = SiteSignals()
        signals.energyPrices = [PricePoint(at: ISO8601.parse("2026-03-01T00:00:00Z")!, usdPerMWh: 40)]
        if let calendar {
            // As `serve --contracts`: a calendar's contracts, in the calendar's zone.
            signals.contracts = try ContractCalendar.parse(calendar, name: "cal.yaml").contracts
        }
        return try SiteSignalSource(site: site, signals: signals)
    }

    static func committed(_ s: SiteSignalSource, _ iso: String) -> [String: Double] {
        let sig = s.signals(at: ISO8601.parse(iso)!)
        return Dictionary(sig.commitments.map { ($0.contractID, $0.committedKw) }, uniquingKeysWith: +)
    }

    @Test func aSiteFileWindowFollowsLocalTimeAcrossSpringForward() throws {
        let s = try Self.source()
        // Saturday 2026-03-07, CST (UTC−6): 14:00–22:00 local is 20:00Z–04:00Z.
        #expect(Self.committed(s, "2026-03-07T19:30:00Z")["local"] == nil)  // 13:30 CST
        #expect(Self.committed(s, "2026-03-07T20:30:00Z")["local"] == 600)  // 14:30 CST
        #expect(Self.committed(s, "2026-03-08T03:30:00Z")["local"] == 600)  // 21:30 CST
        #expect(Self.committed(s, "2026-03-08T04:30:00Z")["local"] == nil)  // 22:30 CST
        // Monday 2026-03-09, CDT (UTC−5): the same local hours are 19:00Z–03:00Z.
        #expect(Self.committed(s, "2026-03-09T18:30:00Z")["local"] == nil)  // 13:30 CDT
        #expect(Self.committed(s, "2026-03-09T19:30:00Z")["local"] == 600)  // 14:30 CDT
        #expect(Self.committed(s, "2026-03-10T02:30:00Z")["local"] == 600)  // 21:30 CDT
        #expect(Self.committed(s, "2026-03-10T03:30:00Z")["local"] == nil)  // 22:30 CDT
    }

    @Test func aUTCDailyWindowKeepsItsMeaningAcrossTheChange() throws {
        let s = try Self.source()
        // 22:00–02:00 UTC, wrapping midnight, on both sides of the change and on the day itself.
        for day in ["2026-03-07", "2026-03-08", "2026-03-09"] {
            #expect(Self.committed(s, "\(day)T21:59:59Z")["utc"] == nil)
            #expect(Self.committed(s, "\(day)T22:00:00Z")["utc"] == 100)
            #expect(Self.committed(s, "\(day)T23:59:00Z")["utc"] == 100)
        }
        #expect(Self.committed(s, "2026-03-09T01:59:59Z")["utc"] == 100)
        #expect(Self.committed(s, "2026-03-09T02:00:00Z")["utc"] == nil)
    }

    @Test func aCalendarContractIsValuedAtSpotInItsZone() throws {
        let s = try Self.source(calendar: """
            time_zone: America/Chicago
            contracts:
              - id: cal
                devices: [gpu-1]
                committed_kw: 300
                penalty_usd_per_mwh_short: 500
                weekly: [{days: [mon], from: "08:00", until: "09:00"}]
            """)
        // Monday 08:30 local: 14:30Z before the change (2026-03-02, CST), 13:30Z after it (2026-03-09, CDT).
        #expect(Self.committed(s, "2026-03-02T14:30:00Z")["cal"] == 300)
        #expect(Self.committed(s, "2026-03-02T13:30:00Z")["cal"] == nil)
        #expect(Self.committed(s, "2026-03-09T13:30:00Z")["cal"] == 300)
        #expect(Self.committed(s, "2026-03-09T14:30:00Z")["cal"] == nil)
        // No rate in a calendar: the device's spot value, $0.2/GPU-h at 1.25 kW per GPU = $160/MWh.
        let c = s.signals(at: ISO8601.parse("2026-03-09T13:30:00Z")!).commitments.first { $0.contractID == "cal" }
        #expect(abs((c?.rateUsdPerMWh ?? 0) - 160) < 1e-9 && c?.penaltyUsdPerMWh == 500)
    }
}
