// `switchyard fleet history … --svg FILE`: a metric's samples as an SVG line chart. Pure: samples in, a standalone
// SVG document out (no scripts, no external references). Time runs left to right in UTC with "nice" ticks (1 s …
// 7 days), values bottom to top with 1-2-5 ticks; one polyline point per numeric sample in time order; historical
// (backfilled) samples are drawn as hollow orange circles over the line, live ones as small filled blue dots (the
// dots are left out above 2,000 samples, where they would merge into the line). Text samples are not plotted (a note
// says how many). No numeric sample: the chart says "no samples". docs/fleet.md, "The fleet API and CLI".

import Basics
import Foundation

public enum HistoryChart {
    /// One point: seconds since 1970, a value, and whether it was backfilled (historical).
    public struct Sample: Sendable, Equatable {
        public var at: Double
        public var value: Double
        public var historical: Bool
        public init(at: Double, value: Double, historical: Bool) {
            self.at = at
            self.value = value
            self.historical = historical
        }
    }

    public static let width = 800.0
    public static let height = 420.0
    /// The plot area inside the viewBox.
    static let left = 80.0, right = 24.0, top = 48.0, bottom = 64.0
    /// Above this many samples, live samples get no dot of their own.
    public static let maxLiveDots = 2_000

    /// The chart of an API history: numeric samples plotted, text samples counted in a note.
    public static func svg(history h: HistoryDTO) -> String {
        var samples: [Sample] = []
        var text = 0
        for s in h.samples {
            guard let v = s.value, v.isFinite, let t = ISO8601.parse(s.at) else { text += 1; continue }
            samples.append(Sample(at: t, value: v, historical: s.historical))
        }
        let title = "\(h.metric) — \(h.region)/\(h.site)" + (h.device.map { " (device \($0))" } ?? "")
        return svg(samples: samples, title: title, unit: unit(ofMetric: h.metric), notPlotted: text)
    }

    /// The unit at the end of a metric's name ("Site/Import kW" → "kW"), or nil.
    public static func unit(ofMetric name: String) -> String? {
        for u in ["USD per MWh", "USD/MWh", "kWh", "MWh", "kW", "MW", "°C", "%", "Hz", "V", "A"] where name.hasSuffix(" " + u) { return u }
        return nil
    }

