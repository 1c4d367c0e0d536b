// /metrics in the Prometheus text format (0.0.4), written by hand: a fixed set
// of metric names with bounded label sets (site, device, class, code, mode).

import Control
import Foundation
import Synchronization

public final class MetricsRegistry: Sendable {
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    public static let tickBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
    /// Modbus error classes: the standard exception codes, then the transport failures.
    public static let errorCodes = ["1", "2", "3", "4", "5", "6", "8", "10", "11", "other_exception", "timeout", "connection", "other"]

    struct Histogram {
        var buckets: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(_ b: [Double]) { buckets = b; counts = Array(repeating: 0, count: b.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in buckets.enumerated() where v <= b { counts[i] += 1 }
            sum += v
            count += 1
        }
    }

    struct State {
        var tick = Histogram(MetricsRegistry.tickBuckets)
        var pollLatency: [String: Histogram] = [:]
        var modbusErrors: [String: [String: Int]] = [:]
        var lastSuccess: [String: Double] = [:]
        var lastFailures: [String: Int] = [:]
        var interventions = 0
        var ticks = 0
        var authFailures = 0
    }

    let state = Mutex(State())
    public let site: String

    public init(site: String) { self.site = site }

    /// Classifies a poller error line into a bounded code label.
    public static func errorCode(_ error: String?) -> String {
        guard let e = error?.lowercased() else { return "other" }
        if let r = e.range(of: "exception ") {
            let digits = e[r.upperBound...].prefix { $0.isNumber }
            if let c = Int(digits) { return errorCodes.contains(String(c)) ? String(c) : "other_exception" }
        }
        if e.contains("timeout") || e.contains("timed out") { return "timeout" }
        if e.contains("refused") || e.contains("unreachable") || e.contains("connect") || e.contains("reset") { return "connection" }
        return "other"
    }

    /// Called once per tick with the loop that ticked.
    public func observe(_ report: TickReport, tickDuration: Duration, loop: ControlLoop) {
        let secs = Double(tickDuration.components.seconds) + Double(tickDuration.components.attoseconds) / 1e18
        var telemetry: [(String, DeviceTelemetry)] = []
        for t in loop.poller.targets { if let tel = loop.poller.telemetry(t.id) { telemetry.append((t.id, tel)) } }
        state.withLock { s in
            s.ticks += 1
            s.tick.observe(secs)
            s.interventions += report.interventions.count
            for (id, tel) in telemetry {
                if let ok = tel.lastSuccess, ok != s.lastSuccess[id] {
                    s.lastSuccess[id] = ok
                    s.pollLatency[id, default: Histogram(Self.latencyBuckets)].observe(tel.lastLatencyS)
                }
                let before = s.lastFailures[id] ?? 0
                if tel.consecutiveFailures > before {
                    s.modbusErrors[id, default: [:]][Self.errorCode(tel.lastError), default: 0] += tel.consecutiveFailures - before
                }
                s.lastFailures[id] = tel.consecutiveFailures
            }
        }
    }

    public func authFailed() { state.withLock { $0.authFailures += 1 } }

