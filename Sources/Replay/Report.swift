// The replay report: one self-contained HTML file (inline CSS and SVG, no external
// resources). Charts: cumulative net $ of every policy (controller and baselines) on one
// chart; net $ per day, one bar per policy; power by class over time (stacked) with the price
// overlaid, switchable between policies; daily revenue by class; the energy price against the
// mining value; and the ten most expensive hours with what the controller did in each. Long traces are drawn as bucket averages.
// A few lines of script record, once the page is laid out, the size of each chart in
// `data-rendered` attributes, so a headless browser's DOM dump shows what was drawn.

import Basics
import Foundation
import Site

public enum ReplayReport {
    public static func html(_ r: BacktestResult) -> String {
        let s = r.summary
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>Switchyard replay: \(esc(s.site)) \(esc(s.from)) … \(esc(s.to))</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
        h1{font-size:20px}h2{font-size:16px;margin-top:28px}
        table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
        td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
        .actions{text-align:left;font-size:12px;color:#444;max-width:520px}
        svg{background:#fff;border:1px solid #ddd}.legend span{display:inline-block;margin-right:14px}
        .sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
        .note{color:#666;font-size:12px}
        .power-run{display:none}.power-run.shown{display:block}
        .switch button{font:inherit;margin:0 6px 6px 0;padding:3px 10px;border:1px solid #bbb;background:#f8f8f8;border-radius:3px;cursor:pointer}
        .switch button.on{background:#222;color:#fff;border-color:#222}
        </style></head><body>
        <h1>Replay of site <code>\(esc(s.site))</code></h1>
        <p>\(esc(s.from)) … \(esc(s.to)) · \(s.ticks) ticks of \(Int(s.tickS)) s · physics step \(Int(s.physicsStepS)) s · seed \(s.seed)<br>
        <span class="note">Inputs: \(s.inputs.map(esc).joined(separator: ", "))</span></p>
        <h2>Summary</h2>
        <table id="summary">
        """
        let cells = SummaryTable.cells(s)
        h += "<tr>" + cells[0].map { "<th>\(esc($0))</th>" }.joined() + "</tr>\n"
        for row in cells.dropFirst() { h += "<tr>" + row.map { "<td>\(esc($0))</td>" }.joined() + "</tr>\n" }
        h += "</table>\n"
        h += "<p class=\"note\">Money is counted from what the simulated site did (docs/replay.md). Costs are negative.</p>\n"

        let samples = r.policy.samples
        let runs = [r.policy] + r.baselines
        h += "<h2>Cumulative net $, every policy</h2>\n"
        h += legend(runs.enumerated().map { (policyColor($0.offset), $0.element.summary.label) })
        h += cumulativeChart(runs, from: r.config.from, to: r.config.to)
        h += "<h2>Net $ per day, every policy</h2>\n"
        h += legend(runs.enumerated().map { (policyColor($0.offset), $0.element.summary.label) })
        h += dailyPolicyChart(runs)
        h += "<h2>Power by class, with the energy price</h2>\n"
        h += "<div class=\"switch\" id=\"power-switch\">" + runs.map {
            "<button type=\"button\" data-run=\"\(esc($0.summary.id))\"\($0.summary.id == r.policy.summary.id ? " class=\"on\"" : "")>\(esc($0.summary.label))</button>"
        }.joined() + "</div>\n"
        h += legend([("#f2a33a", "mining"), ("#4a7fd0", "inference"), ("#9aa5b1", "auxiliary"), ("#c0392b", "price $/MWh (right axis)")])
        for run in runs {
            let own = run.summary.id == r.policy.summary.id
            h += "<div class=\"power-run\(own ? " shown" : "")\" data-run=\"\(esc(run.summary.id))\">"
            h += "<p class=\"note\">Showing: \(esc(run.summary.label))</p>\n"
            h += powerChart(run.samples, from: r.config.from, to: r.config.to, id: own ? "chart-power" : "chart-power-\(run.summary.id)")
            h += "</div>\n"
        }
        h += "<h2>Daily revenue by class</h2>\n"
        h += legend([("#f2a33a", "mining"), ("#4a7fd0", "inference"), ("#222", "net (after energy, DR, penalties)")])
        h += dailyChart(samples)
        h += "<h2>Energy price against mining value</h2>\n"
        var items = [("#c0392b", "energy price (with peak adders)"), ("#2e8b57", "mining value (fleet J/TH)")]
        let strike = r.config.site.economics.strike?.priceUsdPerMWh
        if strike != nil { items.append(("#777", "strike")) }
        h += legend(items)
        h += valueChart(samples, from: r.config.from, to: r.config.to, strike: strike)
        h += "<h2>The 10 most expensive hours, and what the controller did</h2>\n"
        let hourly = hourlyPrices(samples)
        if let lo = hourly.min(), let hi = hourly.max(), hi - lo < 0.005 {
            h += "<p id=\"top-hours-flat\">The energy price has no spread over this replay: every hour averaged \(String(format: "%.2f", hi)) $/MWh, so no hour is more expensive than another.</p>\n"
        } else {
        h += "<p class=\"note\">Ranked by average price; hours at the same price are ranked by their energy cost (the larger cost impact first).</p>\n"
        h += "<table id=\"top-hours\"><tr><th>hour (UTC)</th><th>avg price $/MWh</th><th>site MW</th><th>mining MW</th><th>inference MW</th><th>energy cost</th><th>net</th><th class=\"actions\">what the controller did</th></tr>\n"
        for n in r.policy.topHours {
            h += "<tr><td>\(esc(ISO8601.format(n.hourStart)))</td><td>\(String(format: "%.2f", n.averagePriceUsdPerMWh))</td>"
            h += "<td>\(String(format: "%.2f", n.siteMW))</td><td>\(String(format: "%.2f", n.miningMW))</td><td>\(String(format: "%.2f", n.inferenceMW))</td>"
            h += "<td>\(esc(SummaryTable.usd(-n.energyCostUsd)))</td><td>\(esc(SummaryTable.usd(n.netUsd)))</td>"
            h += "<td class=\"actions\">\(n.actions.map(esc).joined(separator: "<br>"))</td></tr>\n"
        }
        h += "</table>\n"
        }
        let incidents = ([r.policy] + r.baselines).flatMap { run in run.incidents.prefix(5).map { "\(run.summary.label): \($0)" } }
        if !incidents.isEmpty {
            h += "<h2>Incidents</h2><ul>" + incidents.map { "<li>\(esc($0))</li>" }.joined() + "</ul>\n"
        }
        h += """
        <script>
        function showPower(id) {
          var found = false;
          document.querySelectorAll('.power-run').forEach(function (d) {
            var on = d.getAttribute('data-run') === id; d.classList.toggle('shown', on); found = found || on;
          });
          if (!found) return;
          document.querySelectorAll('#power-switch button').forEach(function (b) { b.classList.toggle('on', b.getAttribute('data-run') === id); });
          document.body.setAttribute('data-power-shown', id);
        }
        document.querySelectorAll('#power-switch button').forEach(function (b) {
          b.addEventListener('click', function () { showPower(b.getAttribute('data-run')); });
        });
        window.addEventListener('load', function () {
          var m = /power=([A-Za-z0-9_-]+)/.exec(location.hash);
          showPower(m ? m[1] : 'policy');
          var n = 0;
          document.querySelectorAll('svg.chart').forEach(function (svg) {
            var b = svg.getBBox();
            var marks = svg.querySelectorAll('path,rect,polyline,line').length;
            svg.setAttribute('data-rendered', Math.round(b.width) + 'x' + Math.round(b.height) + ' marks=' + marks);
            if (b.width > 0 && b.height > 0 && marks > 0) n++;
          });
          document.body.setAttribute('data-charts-rendered', String(n));
        });
        </script>
        </body></html>

        """
        return h
    }

    // MARK: Charts

    static let W = 1000.0, H = 300.0, L = 60.0, R = 60.0, T = 12.0, B = 30.0

    static func legend(_ items: [(String, String)]) -> String {
        "<div class=\"legend\">" + items.map { "<span><i class=\"sw\" style=\"background:\($0.0)\"></i>\(esc($0.1))</span>" }.joined() + "</div>\n"
    }

    /// Averages of consecutive samples, at most `maxBuckets` of them (weighted by duration).
    static func buckets(_ s: [TickSample], maxBuckets: Int = 1200) -> [TickSample] {
        guard s.count > maxBuckets else { return s }
        let per = (s.count + maxBuckets - 1) / maxBuckets
        return stride(from: 0, to: s.count, by: per).map { i in
            let part = s[i..<min(i + per, s.count)]
            let secs = part.reduce(0) { $0 + $1.seconds }
            func avg(_ k: (TickSample) -> Double) -> Double { part.reduce(0) { $0 + k($1) * $1.seconds } / secs }
            return TickSample(at: part.first!.at, seconds: secs, priceUsdPerMWh: avg(\.priceUsdPerMWh), miningValueUsdPerMWh: avg(\.miningValueUsdPerMWh),
                              siteKW: avg(\.siteKW), miningKW: avg(\.miningKW), inferenceKW: avg(\.inferenceKW), auxiliaryKW: avg(\.auxiliaryKW),
                              miningUsd: 0, inferenceUsd: 0, energyUsd: 0, drCreditUsd: 0, penaltyUsd: 0)
        }
    }

    static func niceMax(_ v: Double) -> Double {
        guard v > 0, v.isFinite else { return 1 }
        let p = pow(10, floor(log10(v)))
        for m in [1.0, 2, 2.5, 5, 10] where m * p >= v { return m * p }
        return 10 * p
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func timeAxis(from: Double, to: Double) -> String {
        let span = to - from
        let step: Double = span <= 2 * 86_400 ? 6 * 3600 : span <= 21 * 86_400 ? 86_400 : span <= 120 * 86_400 ? 7 * 86_400 : 30 * 86_400
        var out = ""
        var t = (from / step).rounded(.up) * step
        while t <= to {
            let x = L + (t - from) / span * (W - L - R)
            let label = step < 86_400 ? String(ISO8601.format(t).dropFirst(5).prefix(11)) : String(ISO8601.format(t).prefix(10))
            out += "<line x1=\"\(f(x))\" y1=\"\(f(H - B))\" x2=\"\(f(x))\" y2=\"\(f(H - B + 4))\" stroke=\"#999\"/>"
            out += "<text x=\"\(f(x))\" y=\"\(f(H - 8))\" font-size=\"10\" text-anchor=\"middle\">\(esc(label))</text>"
            t += step
        }
        return out
    }

    static func yAxis(max: Double, unit: String, right: Bool = false) -> String {
        var out = ""
        for k in 0...4 {
            let v = max * Double(k) / 4
            let y = H - B - (H - B - T) * Double(k) / 4
            let x = right ? W - R + 4 : L - 4
            if !right { out += "<line x1=\"\(f(L))\" y1=\"\(f(y))\" x2=\"\(f(W - R))\" y2=\"\(f(y))\" stroke=\"#eee\"/>" }
            out += "<text x=\"\(f(x))\" y=\"\(f(y + 3))\" font-size=\"10\" text-anchor=\"\(right ? "start" : "end")\">\(esc(short(v)))\(k == 4 ? " " + unit : "")</text>"
        }
        return out
    }

    static func short(_ v: Double) -> String {
        abs(v) >= 1000 ? String(format: "%.0fk", v / 1000) : (v == v.rounded() ? String(format: "%.0f", v) : String(format: "%.1f", v))
    }

    /// Five horizontal gridlines from `from` to `from + range`, each labelled at the left (`prefix` before the value).
    static func valueGrid(from lo: Double, range: Double, prefix: String, y: (Double) -> Double) -> String {
        var out = ""
        for k in 0...4 {
            let v = lo + range * Double(k) / 4
            out += "<line x1=\"\(f(L))\" y1=\"\(f(y(v)))\" x2=\"\(f(W - R))\" y2=\"\(f(y(v)))\" stroke=\"#eee\"/>"
            out += "<text x=\"\(f(L - 4))\" y=\"\(f(y(v) + 3))\" font-size=\"10\" text-anchor=\"end\">\(prefix)\(esc(short(v)))</text>"
        }
        return out
    }

    static func svgOpen(_ id: String, _ title: String) -> String {
        "<svg class=\"chart\" id=\"\(id)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\" viewBox=\"0 0 \(Int(W)) \(Int(H))\" role=\"img\"><title>\(esc(title))</title>"
    }

    static let policyColors = ["#222222", "#e67e22", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d"]
    static func policyColor(_ k: Int) -> String { policyColors[k % policyColors.count] }
    /// Baselines are dashed, each differently, so two policies that earn the same stay visible.
    static func policyDash(_ k: Int) -> String { ["", "8,4", "3,3", "12,3,3,3", "2,6", "6,2"][k % 6] }

    /// Average price of each UTC hour the samples cover.
    static func hourlyPrices(_ s: [TickSample]) -> [Double] {
        var sum: [Double: (Double, Double)] = [:]
        for p in s {
            let hr = (p.at / 3600).rounded(.down)
            let old = sum[hr] ?? (0, 0)
            sum[hr] = (old.0 + p.priceUsdPerMWh * p.seconds, old.1 + p.seconds)
        }
        return sum.values.compactMap { $0.1 > 0 ? $0.0 / $0.1 : nil }
    }

    /// Cumulative net $ of every run over time, one line each.
    static func cumulativeChart(_ runs: [RunResult], from: Double, to: Double) -> String {
        let span = max(to - from, 1)
        var series: [[(Double, Double)]] = []
        for run in runs {
            var acc = 0.0
            var pts: [(Double, Double)] = [(from, 0)]
            for p in run.samples { acc += p.netUsd; pts.append((p.at + p.seconds, acc)) }
            // At most ~1200 points per line.
            let per = max(1, pts.count / 1200)
            series.append(pts.enumerated().filter { $0.offset % per == 0 || $0.offset == pts.count - 1 }.map(\.element))
        }
        let values = series.flatMap { $0.map(\.1) }
        let hi = (values.max() ?? 0) > 0 ? niceMax(values.max()!) : 0
        let lo = (values.min() ?? 0) < 0 ? -niceMax(-values.min()!) : 0
        let range = max(hi - lo, 1)
        func x(_ t: Double) -> Double { L + (t - from) / span * (W - L - R) }
        func y(_ v: Double) -> Double { H - B - (H - B - T) * (v - lo) / range }
        var out = svgOpen("chart-cumulative", "Cumulative net $ of every policy")
        out += valueGrid(from: lo, range: range, prefix: "$", y: y)
        if lo < 0 { out += "<line x1=\"\(f(L))\" y1=\"\(f(y(0)))\" x2=\"\(f(W - R))\" y2=\"\(f(y(0)))\" stroke=\"#999\"/>" }
        out += timeAxis(from: from, to: to)
        // End labels, spread apart so that policies that finish close together stay readable.
        var labelY = series.map { y($0.last?.1 ?? 0) + 3 }
        let order = labelY.indices.sorted { labelY[$0] < labelY[$1] }
        for j in order.indices.dropFirst() where labelY[order[j]] < labelY[order[j - 1]] + 11 {
            labelY[order[j]] = labelY[order[j - 1]] + 11
        }
        for (k, pts) in series.enumerated() {
            let id = runs[k].summary.id
            out += "<polyline class=\"cumulative\" data-run=\"\(esc(id))\" data-final=\"\(String(format: "%.2f", pts.last?.1 ?? 0))\" points=\"\(pts.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(policyColor(k))\" stroke-width=\"\(k == 0 ? "2.2" : "1.6")\"\(k == 0 ? "" : " stroke-dasharray=\"\(policyDash(k))\"")><title>\(esc(runs[k].summary.label))</title></polyline>"
            if let last = pts.last {
                out += "<text x=\"\(f(W - R + 4))\" y=\"\(f(labelY[k]))\" font-size=\"10\" fill=\"\(policyColor(k))\">$\(esc(short(last.1)))</text>"
            }
        }
        return out + "</svg>\n"
    }

    /// Net $ per UTC day, one bar per run, grouped by day.
    static func dailyPolicyChart(_ runs: [RunResult]) -> String {
        let perRun = runs.map { days($0.samples) }
        let starts = Array(Set(perRun.flatMap { $0.map(\.start) })).sorted()
        guard let first = starts.first, let last = starts.last else { return "<p>no data</p>" }
        let values = perRun.flatMap { $0.map(\.net) }
        let hi = (values.max() ?? 0) > 0 ? niceMax(values.max()!) : 0
        let lo = (values.min() ?? 0) < 0 ? -niceMax(-values.min()!) : 0
        let range = max(hi - lo, 1)
        let from = first, to = last + 86_400
        func x(_ t: Double) -> Double { L + (t - from) / (to - from) * (W - L - R) }
        func y(_ v: Double) -> Double { H - B - (H - B - T) * (v - lo) / range }
        var out = svgOpen("chart-daily-policies", "Net $ per day, one bar per policy")
        out += valueGrid(from: lo, range: range, prefix: "$", y: y)
        out += "<line x1=\"\(f(L))\" y1=\"\(f(y(0)))\" x2=\"\(f(W - R))\" y2=\"\(f(y(0)))\" stroke=\"#999\"/>"
        let dayW = (W - L - R) / Double(starts.count)
        let bw = max(1, dayW * 0.8 / Double(runs.count))
        for (di, d) in starts.enumerated() {
            let label = String(ISO8601.format(d).prefix(10))
            out += "<text x=\"\(f(L + dayW * (Double(di) + 0.5)))\" y=\"\(f(H - 8))\" font-size=\"10\" text-anchor=\"middle\">\(esc(label))</text>"
            for (k, run) in runs.enumerated() {
                guard let day = perRun[k].first(where: { $0.start == d }) else { continue }
                let x0 = x(d) + dayW * 0.1 + bw * Double(k)
                let top = y(max(0, day.net)), bottom = y(min(0, day.net))
                out += "<rect class=\"day-net\" data-run=\"\(esc(run.summary.id))\" x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(bw))\" height=\"\(f(max(0.5, bottom - top)))\" fill=\"\(policyColor(k))\"><title>\(esc(label + " " + run.summary.label + " " + SummaryTable.usd(day.net)))</title></rect>"
            }
        }
        return out + "</svg>\n"
    }

    static func powerChart(_ all: [TickSample], from: Double, to: Double, id: String = "chart-power") -> String {
        let s = buckets(all)
        guard !s.isEmpty else { return "<p>no data</p>" }
        let span = max(to - from, 1)
        let mwMax = niceMax((s.map { $0.miningKW + $0.inferenceKW + $0.auxiliaryKW }.max() ?? 0) / 1000)
        let pMax = niceMax(min(s.map(\.priceUsdPerMWh).max() ?? 1, max(percentile(s.map(\.priceUsdPerMWh), 0.99) * 1.5, 1)))
        func x(_ t: Double) -> Double { L + (t - from) / span * (W - L - R) }
        func y(_ v: Double, _ m: Double) -> Double { H - B - (H - B - T) * Swift.max(0, Swift.min(v, m)) / m }
        // Stacked areas, each a step function over the samples.
        func area(_ lower: (TickSample) -> Double, _ upper: (TickSample) -> Double, _ color: String, _ cls: String) -> String {
            var top: [String] = [], bottom: [String] = []
            for p in s {
                let x0 = x(p.at), x1 = x(p.at + p.seconds)
                let u = y(upper(p) / 1000, mwMax), l = y(lower(p) / 1000, mwMax)
                top += ["\(f(x0)),\(f(u))", "\(f(x1)),\(f(u))"]
                bottom += ["\(f(x1)),\(f(l))", "\(f(x0)),\(f(l))"]
            }
            return "<path class=\"\(cls)\" d=\"M" + (top + bottom.reversed()).joined(separator: " L") + " Z\" fill=\"\(color)\" stroke=\"none\"/>"
        }
        var out = svgOpen(id, "Power by class (MW), stacked, with the energy price")
        out += yAxis(max: mwMax, unit: "MW") + yAxis(max: pMax, unit: "$/MWh", right: true) + timeAxis(from: from, to: to)
        out += area({ _ in 0 }, { $0.miningKW }, "#f2a33a", "mining")
        out += area({ $0.miningKW }, { $0.miningKW + $0.inferenceKW }, "#4a7fd0", "inference")
        out += area({ $0.miningKW + $0.inferenceKW }, { $0.miningKW + $0.inferenceKW + $0.auxiliaryKW }, "#9aa5b1", "auxiliary")
        var pts: [String] = []
        for p in s { pts += ["\(f(x(p.at))),\(f(y(p.priceUsdPerMWh, pMax)))", "\(f(x(p.at + p.seconds))),\(f(y(p.priceUsdPerMWh, pMax)))"] }
        out += "<polyline class=\"price\" points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.2\"/>"
        return out + "</svg>\n"
    }

    static func percentile(_ v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return 0 }
        let s = v.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * q))]
    }

    struct Day { var start: Double; var mining = 0.0; var inference = 0.0; var net = 0.0 }

    /// Revenue per UTC day.
    static func days(_ s: [TickSample]) -> [Day] {
        var out: [Day] = []
        for p in s {
            let d = (p.at / 86_400).rounded(.down) * 86_400
            if out.last?.start != d { out.append(Day(start: d)) }
            out[out.count - 1].mining += p.miningUsd
            out[out.count - 1].inference += p.inferenceUsd
            out[out.count - 1].net += p.netUsd
        }
        return out
    }

    static func dailyChart(_ s: [TickSample]) -> String {
        let ds = days(s)
        guard let first = ds.first, let last = ds.last else { return "<p>no data</p>" }
        let from = first.start, to = last.start + 86_400
        let top = niceMax(ds.map { max($0.mining + $0.inference, $0.net) }.max() ?? 1)
        let bottom = min(0, ds.map(\.net).min() ?? 0)
        let range = top - bottom
        func x(_ t: Double) -> Double { L + (t - from) / (to - from) * (W - L - R) }
        func y(_ v: Double) -> Double { H - B - (H - B - T) * (v - bottom) / range }
        var out = svgOpen("chart-daily", "Daily revenue by class ($), with net")
        out += valueGrid(from: bottom, range: range, prefix: "$", y: y)
        out += timeAxis(from: from, to: to)
        let bw = max(1, (W - L - R) / Double(ds.count) * 0.8)
        var net: [String] = []
        for d in ds {
            let x0 = x(d.start) + (W - L - R) / Double(ds.count) * 0.1
            out += "<rect class=\"mining\" x=\"\(f(x0))\" y=\"\(f(y(d.mining)))\" width=\"\(f(bw))\" height=\"\(f(y(0) - y(d.mining)))\" fill=\"#f2a33a\"><title>\(esc(ISO8601.format(d.start).prefix(10) + " mining " + SummaryTable.usd(d.mining)))</title></rect>"
            out += "<rect class=\"inference\" x=\"\(f(x0))\" y=\"\(f(y(d.mining + d.inference)))\" width=\"\(f(bw))\" height=\"\(f(y(d.mining) - y(d.mining + d.inference)))\" fill=\"#4a7fd0\"><title>\(esc(ISO8601.format(d.start).prefix(10) + " inference " + SummaryTable.usd(d.inference)))</title></rect>"
            net.append("\(f(x0 + bw / 2)),\(f(y(d.net)))")
        }
        out += "<polyline class=\"net\" points=\"\(net.joined(separator: " "))\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\"/>"
        return out + "</svg>\n"
    }

    static func valueChart(_ all: [TickSample], from: Double, to: Double, strike: Double?) -> String {
        let s = buckets(all)
        guard !s.isEmpty else { return "<p>no data</p>" }
        let span = max(to - from, 1)
        let vMax = s.map(\.miningValueUsdPerMWh).max() ?? 0
        let top = niceMax(max(vMax * 1.5, strike.map { $0 * 1.2 } ?? 0, min(s.map(\.priceUsdPerMWh).max() ?? 1, percentile(s.map(\.priceUsdPerMWh), 0.99) * 1.5)))
        let low = min(0, s.map(\.priceUsdPerMWh).min() ?? 0)
        func x(_ t: Double) -> Double { L + (t - from) / span * (W - L - R) }
        func y(_ v: Double) -> Double { H - B - (H - B - T) * (Swift.max(low, Swift.min(v, top)) - low) / (top - low) }
        var out = svgOpen("chart-value", "Energy price against mining value ($/MWh)")
        out += valueGrid(from: low, range: top - low, prefix: "", y: y)
        out += timeAxis(from: from, to: to)
        func line(_ k: (TickSample) -> Double, _ color: String, _ cls: String) -> String {
            var pts: [String] = []
            for p in s { pts += ["\(f(x(p.at))),\(f(y(k(p))))", "\(f(x(p.at + p.seconds))),\(f(y(k(p))))"] }
            return "<polyline class=\"\(cls)\" points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.2\"/>"
        }
        out += line(\.priceUsdPerMWh, "#c0392b", "price")
        out += line(\.miningValueUsdPerMWh, "#2e8b57", "mining-value")
        if let strike {
            out += "<line class=\"strike\" x1=\"\(f(L))\" y1=\"\(f(y(strike)))\" x2=\"\(f(W - R))\" y2=\"\(f(y(strike)))\" stroke=\"#777\" stroke-dasharray=\"5,4\"/>"
        }
        out += "<text x=\"\(f(W - R + 4))\" y=\"\(f(T + 8))\" font-size=\"10\">$/MWh</text>"
        return out + "</svg>\n"
    }

    static func esc<S: StringProtocol>(_ s: S) -> String {
        var o = ""
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            default: o.append(c)
            }
        }
        return o
    }
}