    /// The chart. `samples` need not be sorted (they are drawn in time order); non-finite values are skipped.
    public static func svg(samples input: [Sample], title: String, unit: String?, notPlotted: Int = 0) -> String {
        // Finite, and small enough that the ranges below stay finite.
        let samples = input.filter { abs($0.value) < 1e300 && abs($0.at) < 1e12 }.sorted { $0.at < $1.at }
        let skipped = notPlotted + (input.count - samples.count)
        let plotW = width - left - right, plotH = height - top - bottom
        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(n(width)) \(n(height))" width="\(n(width))" height="\(n(height))" font-family="sans-serif" font-size="12">
        <title>\(escape(title))</title>
        <rect x="0" y="0" width="\(n(width))" height="\(n(height))" fill="white"/>
        <text class="title" x="\(n(width / 2))" y="24" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>
        <rect class="plot" x="\(n(left))" y="\(n(top))" width="\(n(plotW))" height="\(n(plotH))" fill="none" stroke="#888"/>

        """
        guard let first = samples.first, let last = samples.last else {
            out += "<text class=\"empty\" x=\"\(n(left + plotW / 2))\" y=\"\(n(top + plotH / 2))\" text-anchor=\"middle\" font-size=\"16\" fill=\"#666\">no samples</text>\n"
            if skipped > 0 { out += note("\(skipped) non-numeric sample\(skipped == 1 ? "" : "s") not plotted") }
            return out + "</svg>\n"
        }
        // Ranges: a single instant or a flat line still gets a visible span.
        var t0 = first.at, t1 = last.at
        if t1 - t0 < 1 { t0 -= 30; t1 += 30 }
        var v0 = samples.map(\.value).min()!, v1 = samples.map(\.value).max()!
        if v1 - v0 < 1e-9 * max(1, abs(v0)) { let pad = max(1, abs(v0) * 0.05); v0 -= pad; v1 += pad }
        let vStep = niceStep((v1 - v0) / 5)
        v0 = (v0 / vStep).rounded(.down) * vStep
        v1 = (v1 / vStep).rounded(.up) * vStep
        func x(_ t: Double) -> Double { left + (t - t0) / (t1 - t0) * plotW }
        func y(_ v: Double) -> Double { top + plotH - (v - v0) / (v1 - v0) * plotH }

        // Value ticks and grid.
        out += "<g class=\"value-ticks\" fill=\"#333\">\n"
        let decimals = max(0, -Int((log10(vStep)).rounded(.down)))
        var v = v0, ticks = 0
        while v <= v1 + vStep / 2, ticks < 20 {
            ticks += 1
            let yy = y(v)
            out += "<line x1=\"\(n(left))\" y1=\"\(n(yy))\" x2=\"\(n(left + plotW))\" y2=\"\(n(yy))\" stroke=\"#e4e4e4\"/>"
            out += "<text x=\"\(n(left - 6))\" y=\"\(n(yy + 4))\" text-anchor=\"end\">\(String(format: "%.\(decimals)f", v == 0 ? 0 : v))</text>\n"
            v += vStep
        }
        out += "</g>\n"
        if let unit {
            out += "<text class=\"unit\" x=\"16\" y=\"\(n(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(n(top + plotH / 2)))\">\(escape(unit))</text>\n"
        }

        // Time ticks (UTC).
        let tStep = timeStep(t1 - t0)
        out += "<g class=\"time-ticks\" fill=\"#333\">\n"
        var t = (t0 / tStep).rounded(.up) * tStep, tTicks = 0
        while t <= t1, tTicks < 20 {
            tTicks += 1
            let xx = x(t)
            out += "<line x1=\"\(n(xx))\" y1=\"\(n(top))\" x2=\"\(n(xx))\" y2=\"\(n(top + plotH))\" stroke=\"#e4e4e4\"/>"
            out += "<text x=\"\(n(xx))\" y=\"\(n(top + plotH + 18))\" text-anchor=\"middle\">\(timeLabel(t, step: tStep, span: t1 - t0))</text>\n"
            t += tStep
        }
        out += "</g>\n"
        out += "<text class=\"time-axis\" x=\"\(n(left + plotW / 2))\" y=\"\(n(height - 14))\" text-anchor=\"middle\" fill=\"#333\">UTC, \(escape(ISO8601.format(first.at))) to \(escape(ISO8601.format(last.at)))</text>\n"

        // The line, then the samples' marks.
        let points = samples.map { "\(n(x($0.at))),\(n(y($0.value)))" }.joined(separator: " ")
        out += "<polyline class=\"samples\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
        let liveCount = samples.count(where: { !$0.historical })
        if liveCount <= maxLiveDots {
            out += "<g class=\"live\" fill=\"#1f5fa8\">"
            for s in samples where !s.historical { out += "<circle cx=\"\(n(x(s.at)))\" cy=\"\(n(y(s.value)))\" r=\"2\"/>" }
            out += "</g>\n"
        }
        out += "<g class=\"historical\" fill=\"white\" stroke=\"#d9730d\" stroke-width=\"1.5\">"
        for s in samples where s.historical { out += "<circle cx=\"\(n(x(s.at)))\" cy=\"\(n(y(s.value)))\" r=\"3.5\"/>" }
        out += "</g>\n"

        // Legend.
        let lx = width - right - 250
        out += "<g class=\"legend\" font-size=\"11\" fill=\"#333\">"
        out += "<circle cx=\"\(n(lx))\" cy=\"36\" r=\"2.5\" fill=\"#1f5fa8\"/><text x=\"\(n(lx + 8))\" y=\"40\">live (\(liveCount))</text>"
        out += "<circle cx=\"\(n(lx + 110))\" cy=\"36\" r=\"3.5\" fill=\"white\" stroke=\"#d9730d\" stroke-width=\"1.5\"/>"
        out += "<text x=\"\(n(lx + 118))\" y=\"40\">historical (\(samples.count - liveCount))</text></g>\n"
        if skipped > 0 { out += note("\(skipped) non-numeric sample\(skipped == 1 ? "" : "s") not plotted") }
        return out + "</svg>\n"
    }

    static func note(_ s: String) -> String {
        "<text class=\"note\" x=\"\(n(left))\" y=\"40\" fill=\"#666\" font-size=\"11\">\(escape(s))</text>\n"
    }

    /// 1, 2 or 5 × 10^k, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let p = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * p >= raw * (1 - 1e-12) { return m * p }
        return 10 * p
    }

    /// A time step giving at most about 8 ticks over `span` seconds.
    static func timeStep(_ span: Double) -> Double {
        let steps: [Double] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
                               172_800, 604_800]
        return steps.first { span / $0 <= 8 } ?? (span / 8 / 86_400).rounded(.up) * 86_400
    }

    static func timeLabel(_ t: Double, step: Double, span: Double) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: t))
        let hm = String(format: "%02d:%02d", c.hour ?? 0, c.minute ?? 0)
        if step < 60 { return hm + String(format: ":%02d", c.second ?? 0) }
        if step >= 86_400 { return String(format: "%02d-%02d", c.month ?? 0, c.day ?? 0) }
        if span > 86_400 || (c.hour == 0 && c.minute == 0) { return String(format: "%02d-%02d ", c.month ?? 0, c.day ?? 0) + hm }
        return hm
    }

    /// A coordinate with at most two decimals.
    static func n(_ v: Double) -> String {
        guard v.isFinite, abs(v) < 1e9 else { return "0" }
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    static func escape(_ s: String) -> String {
        var o = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&apos;"
            default:
                // XML 1.0 forbids most control characters even escaped.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { o += "\u{FFFD}" } else { o.unicodeScalars.append(ch) }
            }
        }
        return o
    }
}
