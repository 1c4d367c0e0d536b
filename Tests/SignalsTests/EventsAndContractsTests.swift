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
