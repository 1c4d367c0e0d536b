import Foundation
import Testing
import TestSupport
@testable import Signals

@Suite("Price and hashprice series")
struct SeriesLoaderTests {
    @Test func loadsTheBundledERCOTRealTimeTrace() throws {
        let s = try SeriesLoader.load(path: example("prices/demo-rt.csv"), options: SeriesOptions(settlementPoint: "HB_NORTH"))
        #expect(s.points.count == 96)
        #expect(s.start == date("2025-08-14T00:00:00-05:00"))
        #expect(s.end == date("2025-08-15T00:00:00-05:00"))
        // Delivery Hour 18, interval 3 is 17:30–17:45 local: the top of the spike.
        #expect(s.value(at: date("2025-08-14T17:31:00-05:00")) == 4981.48)
        #expect(s.point(at: date("2025-08-14T17:31:00-05:00"))?.start == date("2025-08-14T17:30:00-05:00"))
        let west = try SeriesLoader.load(path: example("prices/demo-rt.csv"), options: SeriesOptions(settlementPoint: "lz_west"))
        #expect(west.value(at: date("2025-08-14T17:31:00-05:00")) == 4984.58)
    }

    @Test func aFileWithSeveralSettlementPointsNeedsAChoice() {
        let e = signalsError { _ = try SeriesLoader.load(path: example("prices/demo-rt.csv")) }
        #expect(e?.source.line == 3)
        #expect(e?.description.contains("demo-rt.csv:3: error:") == true)
        #expect(e?.message.contains("several settlement points") == true)
    }

    @Test func loadsDayAheadHourEnding() throws {
        let s = try SeriesLoader.load(path: example("prices/demo-da.csv"))
        #expect(s.points.count == 48)
        #expect(s.point(at: date("2025-08-14T16:30:00-05:00"))?.start == date("2025-08-14T16:00:00-05:00"))  // HE 17
        #expect(s.end == date("2025-08-16T00:00:00-05:00"))
    }

    @Test func theRepeatedHourAtFallBackIsTwoDistinctHours() throws {
        let s = try SeriesLoader.load(path: example("prices/fallback-dst.csv"))
        #expect(s.points.count == 5)
        #expect(s.points.map(\.value) == [21.40, 20.10, 19.75, 19.20, 19.05])
        // HE 02 (N) is 01:00 CDT; HE 02 (Y) is 01:00 CST, an hour later.
        #expect(s.points[1].start == date("2025-11-02T01:00:00-05:00"))
        #expect(s.points[2].start == date("2025-11-02T01:00:00-06:00"))
        #expect(s.end == date("2025-11-02T04:00:00-06:00"))
    }

    static let header = "Delivery Date,Hour Ending,Repeated Hour Flag,Settlement Point,Settlement Point Price"

    /// Each bad input names its line and says what is wrong.
    @Test(arguments: [
        ("Delivery Date,Hour Ending,Settlement Point\n01/02/2025,01:00,HB_NORTH\n",
         1, SignalsError.Kind.missingField, "missing column \"Settlement Point Price\""),
        (header + "\n01/02/2025,01:00,N,HB_NORTH,21.5\n01/02/2025,02:00,N,HB_NORTH,2l.5\n",
         3, .badValue, "Settlement Point Price \"2l.5\" is not a number"),
        (header + "\n01/02/2025,02:00,N,HB_NORTH,21.5\n01/02/2025,01:00,N,HB_NORTH,20\n",
         3, .unsorted, "not sorted"),
        (header + "\n01/02/2025,01:00,N,HB_NORTH,21.5\n01/02/2025,03:00,N,HB_NORTH,20\n",
         3, .gap, "gap"),
        (header + "\n13/02/2025,01:00,N,HB_NORTH,21.5\n", 2, .badValue, "not a date"),
        (header + "\n01/02/2025,25:00,N,HB_NORTH,21.5\n", 2, .badValue, "not an hour"),
        (header + "\n01/02/2025,01:00,Q,HB_NORTH,21.5\n", 2, .badValue, "not Y or N"),
        (header + "\n01/02/2025,02:00,Y,HB_NORTH,21.5\n", 2, .nonexistentLocalTime, "not a repeated hour"),
        (header + "\n03/09/2025,02:00,N,HB_NORTH,21.5\n03/09/2025,03:00,N,HB_NORTH,21.5\n", 3, .nonexistentLocalTime, "does not exist"),
        ("Delivery Date,Hour Ending,Settlement Point,Settlement Point Price\n11/02/2025,01:00,HB_NORTH,20\n11/02/2025,02:00,HB_NORTH,20\n",
         3, .ambiguousLocalTime, "happens twice"),
        (header + "\n01/02/2025,01:00,N,HB_NORTH\n", 2, .missingField, "no value for column"),
        (header + "\n\"01/02/2025,01:00,N,HB_NORTH,1\n", 2, .syntax, "not closed"),
        ("", 1, .syntax, "empty"),
    ] as [(String, Int, SignalsError.Kind, String)])
    func ercotErrorsNameTheLine(text: String, line: Int, kind: SignalsError.Kind, fragment: String) {
        let e = signalsError { _ = try SeriesLoader.parse(text, name: "prices.csv", options: SeriesOptions(format: .ercotDayAhead)) }
        #expect(e?.kind == kind, "\(String(describing: e))")
        #expect(e?.source.line == line, "\(String(describing: e))")
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
        #expect(e?.description.hasPrefix("prices.csv:\(line): error: ") == true)
        #expect(e?.description.contains("\n") == false)
    }

