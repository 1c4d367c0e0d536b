import Foundation
import Testing
@testable import Signals

@Suite("Manual events and contract calendars")
struct EventsAndContractsTests {
    @Test func loadsTheBundledManualEvents() throws {
        let events = try ManualEvents.load(path: example("events/demo-dr.yaml"))
        #expect(events.map(\.id) == ["op-2025-08-14-eea", "op-2025-08-15-maint"])
        #expect(events[0].capKW == 12000)
        #expect(events[0].start == date("2025-08-14T16:45:00-05:00"))
        #expect(events[0].end == date("2025-08-14T18:30:00-05:00"))
        #expect(events[0].origin == .manual)
        #expect(events[0].isActive(at: date("2025-08-14T18:29:59-05:00")))
        #expect(!events[0].isActive(at: date("2025-08-14T18:30:00-05:00")))
    }

    @Test func acceptsJSONAndOpenEndedEvents() throws {
        let events = try ManualEvents.parse(#"[{"id": "e1", "cap_kw": 500, "from": "2025-08-14T10:00:00Z", "reason": "test"}]"#, name: "e.json")
        #expect(events.count == 1)
        #expect(events[0].end == nil)
        #expect(events[0].isActive(at: date("2030-01-01T00:00:00Z")))
    }

    @Test(arguments: [
        ("events:\n  - id: a\n    cap_kw: -5\n    from: 2025-08-14T10:00:00Z\n", 3, "events[0].cap_kw", "must be ≥ 0"),
        ("events:\n  - id: a\n    cap_kw: 5\n    from: 2025-08-14T10:00:00Z\n    until: 2025-08-14T09:00:00Z\n", 5, "events[0].until", "must be after from"),
        ("events:\n  - id: a\n    cap_kw: 5\n", 2, "events[0]", "missing key \"from\""),
        ("events:\n  - id: a\n    cap_kw: 5\n    from: 2025-08-14 10:00\n", 4, "events[0].from", "with an offset"),
        ("events:\n  - id: a\n    cap_kw: 5\n    from: 2025-08-14T10:00:00Z\n    colour: red\n", 5, "events[0].colour", "unknown key"),
        ("events:\n  - id: a\n    cap_kw: 5\n    from: 2025-08-14T10:00:00Z\n  - id: a\n    cap_kw: 6\n    from: 2025-08-14T10:00:00Z\n",
         5, "events[1]", "used twice"),
        ("events:\n  - id: a\n    cap_kw: five\n    from: 2025-08-14T10:00:00Z\n", 3, "events[0].cap_kw", "not a number"),
    ] as [(String, Int, String, String)])
    func manualEventErrors(text: String, line: Int, keyPath: String, fragment: String) {
        let e = signalsError { _ = try ManualEvents.parse(text, name: "dr.yaml") }
        #expect(e?.source.line == line, "\(String(describing: e))")
        #expect(e?.source.keyPath == keyPath, "\(String(describing: e))")
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
        #expect(e?.description.hasPrefix("dr.yaml:\(line): error: at \(keyPath): ") == true, "\(String(describing: e))")
    }

    @Test func weeklyContractWindowsFollowLocalTime() throws {
        let cal = try ContractCalendar.load(path: example("contracts/demo-contracts.yaml"))
        #expect(cal.timeZone.identifier == "America/Chicago")
        // Thursday 2025-08-14 09:00 CDT: inference contract active.
        let thu = cal.active(at: date("2025-08-14T09:00:00-05:00"))
        #expect(thu.map(\.contractID) == ["inference-acme"])
        #expect(thu.first?.start == date("2025-08-14T08:00:00-05:00"))
        #expect(thu.first?.end == date("2025-08-14T20:00:00-05:00"))
        #expect(thu.first?.committedKW == 1800)
        #expect(cal.active(at: date("2025-08-14T20:00:00-05:00")).isEmpty)
        // Saturday: the explicit window, then the overnight window into Sunday.
        #expect(cal.active(at: date("2025-08-16T11:00:00-05:00")).map(\.contractID) == ["batch-overnight"])
        let sunMorning = cal.active(at: date("2025-08-17T05:59:00-05:00"))
        #expect(sunMorning.map(\.start) == [date("2025-08-16T22:00:00-05:00")])
        // Monday 05:00: Sunday's overnight window runs until 06:00.
        #expect(cal.active(at: date("2025-08-18T05:00:00-05:00")).map(\.contractID) == ["batch-overnight"])
        #expect(cal.active(at: date("2025-08-18T07:00:00-05:00")).isEmpty)
    }

    @Test func weeklyWindowsAcrossDSTKeepLocalHours() throws {
        let cal = try ContractCalendar.parse("""
        time_zone: America/Chicago
        contracts:
          - id: c
            devices: [d1]
            committed_kw: 100
            penalty_usd_per_mwh_short: 50
            weekly:
              - days: [sun]
                from: 00:00
                until: "24:00"
        """, name: "c.yaml")
        // Fall-back Sunday is 25 hours long; spring-forward Sunday 23.
        let fall = cal.windows(from: date("2025-11-02T12:00:00-06:00"), to: date("2025-11-02T13:00:00-06:00"))
        #expect(fall.count == 1)
        #expect(fall[0].end.timeIntervalSince(fall[0].start) == 25 * 3600)
        let spring = cal.windows(from: date("2025-03-09T12:00:00-05:00"), to: date("2025-03-09T13:00:00-05:00"))
        #expect(spring[0].end.timeIntervalSince(spring[0].start) == 23 * 3600)
    }

    @Test(arguments: [
        ("contracts:\n  - id: c\n    devices: [d]\n    committed_kw: 1\n    penalty_usd_per_mwh_short: 1\n    weekly:\n      - days: [funday]\n        from: \"08:00\"\n        until: \"09:00\"\n",
         7, "not a weekday"),
        ("contracts:\n  - id: c\n    devices: [d]\n    committed_kw: 1\n    penalty_usd_per_mwh_short: 1\n    weekly:\n      - days: [mon]\n        from: \"8am\"\n        until: \"09:00\"\n",
         8, "local time HH:MM"),
        ("contracts:\n  - id: c\n    devices: [d]\n    committed_kw: 1\n    penalty_usd_per_mwh_short: 1\n", 2, "neither weekly nor windows"),
        ("time_zone: Mars/Olympus\ncontracts: []\n", 1, "unknown time zone"),
        ("contracts:\n  - id: c\n    devices: []\n    committed_kw: 1\n    penalty_usd_per_mwh_short: 1\n", 3, "at least one device"),
    ] as [(String, Int, String)])
    func contractErrors(text: String, line: Int, fragment: String) {
        let e = signalsError { _ = try ContractCalendar.parse(text, name: "k.yaml") }
        #expect(e?.source.line == line, "\(String(describing: e))")
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
    }
}

@Suite("SignalState at an instant")
struct SignalStateTests {
    func demoSignals() throws -> SignalInputs {
        let rt = try SeriesLoader.load(path: example("prices/demo-rt.csv"), options: SeriesOptions(settlementPoint: "HB_NORTH"))
        let da = try SeriesLoader.load(path: example("prices/demo-da.csv"))
        let hp = try SeriesLoader.load(path: example("prices/hashprice.csv"), options: SeriesOptions(quantity: .hashprice))
        return SignalInputs(realTime: rt, dayAhead: da, hashprice: .series(hp),
                       events: try ManualEvents.load(path: example("events/demo-dr.yaml")),
                       contracts: try ContractCalendar.load(path: example("contracts/demo-contracts.yaml")),
                       horizon: 6 * 3600)
    }

