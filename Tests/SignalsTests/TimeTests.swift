import Foundation
import Testing
import TestSupport
@testable import Signals

@Suite("ISO 8601 times and durations")
struct TimeTests {
    @Test(arguments: [
        ("2025-08-14T15:00:00-05:00", 1_755_201_600.0),
        ("2025-08-14T20:00:00Z", 1_755_201_600.0),
        ("2025-08-14T20:00Z", 1_755_201_600.0),
        ("2025-08-14 21:30:00+01:30", 1_755_201_600.0),
        ("2025-08-14T20:00:00.250Z", 1_755_201_600.25),
        ("2025-08-14T15:00:00-0500", 1_755_201_600.0),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
    ])
    func parsesTimestamps(text: String, epoch: Double) {
        #expect(ISO8601.parseDate(text)?.timeIntervalSince1970 == epoch)
    }

    @Test(arguments: ["2025-08-14T15:00:00", "2025-08-14", "2025-02-30T00:00:00Z", "2025-08-14T25:00:00Z",
                      "2025-08-14T15:00:00+5", "x2025-08-14T15:00:00Z", "2025-08-14T15:00:00Zjunk", ""])
    func rejectsTimestampsWithoutOffsetOrMalformed(text: String) {
        #expect(ISO8601.parseDate(text) == nil)
    }

    @Test func formatsUTC() {
        #expect(ISO8601.format(Date(timeIntervalSince1970: 1_755_201_600)) == "2025-08-14T20:00:00Z")
        #expect(ISO8601.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59Z")
    }

    @Test(arguments: [
        ("PT1H", 3600.0), ("PT15M", 900.0), ("P1D", 86_400.0), ("P1W", 604_800.0), ("PT0S", 0.0),
        ("PT1H30M", 5400.0), ("P1DT2H", 93_600.0), ("PT0.5S", 0.5), ("-PT5M", -300.0), ("PT36H", 129_600.0),
    ])
    func parsesDurations(text: String, seconds: Double) throws {
        let d = try #require(ISODuration(text))
        #expect(d.seconds == seconds)
    }

    @Test(arguments: ["", "P", "PT", "1H", "PT1", "P1H", "PT1D", "P1M1Y", "PT1.5H", "P1DT", "PTM", "PT1H1H"])
    func rejectsBadDurations(text: String) {
        #expect(ISODuration(text) == nil)
    }

    @Test func calendarDurationsUseTheCalendar() throws {
        let y = try #require(ISODuration("P1Y"))
        #expect(y.seconds == nil)
        #expect(y.adding(to: date("2024-02-29T00:00:00Z")) == date("2025-02-28T00:00:00Z"))
        let m = try #require(ISODuration("P1M"))
        #expect(m.adding(to: date("2025-01-31T12:00:00Z")) == date("2025-02-28T12:00:00Z"))
    }

    @Test func durationRoundTripsThroughDescription() throws {
        for text in ["PT1H", "PT15M", "P1D", "P1Y2M3DT4H5M6S", "PT0S", "-PT5M"] {
            let d = try #require(ISODuration(text))
            #expect(ISODuration(d.description) == d, "\(text) → \(d.description)")
        }
        #expect(ISODuration.seconds(5400).description == "PT1H30M")
    }

    @Test func localTimeResolvesDSTTransitions() {
        // Fall back 2025-11-02: 01:30 happens twice in Chicago.
        guard case .ambiguous(let first, let second) = LocalTime.resolve(year: 2025, month: 11, day: 2, secondsAfterMidnight: 5400, in: chicago) else {
            Issue.record("01:30 on 2025-11-02 should be ambiguous"); return
        }
        #expect(first == date("2025-11-02T01:30:00-05:00"))
        #expect(second == date("2025-11-02T01:30:00-06:00"))
        // Spring forward 2025-03-09: 02:30 does not exist.
        #expect(LocalTime.resolve(year: 2025, month: 3, day: 9, secondsAfterMidnight: 9000, in: chicago) == .nonexistent)
        #expect(LocalTime.resolve(year: 2025, month: 8, day: 14, secondsAfterMidnight: 0, in: chicago) == .instant(date("2025-08-14T00:00:00-05:00")))
    }

    /// Fuzz: random strings never crash the parsers, and whatever parses round-trips.
    @Test func fuzzTimestampAndDurationParsers() {
        var gen = SeededRandom(seed: 0x5157_4e41)
        let alphabet = Array("0123456789-:TZPYMWDHS.+ ")
        for _ in 0..<5000 {
            let n = Int(gen.next() % 24)
            let s = String((0..<n).map { _ in alphabet[Int(gen.next() % UInt64(alphabet.count))] })
            if let d = ISO8601.parseDate(s) {
                #expect(ISO8601.parseDate(ISO8601.format(d)).map { abs($0.timeIntervalSince(d)) < 1 } == true)
            }
            if let d = ISODuration(s) { #expect(ISODuration(d.description) == d, "\(s)") }
        }
        // A few hand-made near misses must still fail.
        #expect(ISO8601.parseDate("2025-08-14T15:00:00+") == nil)
        #expect(ISODuration("P-1D") == nil)
    }
}