    @Test func realTimeRowsAreCheckedToo() {
        let text = """
        Delivery Date,Delivery Hour,Delivery Interval,Settlement Point Name,Settlement Point Price
        08/14/2025,1,1,HB_NORTH,20
        08/14/2025,1,2,HB_NORTH,20
        08/14/2025,1,4,HB_NORTH,20
        """
        let e = signalsError { _ = try SeriesLoader.parse(text, name: "rt.csv") }
        #expect(e?.kind == .gap)
        #expect(e?.source.line == 4)
        let bad = signalsError { _ = try SeriesLoader.parse(text.replacingOccurrences(of: "1,4,", with: "1,5,"), name: "rt.csv") }
        #expect(bad?.message.contains("Delivery Interval \"5\"") == true)
    }

    @Test func genericCSVAndJSONGiveTheSameSeries() throws {
        let csv = "timestamp,price_usd_per_mwh\n2025-08-14T00:00:00-05:00,21.5\n2025-08-14T00:15:00-05:00,22\n2025-08-14T00:30:00-05:00,23.25\n"
        let json = """
        [{"timestamp": "2025-08-14T00:00:00-05:00", "price_usd_per_mwh": 21.5},
         {"timestamp": "2025-08-14T05:15:00Z", "price_usd_per_mwh": 22},
         {"timestamp": "2025-08-14T00:30:00-05:00", "price_usd_per_mwh": "23.25"}]
        """
        let a = try SeriesLoader.parse(csv, name: "a.csv")
        let b = try SeriesLoader.parse(json, name: "a.json")
        #expect(a.points == b.points)
        #expect(a.points.count == 3)
        #expect(a.end == date("2025-08-14T00:45:00-05:00"))
        let hp = try SeriesLoader.load(path: example("prices/hashprice.csv"), options: SeriesOptions(quantity: .hashprice))
        #expect(hp.value(at: date("2025-08-14T12:00:00-05:00")) == 52.4)
    }

    @Test func jsonWithDeclaredIntervalAcceptsOnePoint() throws {
        let s = try SeriesLoader.parse(#"{"interval": "PT1H", "points": [{"timestamp": "2025-08-14T00:00:00Z", "value": 5}]}"#, name: "one.json")
        #expect(s.end == date("2025-08-14T01:00:00Z"))
        let e = signalsError { _ = try SeriesLoader.parse(#"[{"timestamp": "2025-08-14T00:00:00Z", "value": 5}]"#, name: "one.json") }
        #expect(e?.message.contains("cannot infer the interval") == true)
    }

    /// JSON errors name the line and the key path.
    @Test(arguments: [
        ("[\n {\"timestamp\": \"2025-08-14T00:00:00Z\", \"price_usd_per_mwh\": 1},\n {\"timestamp\": \"2025-08-14T01:00:00Z\", \"price_usd_per_mwh\": \"abc\"}\n]",
         3, "[1].price_usd_per_mwh", "is not a number"),
        ("[\n {\"timestamp\": \"2025-08-14T00:00:00\", \"price_usd_per_mwh\": 1}\n]", 2, "[0].timestamp", "with an offset"),
        ("{\"points\": [\n {\"timestamp\": \"2025-08-14T00:00:00Z\"}\n]}", 2, "points[0]", "missing key \"price_usd_per_mwh\""),
        ("[\n {\"timestamp\": \"2025-08-14T00:00:00Z\", \"value\": 1},\n {\"timestamp\": \"2025-08-14T01:00:00Z\", \"value\": 1},\n {\"timestamp\": \"2025-08-14T03:00:00Z\", \"value\": 1}\n]",
         4, "[2].timestamp", "gap"),
        ("[\n {\"timestamp\": \"2025-08-14T01:00:00Z\", \"value\": 1},\n {\"timestamp\": \"2025-08-14T00:00:00Z\", \"value\": 1}\n]",
         3, "[1].timestamp", "not sorted"),
        ("{\"points\": [], \"interval\": \"PT1X\"}", 1, "interval", "not an ISO 8601 duration"),
        ("[\n {\"timestamp\": \"2025-08-14T01:00:00Z\", \"value\": 1},,\n]", 2, "", "cannot parse"),
    ] as [(String, Int, String, String)])
    func jsonErrorsNameLineAndKeyPath(text: String, line: Int, keyPath: String, fragment: String) {
        let e = signalsError { _ = try SeriesLoader.parse(text, name: "feed.json", options: SeriesOptions(format: .json)) }
        #expect(e?.source.line == line, "\(String(describing: e))")
        if !keyPath.isEmpty { #expect(e?.source.keyPath == keyPath, "\(String(describing: e))") }
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
        #expect(e?.description.hasPrefix("feed.json:\(line): error: ") == true)
    }

    /// Fuzz: mangled copies of a valid file either load or fail with a located SignalsError.
    @Test func fuzzMangledCSVFailsCleanly() throws {
        let original = try String(contentsOfFile: example("prices/fallback-dst.csv"), encoding: .utf8)
        let bytes = Array(original.utf8)
        let lineCount = original.split(separator: "\n").count + 1
        var rng = SeededRandom(seed: 2025)
        let junk = Array("0123456789,\"\n:/YN.-x ".utf8)
        var failures = 0
        for _ in 0..<400 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[i] = junk.randomElement(using: &rng)!
                case 1: b.remove(at: i)
                default: b.insert(junk.randomElement(using: &rng)!, at: i)
                }
            }
            do {
                let s = try SeriesLoader.parse(String(decoding: b, as: UTF8.self), name: "f.csv")
                #expect(!s.points.isEmpty)
            } catch {
                let e: SignalsError = error
                failures += 1
                #expect(e.source.file == "f.csv")
                #expect((e.source.line ?? 1) >= 1 && (e.source.line ?? 1) <= lineCount + 2, "\(e)")
                #expect(!e.description.contains("\n"))
            }
        }
        #expect(failures > 100)
    }
}
