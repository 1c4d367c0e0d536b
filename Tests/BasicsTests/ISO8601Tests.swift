import Basics
import Foundation
import Testing

@Suite("The one ISO 8601 grammar")
struct ISO8601Tests {
    @Test(arguments: [
        ("2025-08-14T15:00:00-05:00", 1_755_201_600.0),
        ("2025-08-14t20:00:00z", 1_755_201_600.0),
        ("2025-08-14 20:00Z", 1_755_201_600.0),
        ("2025-08-14T15:00:00-0500", 1_755_201_600.0),
        ("2025-08-14T20:00:00,5Z", 1_755_201_600.5),
        ("2025-08-13T24:00:00Z", 1_755_129_600.0),
        ("2025-08-14T20:00:00+18:00", 1_755_136_800.0),
    ])
    func parses(text: String, epoch: Double) { #expect(ISO8601.parse(text) == epoch) }

    /// No offset, a day that does not exist, 24:30, an offset beyond ±18:59, junk.
    @Test(arguments: [
        "2025-08-14T15:00:00", "2025-02-29T00:00:00Z", "2025-08-14T24:30:00Z", "2025-08-14T15:00:00+19:00",
        "2025-08-14T15:00:00+05:60", "2025-08-14T15:00:00.Z", "2025-08-14T15:00:00Z ", "2025-8-14T15:00:00Z",
    ])
    func rejects(text: String) { #expect(ISO8601.parse(text) == nil) }

    @Test func formats() {
        #expect(ISO8601.format(1_755_201_600.9) == "2025-08-14T20:00:00Z")
        #expect(ISO8601.format(-0.5) == "1969-12-31T23:59:59Z")
        #expect(ISO8601.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(ISO8601.parseDate("1970-01-01T00:00:01Z") == Date(timeIntervalSince1970: 1))
        #expect(ISO8601.secondOfDay(-1) == 86_399)
    }

    /// Every whole second that formats parses back to itself (a sample across four centuries).
    @Test func roundTrips() {
        var rng = SeededRandom(seed: 8601)
        for _ in 0..<2000 {
            let t = Double(rng.int(-2_000_000_000, 7_000_000_000))
            #expect(ISO8601.parse(ISO8601.format(t)) == t)
        }
    }
}
