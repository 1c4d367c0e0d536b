// The live view of `serve --view` (and so of `make run`): one frame per tick, rendered from the
// tick's report alone. A pure function, so what the frame says is tested by rendering it
// (Tests/ControlTests/LiveFrameTests.swift); `serve` only clears the terminal and prints it.
//
// Everything the frame states comes from the report, which the loop fills from its own state:
// start-up progress (the poller's first answers), the strike and the dwell holds (the broker's
// plan), the binding constraints (the governor's, then the broker's), and the governor's notes.

import Basics
import Broker
import Foundation
import Site

public enum LiveFrame {
    /// How many governor interventions the frame lists.
    public static let interventionsShown = 3

    /// The frame for one pass, without terminal control codes.
    public static func render(_ r: TickReport, site: String) -> String {
        var out = "Switchyard — site \(site) — \(ISO8601.format(r.at))\(r.fastPath.map { "  FAST PATH: \($0)" } ?? "")\n\n"
        if let s = r.startup {
            out += "  starting     waiting for first poll (\(s.answered)/\(s.total) devices)\(waitingList(s))\n"
        }
        if !r.neverAnswered.isEmpty {
            out += "  comm loss    \(r.neverAnswered.count) device(s) never answered since start: \(list(r.neverAnswered))\n"
        }
        if let siteKW = r.siteKW {
            let frac = r.limitKW > 0 ? min(1, max(0, siteKW / r.limitKW)) : 0
            let filled = Int(frac * 40)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: 40 - filled)
            out += "  site import  \(mw(siteKW)) / cap \(mw(r.limitKW))  [\(bar)] \(Int(frac * 100))%\n"
        } else {
            let why = r.startup != nil ? "site meter not read yet" : "no fresh site meter reading"
            out += "  site import     n/a    / cap \(mw(r.limitKW))  (\(why))\n"
        }
        let sofar = r.startup != nil ? "  (devices read so far)" : ""
        out += "  mining       \(mw(r.miningKW))\(sofar)\n"
        out += "  inference    \(mw(r.inferenceKW))\(sofar)\n"
        out += "  price        \(price(r))/MWh\(r.hashpriceUsdPerPHDay.map { String(format: "   hashprice $%.2f/PH/day", $0) } ?? "")"
            + "      mode: \(r.mode.rawValue)\(r.brokerFeasible ? "" : "  (infeasible)")\n"
        out += "  objective    $\(String(format: "%.0f", r.objective.total))/h\n"
        out += "  events       \(r.events.isEmpty ? "none" : r.events.joined(separator: "; "))\n"
        out += "  strike       \(strikeLine(r))\n"
        out += "  dwell        \(dwellLine(r))\n"
        out += bindingLines(r)
        if !r.interventions.isEmpty {
            let shown = r.interventions.prefix(interventionsShown)
            let more = r.interventions.count - shown.count
            out += "\n  governor (\(more > 0 ? "top \(shown.count) of \(r.interventions.count)" : "\(shown.count)")):\n"
                + shown.map { "   • \($0)" }.joined(separator: "\n") + "\n"
        }
        let failed = r.writes.filter { !$0.verified }
        out += "\n  writes \(r.writes.count) (\(failed.count) failed)   Ctrl-C to stop\n"
        return out
    }

    /// The strike line: why mining is off and the earliest time it can come back, or that the rule does not hold it.
    static func strikeLine(_ r: TickReport) -> String {
        guard let s = r.strike else { return "not curtailing (price below the strike)" }
        let p = s.status.policy
        let restart = p.strikeUsdPerMWh - p.hysteresisUsdPerMWh
        let why: String
        switch s.status.hold {
        case .atStrike:
            why = "mining off: price \(usd(s.status.priceUsdPerMWh)) ≥ strike \(usd(p.strikeUsdPerMWh))"
        case .hysteresis:
            why = "mining off (hysteresis): price \(usd(s.status.priceUsdPerMWh)) is below the strike \(usd(p.strikeUsdPerMWh)) "
                + "but not below \(usd(restart)) (strike − \(usd(p.hysteresisUsdPerMWh)))"
        case .minOffTime:
            why = "mining off (minimum off time): price \(usd(s.status.priceUsdPerMWh)) is below \(usd(restart))"
        }
        let since = "since \(clock(s.since))"
        let minOff = "\(Int(p.minOffS.rounded())) s minimum off time"
        let end: String
        if s.status.hold == .minOffTime {
            end = "ends \(clock(s.earliestEnd)) (\(minOff), \(seconds(s.earliestEnd - r.at)) left) if the price stays below \(usd(restart))"
        } else if s.earliestEnd > r.at {
            end = "can end \(clock(s.earliestEnd)) at the earliest (\(minOff)), once the price is below \(usd(restart))"
        } else {
            end = "ends once the price is below \(usd(restart)) (\(minOff) over)"
        }
        return "\(why), \(since); \(end)"
    }

    /// The dwell line: how many containers their minimum on or off time holds, and from when to when they are released.
    static func dwellLine(_ r: TickReport) -> String {
        if r.dwell.isEmpty { return "no container held by its minimum on or off time" }
        var parts: [String] = []
        for (kind, words) in [(DwellHold.Kind.minOn, "on (minimum on time)"), (.minOff, "off (minimum off time)")] {
            let held = r.dwell.filter { $0.kind == kind }
            guard let first = held.map(\.until).min(), let last = held.map(\.until).max() else { continue }
            let when = clock(first) == clock(last) ? "until \(clock(first))" : "released \(clock(first)) … \(clock(last))"
            parts.append("\(held.count) \(words) \(when)")
        }
        return "\(r.dwell.count) container(s) held: " + parts.joined(separator: "; ")
    }

    /// The binding constraint of the moment (the first reported), and how many more bind.
    static func bindingLines(_ r: TickReport) -> String {
        guard let first = r.binding.first else {
            return r.startup != nil ? "  binding      none reported yet (waiting for first poll)\n" : "  binding      none: every setpoint is where its value puts it\n"
        }
        var out = "  binding      \(first.text)  [\(first.source.rawValue)]\n"
        for b in r.binding.dropFirst().prefix(2) { out += "               \(b.text)  [\(b.source.rawValue)]\n" }
        if r.binding.count > 3 { out += "               (+\(r.binding.count - 3) more)\n" }
        return out
    }

    static func waitingList(_ s: StartupProgress) -> String {
        s.waiting.isEmpty ? "" : "; not yet: \(list(s.waiting))"
    }

    static func list(_ ids: [String]) -> String {
        ids.prefix(4).joined(separator: ", ") + (ids.count > 4 ? " and \(ids.count - 4) more" : "")
    }

    /// "$42", or where a price came from when the signals had none: "$42 (no price yet: last known …)", "none (… mining held …)".
    public static func price(_ r: TickReport) -> String {
        let p = String(format: "$%.0f", r.priceUsdPerMWh)
        switch r.priceBasis {
        case .series: return p
        case .none: return "none (\(r.priceBasis.note ?? ""))"
        default: return "\(p) (\(r.priceBasis.note ?? ""))"
        }
    }

    /// "  3.40 MW" (right-aligned, as the log line has it).
    public static func mw(_ kw: Double) -> String { String(format: "%6.2f MW", kw / 1000) }

    static func usd(_ v: Double) -> String { String(format: "$%.0f", v) }

    /// "14:24:00Z": the time of day, UTC (the frame's header has the date).
    static func clock(_ t: Double) -> String { String(ISO8601.format(t.rounded()).dropFirst(11)) }

    /// "900 s", "12 min 30 s".
    static func seconds(_ s: Double) -> String {
        let n = Int(max(0, s).rounded())
        if n < 120 { return "\(n) s" }
        return n % 60 == 0 ? "\(n / 60) min" : "\(n / 60) min \(n % 60) s"
    }
}