    /// The exposition text for the current loop.
    public func render(loop: ControlLoop) -> String {
        let s = state.withLock { $0 }
        let r = loop.lastReport
        let site = esc(self.site)
        var out = ""
        func gauge(_ name: String, _ help: String, _ rows: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (labels, v) in rows { out += "\(name){\(labels)} \(fmt(v))\n" }
        }
        func counter(_ name: String, _ help: String, _ rows: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for (labels, v) in rows { out += "\(name){\(labels)} \(fmt(v))\n" }
        }
        func histogram(_ name: String, _ help: String, _ rows: [(String, Histogram)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (labels, h) in rows {
                for (i, b) in h.buckets.enumerated() { out += "\(name)_bucket{\(labels),le=\"\(fmt(b))\"} \(h.counts[i])\n" }
                out += "\(name)_bucket{\(labels),le=\"+Inf\"} \(h.count)\n"
                out += "\(name)_sum{\(labels)} \(fmt(h.sum))\n\(name)_count{\(labels)} \(h.count)\n"
            }
        }
        let base = "site=\"\(site)\""
        gauge("switchyard_site_import_kw", "Measured site import (kW); absent when the site meter is stale.",
              r?.siteKW.map { [(base, $0)] } ?? [])
        gauge("switchyard_site_cap_kw", "Site import cap in force, including DR caps (kW).", r.map { [(base, $0.limitKW)] } ?? [])
        gauge("switchyard_class_kw", "Measured power per load class (kW).",
              r.map { [("\(base),class=\"mining\"", $0.miningKW), ("\(base),class=\"inference\"", $0.inferenceKW)] } ?? [])
        gauge("switchyard_price_usd_per_mwh", "Energy price in force.", r.map { [(base, $0.priceUsdPerMWh)] } ?? [])
        let devices = loop.plant.devices.map(\.id)
        var power: [(String, Double)] = [], setpoint: [(String, Double)] = [], up: [(String, Double)] = []
        for id in devices {
            let l = "\(base),device=\"\(esc(id))\""
            let tel = loop.poller.telemetry(id)
            if let w = tel?.values["active_power_w"] { power.append((l, w / 1000)) }
            if let sp = r?.setpointsKW[id] { setpoint.append((l, sp)) }
            let isUp = tel?.isReachable ?? false
            up.append((l, isUp ? 1 : 0))
        }
        gauge("switchyard_device_power_kw", "Measured device power (kW).", power)
        gauge("switchyard_device_setpoint_kw", "Setpoint allowed by the governor (kW).", setpoint)
        gauge("switchyard_device_up", "1 when the device answered its last poll.", up)
        gauge("switchyard_device_not_following", "1 when a container's measured power does not follow the setpoint it accepted.",
              loop.actuator.targets.map { t in ("\(base),device=\"\(esc(t.id))\"", loop.actuator.followState(t.id) == .notFollowing ? 1 : 0) })
        var meterRows: [(String, Double)] = []
        for meter in loop.site.nodes.compactMap(\.meter) {
            let st = loop.meterWatch.status(meter)
            for state in [MeterStatus.ok, .frozen, .inconsistent] {
                meterRows.append(("\(base),device=\"\(esc(meter))\",state=\"\(state.rawValue)\"", st == state ? 1 : 0))
            }
        }
        gauge("switchyard_meter_state", "1 for a node meter's health: ok, frozen (unchanged while its node moved) or inconsistent (disagrees with its children); frozen and inconsistent count as stale.", meterRows)
        let mode = r?.mode.rawValue
        gauge("switchyard_governor_mode", "1 for the governor's current mode.",
              ["normal", "shedding", "over-cap", "comm-loss", "starting"].map { (m: String) -> (String, Double) in ("\(base),mode=\"\(m)\"", mode == m ? 1 : 0) })
        histogram("switchyard_poll_latency_seconds", "Time to poll one device.",
                  loop.poller.targets.map(\.id).compactMap { id in s.pollLatency[id].map { ("\(base),device=\"\(esc(id))\"", $0) } })
        var errs: [(String, Double)] = []
        for id in loop.poller.targets.map(\.id) {
            for (code, n) in (s.modbusErrors[id] ?? [:]).sorted(by: { $0.key < $1.key }) {
                errs.append(("\(base),device=\"\(esc(id))\",code=\"\(code)\"", Double(n)))
            }
        }
        counter("switchyard_modbus_errors_total", "Failed polls by Modbus exception code or transport failure.", errs)
        histogram("switchyard_tick_duration_seconds", "Duration of one control tick (poll, dispatch, govern, write).", [(base, s.tick)])
        counter("switchyard_ticks_total", "Control ticks run.", [(base, Double(s.ticks))])
        counter("switchyard_governor_interventions_total", "Safety-governor interventions.", [(base, Double(s.interventions))])
        counter("switchyard_auth_failures_total", "Failed API authentications.", [(base, Double(s.authFailures))])
        return out
    }

    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    func fmt(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
