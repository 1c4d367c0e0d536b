// `fleet history --svg`: the chart is well-formed XML (FoundationXML's parser), its polyline has one point per
// numeric sample in time order inside the viewBox, historical samples are marked apart from live ones, and an empty
// history says "no samples".

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Hub
import Testing

/// What the tests read out of a chart.
final class ChartReader: NSObject, XMLParserDelegate {
    var viewBox: [Double] = []
    var points: [(x: Double, y: Double)] = []
    var groups: [String] = []
    var circlesByGroup: [String: Int] = [:]
    var texts: [String] = []
    var title = ""
    private var text = ""
    private var inTitle = false

    static func read(_ svg: String) throws -> ChartReader {
        let r = ChartReader()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = r
        guard p.parse() else { throw ChartError(message: "not well-formed XML: \(p.parserError.map { "\($0)" } ?? "?")") }
        return r
    }

    struct ChartError: Error { var message: String }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes a: [String: String] = [:]) {
        text = ""
        switch name {
        case "svg": viewBox = (a["viewBox"] ?? "").split(separator: " ").compactMap { Double($0) }
        case "polyline":
            points = (a["points"] ?? "").split(separator: " ").map { pair in
                let xy = pair.split(separator: ",").compactMap { Double($0) }
                return (xy.first ?? .nan, xy.count > 1 ? xy[1] : .nan)
            }
        case "g": groups.append(a["class"] ?? "")
        case "circle": if let g = groups.last { circlesByGroup[g, default: 0] += 1 }
        case "title": inTitle = true
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        switch name {
        case "g": _ = groups.popLast()
        case "text": texts.append(text)
        case "title": title = text; inTitle = false
        default: break
        }
        text = ""
    }
}

@Suite("History chart (SVG)")
struct HistoryChartTests {
    /// 2026-11-27 10:00:00 UTC.
    static let t0 = 1_795_773_600.0

    func checkInside(_ r: ChartReader, count: Int) {
        #expect(r.viewBox.count == 4)
        let (w, h) = (r.viewBox[2], r.viewBox[3])
        #expect(r.points.count == count)
        for p in r.points { #expect(p.x >= 0 && p.x <= w && p.y >= 0 && p.y <= h, "\(p) outside 0 0 \(w) \(h)") }
        for (a, b) in zip(r.points, r.points.dropFirst()) { #expect(a.x <= b.x, "not in time order: \(a) then \(b)") }
    }

    @Test func onePointPerSampleInTimeOrderInsideTheViewBox() throws {
        // A day of 5-minute samples, given out of order, with a backfilled stretch; values swing through negative.
        var samples: [HistoryChart.Sample] = []
        for i in 0..<288 {
            samples.append(.init(at: Self.t0 + Double(i) * 300, value: 1200 + 900 * sin(Double(i) / 20) - 400,
                                 historical: (100..<130).contains(i)))
        }
        samples.shuffle()
        let svg = HistoryChart.svg(samples: samples, title: "Site/Import kW — ERCOT/site-a", unit: "kW")
        let r = try ChartReader.read(svg)
        checkInside(r, count: 288)
        // Lower y is higher value: the polyline's order is the samples' time order, so its y follow the values.
        let sorted = samples.sorted { $0.at < $1.at }
        let iMax = sorted.indices.max { sorted[$0].value < sorted[$1].value }!
        let iMin = sorted.indices.min { sorted[$0].value < sorted[$1].value }!
        #expect(r.points[iMax].y == r.points.map(\.y).min())
        #expect(r.points[iMin].y == r.points.map(\.y).max())
        #expect(r.circlesByGroup["historical"] == 30)
        #expect(r.circlesByGroup["live"] == 258)
        #expect(r.title == "Site/Import kW — ERCOT/site-a")
        #expect(r.texts.contains("Site/Import kW — ERCOT/site-a"))
        #expect(r.texts.contains("kW"))
        // Time ticks over a day: three-hourly labels, in UTC; value ticks include a negative.
        #expect(r.texts.contains("12:00") && r.texts.contains("15:00"), "\(r.texts)")
        #expect(r.texts.contains { ($0.first == "-") && Double($0) != nil }, "\(r.texts)")
    }

    @Test func emptyHistorySaysNoSamples() throws {
        let r = try ChartReader.read(HistoryChart.svg(samples: [], title: "Site/Import kW — ERCOT/site-a", unit: "kW"))
        #expect(r.texts.contains("no samples"))
        #expect(r.points.isEmpty)
        let dto = HistoryDTO(region: "ERCOT", site: "site-a", device: nil, metric: "Site/Mode",
                             samples: [.init(at: "2026-11-27T10:00:00Z", value: nil, text: "auto", historical: false)])
        let t = try ChartReader.read(HistoryChart.svg(history: dto))
        #expect(t.texts.contains("no samples") && t.texts.contains("1 non-numeric sample not plotted"), "\(t.texts)")
    }

    @Test func oneSampleAFlatLineAndMarkupInNames() throws {
        let one = try ChartReader.read(HistoryChart.svg(samples: [.init(at: Self.t0, value: 5, historical: true)],
                                                        title: "a <b> & \"c\"", unit: nil))
        checkInside(one, count: 1)
        #expect(one.title == "a <b> & \"c\"")
        let flat = (0..<10).map { HistoryChart.Sample(at: Self.t0 + Double($0), value: 42, historical: false) }
        let f = try ChartReader.read(HistoryChart.svg(samples: flat, title: "flat", unit: "MW"))
        checkInside(f, count: 10)
        #expect(Set(f.points.map(\.y)).count == 1)
        // Absurd values do not hang or trap; they are left out.
        let odd = [HistoryChart.Sample(at: Self.t0, value: .infinity, historical: false),
                   HistoryChart.Sample(at: Self.t0 + 1, value: -1e308, historical: false),
                   HistoryChart.Sample(at: Self.t0 + 2, value: 1e308, historical: false),
                   HistoryChart.Sample(at: Self.t0 + 3, value: 1, historical: false)]
        checkInside(try ChartReader.read(HistoryChart.svg(samples: odd, title: "odd", unit: nil)), count: 1)
    }

    @Test func fromTheAPIsHistory() throws {
        let dto = HistoryDTO(region: "ERCOT", site: "site-a", device: nil, metric: "Site/Import kW", samples: [
            .init(at: "2026-11-27T10:00:00Z", value: 1000, text: nil, historical: false),
            .init(at: "2026-11-27T10:00:01Z", value: 1100, text: nil, historical: true),
            .init(at: "2026-11-27T10:00:02Z", value: 900, text: nil, historical: false),
        ])
        let r = try ChartReader.read(HistoryChart.svg(history: dto))
        checkInside(r, count: 3)
        #expect(r.title == "Site/Import kW — ERCOT/site-a")
        #expect(r.circlesByGroup["historical"] == 1 && r.circlesByGroup["live"] == 2)
        #expect(HistoryChart.unit(ofMetric: "Site/Price USD per MWh") == "USD per MWh")
        #expect(HistoryChart.unit(ofMetric: "Site/Mode") == nil)
    }
}