    @Test func duringTheSpike() throws {
        let state = try demoSignals().at(date("2025-08-14T17:35:00-05:00"))
        #expect(state.price == PriceQuote(start: date("2025-08-14T17:30:00-05:00"), end: date("2025-08-14T17:45:00-05:00"),
                                          usdPerMWh: 4981.48, source: .realTime))
        #expect(state.hashpriceUSDPerPHDay == 52.4)
        #expect(state.importCapKW == 12000)
        #expect(state.activeEvents.map(\.id) == ["op-2025-08-14-eea"])
        #expect(state.activeContracts.map(\.contractID) == ["inference-acme"])
        // Forecast: real-time to midnight, then day-ahead hours; contiguous, clipped to 6 h.
        #expect(state.forecast.first?.start == date("2025-08-14T17:30:00-05:00"))
        #expect(state.forecast.last?.end == date("2025-08-14T23:35:00-05:00"))
        #expect(state.forecast.filter { $0.source == .dayAhead }.isEmpty)
        for (a, b) in zip(state.forecast, state.forecast.dropFirst()) { #expect(a.end == b.start) }
    }

    @Test func dayAheadFillsBeyondRealTime() throws {
        let state = try demoSignals().at(date("2025-08-14T22:10:00-05:00"))
        let da = state.forecast.filter { $0.source == .dayAhead }
        #expect(da.first?.start == date("2025-08-15T00:00:00-05:00"))
        #expect(da.count == 5)  // 00:00 … 04:10, the last clipped
        #expect(da.last?.end == date("2025-08-15T04:10:00-05:00"))
        #expect(state.upcomingEvents.isEmpty)
        for (a, b) in zip(state.forecast, state.forecast.dropFirst()) { #expect(a.end == b.start) }
    }

    @Test func dayAheadIsThePriceWhenNoRealTimeCoversNow() throws {
        var s = try demoSignals()
        let state = s.at(date("2025-08-15T10:20:00-05:00"))
        #expect(state.price?.source == .dayAhead)
        #expect(state.price?.start == date("2025-08-15T10:00:00-05:00"))
        #expect(state.importCapKW == 20000)
        s.realTime = nil
        s.dayAhead = nil
        #expect(s.at(date("2025-08-15T10:20:00-05:00")).price == nil)
        #expect(s.at(date("2025-08-15T10:20:00-05:00")).forecast.isEmpty)
    }

    @Test func upcomingWithinTheHorizon() throws {
        let state = try demoSignals().at(date("2025-08-14T12:00:00-05:00"))
        #expect(state.upcomingEvents.map(\.id) == ["op-2025-08-14-eea"])
        #expect(state.importCapKW == nil)
        #expect(state.activeContracts.count == 1)
        #expect(state.upcomingContracts.isEmpty)
    }

    @Test func theTightestCapWinsAndPaidReductionsSortByPay() {
        let t = date("2025-08-14T20:00:00Z")
        let s = SignalInputs(hashprice: .fixed(usdPerPHDay: 50), events: [
            DREvent(id: "a", origin: .manual, action: .importCap(kW: 9000), start: t, end: nil, reason: "a"),
            DREvent(id: "b", origin: .manual, action: .importCap(kW: 7000), start: t, end: t.addingTimeInterval(60), reason: "b"),
            DREvent(id: "c", origin: .manual, action: .paidReduction(usdPerMWh: 200, baselineKW: 10000), start: t, end: nil, reason: "c"),
            DREvent(id: "d", origin: .manual, action: .paidReduction(usdPerMWh: 500, baselineKW: nil), start: t, end: nil, reason: "d"),
        ])
        let now = s.at(t)
        #expect(now.importCapKW == 7000)
        #expect(now.paidReductions.map(\.usdPerMWh) == [500, 200])
        #expect(now.hashpriceUSDPerPHDay == 50)
        #expect(s.at(t.addingTimeInterval(60)).importCapKW == 9000)
    }
}
