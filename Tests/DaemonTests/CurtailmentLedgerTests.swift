import Foundation
import Logging
import Signals
import Synchronization
import Testing
@testable import Daemon

// The OpenADR curtailment ledger on explicit loop times (every call takes `now`: the test is the clock).

/// An OpenADR import-cap interval of `event` (program "prog"), [start, end).
func capInterval(_ event: String, interval: Int = 0, start: Double, end: Double, kw: Double = 500) -> DREvent {
    DREvent(id: "\(event)#\(interval)", origin: .openADR(programID: "prog", eventID: event, intervalID: interval),
            action: .importCap(kW: kw), start: Date(timeIntervalSince1970: start), end: Date(timeIntervalSince1970: end), reason: "test")
}

/// A fresh journal path in its own directory (the caller removes the directory).
func journalPath() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-ledger-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent("openadr-reports.json")
}

/// A VTN stand-in behind the VEN's HTTP seam: issues tokens, and takes `POST /reports` unless told to refuse.
final class ReportingVTN: HTTPTransport, Sendable {
    struct State {
        var refuse = false
        var accepted: [String] = []
        var refused: [String] = []
    }
    let state = Mutex(State())

    func send(_ request: HTTPRequest) async throws(SignalsError) -> HTTPResponse {
        if request.url.path.hasSuffix("/auth/token") {
            return HTTPResponse(status: 200, body: Data(#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#.utf8))
        }
        guard request.method == "POST", request.url.path.hasSuffix("/reports"), let body = request.body else {
            return HTTPResponse(status: 404)
        }
        let name = ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["reportName"] as? String ?? "?"
        let refuse = state.withLock { s in
            if s.refuse { s.refused.append(name) } else { s.accepted.append(name) }
            return s.refuse
        }
        if refuse { return HTTPResponse(status: 503, body: Data("busy".utf8)) }
        var stored = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        stored["id"] = "r\(name.count)"
        return HTTPResponse(status: 201, body: try! JSONSerialization.data(withJSONObject: stored))
    }

    static func ven(_ transport: ReportingVTN) -> OpenADRVEN {
        let base = URL(string: "http://127.0.0.1:9/openadr3/3.0.1")!
        return OpenADRVEN(config: VENConfig(vtnURL: base, tokenURL: URL(string: "http://127.0.0.1:9/auth/token")!, clientID: "ven",
                                            clientSecret: "pw", venName: "switchyard"),
                          transport: transport, clock: ManualSignalClock(now: Date(timeIntervalSince1970: 0)))
    }
}

@Suite("Curtailment ledger")
struct CurtailmentLedgerTests {
    /// An event announced ahead: its baseline is the mean import over the window before its start (not the
    /// samples before the window, nor those after the start), and its final report is the mean import in it.
    @Test func announcedEventIsValuedAgainstTheMeanImportBeforeIt() throws {
        let ledger = CurtailmentLedger(options: .init(baselineWindowS: 60, reportEveryS: 0))
        for t in stride(from: 0.0, to: 40, by: 1) { ledger.record(at: t, siteKW: 9_000) }  // before the window: not counted
        ledger.observe([capInterval("evt", start: 100, end: 110)], explicitBaselines: [:], now: 40)
        #expect(ledger.trackedKeys == [.init(eventID: "evt", intervalID: 0)])
        #expect(ledger.baselineKW(for: capInterval("evt", start: 100, end: 110), explicit: [:]) == nil, "not measured before the event starts")
        var settled = false
        for t in stride(from: 40.0, to: 100, by: 1) { settled = ledger.record(at: t, siteKW: t < 70 ? 1_000 : 3_000) || settled }
        #expect(!settled, "the window ends at the event's start")
        #expect(ledger.record(at: 100, siteKW: 600), "the first tick in the event settles its baseline")
        let baseline = try #require(ledger.baselineKW(for: capInterval("evt", start: 100, end: 110), explicit: [:]))
        #expect(abs(baseline - 2_000) < 1e-9, "mean of 30 s at 1 MW and 30 s at 3 MW: \(baseline)")
        for t in stride(from: 101.0, to: 110, by: 1) { ledger.record(at: t, siteKW: t < 105 ? 600 : 800) }
        #expect(ledger.queueDue(now: 109).isEmpty)
        #expect(ledger.pending.isEmpty, "no progress reports with report_s 0, and the interval has not ended")
        #expect(ledger.queueDue(now: 110).isEmpty)
        let p = try #require(ledger.pending.first)
        #expect(ledger.pending.count == 1 && p.final && p.key == .init(eventID: "evt", intervalID: 0) && p.programID == "prog")
        #expect(p.interval.start == Date(timeIntervalSince1970: 100) && p.interval.duration == 10)
        #expect(abs(p.interval.baselineKW - 2_000) < 1e-9 && abs(p.interval.measuredKW - 700) < 1e-9, "\(p.interval)")
        #expect(p.baselineHow.contains("60 ticks"), "\(p.baselineHow)")
        #expect(ledger.trackedKeys.isEmpty)
    }

    /// The event's own baseline wins over the measured one; a paid reduction's configured baseline comes next.
    @Test func explicitBaselinesWinOverTheMeasuredOne() throws {
        let ledger = CurtailmentLedger(options: .init(baselineWindowS: 60, reportEveryS: 0))
        for t in stride(from: 0.0, to: 50, by: 1) { ledger.record(at: t, siteKW: 1_000) }
        let cap = capInterval("cap", start: 40, end: 60)
        let paid = DREvent(id: "paid#0", origin: .openADR(programID: "prog", eventID: "paid", intervalID: 0),
                           action: .paidReduction(usdPerMWh: 200, baselineKW: 4_321), start: Date(timeIntervalSince1970: 40),
                           end: Date(timeIntervalSince1970: 60), reason: "test")
        let explicit: [CurtailmentLedger.Key: Double] = [.init(eventID: "cap", intervalID: 0): 5_000]
        ledger.observe([cap, paid], explicitBaselines: explicit, now: 50)
        #expect(ledger.baselineKW(for: cap, explicit: explicit) == 5_000)
        #expect(ledger.baselineKW(for: paid, explicit: [:]) == 4_321)
        // Already in force when first seen: the measured baseline is the window before now, settled at once.
        #expect(ledger.baselineKW(for: cap, explicit: [:]) == 1_000)
        for t in stride(from: 50.0, to: 60, by: 1) { ledger.record(at: t, siteKW: 700) }
        ledger.queueDue(now: 60)
        let byEvent = Dictionary(uniqueKeysWithValues: ledger.pending.map { ($0.key.eventID, $0) })
        #expect(byEvent["cap"]?.interval.baselineKW == 5_000 && byEvent["cap"]?.baselineHow == "the event's baseline")
        #expect(byEvent["paid"]?.interval.baselineKW == 4_321)
        // First seen 10 s into the intervals, with ticks recorded from before they began: the reports cover the
        // whole intervals, the recorded ticks in them included.
        #expect(byEvent["cap"]?.interval.start == Date(timeIntervalSince1970: 40) && byEvent["cap"]?.interval.duration == 20)
        #expect(byEvent["cap"]?.interval.measuredKW == 850, "ten ticks at 1 MW before it was seen, ten at 700 kW")
    }

    /// Progress reports every report_s while in force; a newer report replaces an unsent older one for the
    /// same interval; an interval cancelled while in force ends when the VTN drops it.
    @Test func progressReportsAreReplacedByNewerOnesAndACancelledIntervalEndsNow() throws {
        let ledger = CurtailmentLedger(options: .init(baselineWindowS: 30, reportEveryS: 5))
        for t in stride(from: 0.0, to: 30, by: 1) { ledger.record(at: t, siteKW: 2_000) }
        ledger.observe([capInterval("evt", start: 30, end: 90)], explicitBaselines: [:], now: 29)
        for t in stride(from: 30.0, to: 36, by: 1) { ledger.record(at: t, siteKW: 1_000) }
        ledger.queueDue(now: 34)
        #expect(ledger.pending.isEmpty, "first progress report after report_s")
        ledger.queueDue(now: 35)
        let first = try #require(ledger.pending.first)
        #expect(!first.final && first.interval.duration == 5 && first.interval.measuredKW == 1_000)
        for t in stride(from: 36.0, to: 40, by: 1) { ledger.record(at: t, siteKW: 500) }
        ledger.queueDue(now: 40)
        #expect(ledger.pending.count == 1, "the newer report replaced the unsent one")
        #expect(ledger.pending.first?.interval.duration == 10)
        // The VTN drops the event at 42: the interval ends there, with a final report up to 42.
        ledger.record(at: 40, siteKW: 500)
        ledger.record(at: 41, siteKW: 500)
        ledger.observe([], explicitBaselines: [:], now: 42)
        ledger.queueDue(now: 42)
        let last = try #require(ledger.pending.first)
        #expect(last.final && last.interval.duration == 12, "\(last.interval)")
        // An interval cancelled before it starts is dropped without a report.
        ledger.observe([capInterval("later", start: 100, end: 110)], explicitBaselines: [:], now: 50)
        ledger.observe([], explicitBaselines: [:], now: 51)
        #expect(ledger.trackedKeys.isEmpty)
        ledger.queueDue(now: 120)
        #expect(ledger.pending.map(\.key.eventID) == ["evt"])
    }

    /// Final reports the VTN has not accepted survive a restart (the journal), are sent once it accepts
    /// them, and an interval already reported is not measured again when the VTN still lists it.
    @Test func unsentFinalReportsSurviveARestartAndAreRetriedUntilAccepted() async throws {
        let journal = try journalPath()
        defer { try? FileManager.default.removeItem(at: journal.deletingLastPathComponent()) }
        let vtn = ReportingVTN()
        vtn.state.withLock { $0.refuse = true }
        let events = [capInterval("a", start: 10, end: 20), capInterval("b", start: 10, end: 25)]
        do {
            let ledger = CurtailmentLedger(options: .init(baselineWindowS: 10, reportEveryS: 0), journal: journal)
            for t in stride(from: 0.0, to: 10, by: 1) { ledger.record(at: t, siteKW: 3_000) }
            ledger.observe(events, explicitBaselines: [:], now: 9)
            for t in stride(from: 10.0, to: 26, by: 1) { ledger.record(at: t, siteKW: 1_000) }
            ledger.queueDue(now: 26)
            #expect(ledger.pending.map(\.key.eventID) == ["a", "b"], "oldest interval first")
            await ReportingVTN.ven(vtn).flush(ledger, logger: .init(label: "test"))
            // The first refusal stops the flush: b waits without a POST.
            #expect(vtn.state.withLock { $0.refused } == ["curtailment a#0 final"])
            #expect(ledger.pending.map(\.attempts) == [1, 0])
            #expect(ledger.pending.first?.lastError?.contains("503") == true, "\(ledger.pending.first?.lastError ?? "nil")")
            let text = try String(contentsOf: journal, encoding: .utf8)
            #expect(text.contains("\"a\"") && text.contains("\"b\""), "\(text)")
        }
        // Restarted: the journal brings both reports back.
        let ledger = CurtailmentLedger(options: .init(baselineWindowS: 10, reportEveryS: 0), journal: journal)
        #expect(ledger.pending.map(\.key.eventID) == ["a", "b"])
        #expect(ledger.pending.allSatisfy { $0.final && $0.interval.baselineKW == 3_000 && $0.interval.measuredKW == 1_000 })
        // The VTN still lists the (ended) events: they are settled, not measured again.
        ledger.observe(events, explicitBaselines: [:], now: 30)
        #expect(ledger.trackedKeys.isEmpty)
        vtn.state.withLock { $0.refuse = false }
        await ReportingVTN.ven(vtn).flush(ledger, logger: .init(label: "test"))
        #expect(vtn.state.withLock { $0.accepted } == ["curtailment a#0 final", "curtailment b#0 final"])
        #expect(ledger.pending.isEmpty)
        let saved = try JSONDecoder().decode(CurtailmentLedger.Journal.self, from: Data(contentsOf: journal))
        #expect(saved.pending.isEmpty && saved.done == [.init(eventID: "a", intervalID: 0), .init(eventID: "b", intervalID: 0)])
        // And a third start sends nothing again.
        #expect(CurtailmentLedger(options: .init(), journal: journal).pending.isEmpty)
    }

    /// A paid reduction of `--events` without a baseline: measured over the window before its start, keyed apart.
    @Test func fileEventBaselineIsMeasuredBeforeItsStart() {
        let ledger = CurtailmentLedger(options: .init(baselineWindowS: 20, reportEveryS: 0))
        ledger.watchBaseline(fileEventID: "dr-1", start: 50, now: 0)
        for t in stride(from: 0.0, to: 50, by: 1) { ledger.record(at: t, siteKW: t < 30 ? 100 : 2_500) }
        #expect(ledger.measuredBaselineKW(fileEventID: "dr-1") == nil)
        #expect(ledger.record(at: 50, siteKW: 10))
        #expect(ledger.measuredBaselineKW(fileEventID: "dr-1") == 2_500)
        #expect(ledger.baselineKW(for: capInterval("dr-1", start: 50, end: 60), explicit: [:]) == nil, "file events are not OpenADR events")
    }
}
