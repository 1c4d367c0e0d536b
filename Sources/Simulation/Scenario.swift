// Scenario files: faults and signals scheduled at given times (YAML).
//
//   events:
//     - {at: 30s, device: asic-07, fault: silent, for: 60s}
//     - {at: 45s, device: site-meter, fault: frequency, hz: 59.7, for: 2s}
//     - {at: 2m, price_spike: {usd_per_mwh: 1500, for: 15m}}
//     - {at: 5m, dr_event: {cap_kw: 20000, for: 30m, id: ers-1}}
//     - {at: 1h, device: gpu-01, inference_burst: {fraction: 1.0, for: 10m}}

import Basics
import Foundation
import Modbus
import Yams

/// A signal a scenario drives (for a controller run against the simulator).
public enum ScenarioSignal: Sendable, Equatable {
    case priceSpike(atSeconds: Double, usdPerMWh: Double, durationSeconds: Double)
    case drEvent(atSeconds: Double, capKW: Double, durationSeconds: Double, id: String)
}

public struct Scenario: Sendable, Equatable {
    public var faults: [ScheduledFault]
    public var signals: [ScenarioSignal]

    public init(faults: [ScheduledFault] = [], signals: [ScenarioSignal] = []) {
        self.faults = faults
        self.signals = signals
    }
}

/// Parses "250ms", "30s", "5m", "2h", "1d" or a bare number of seconds.
public func parseDurationSeconds(_ text: String) -> Double? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, factor) in units where t.hasSuffix(suffix) {
        if let v = Double(t.dropLast(suffix.count)), v >= 0, v.isFinite { return v * factor }
    }
    if let v = Double(t), v >= 0, v.isFinite { return v }
    return nil
}

public enum ScenarioLoader {
    public static func load(path: String) throws(LocatedError) -> Scenario {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw LocatedError(file: path, line: 1, column: 1, message: "cannot read the file", style: .compiler)
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(LocatedError) -> Scenario {
        let root: Node?
        do { root = try LocatedYAML.compose(text) } catch {
            switch error.problem {
            case .empty: root = nil
            case .invalid(let problem): throw LocatedError(at: error.location(in: file), "invalid YAML: \(problem)", style: .compiler)
            case .duplicateKeys, .unreadable, .other:
                throw LocatedError(at: error.location(in: file), "invalid YAML: \(error.underlying)", style: .compiler)
            }
        }
        guard let root, let map = root.mapping else {
            throw LocatedError(at: .start(of: file), "a scenario is a mapping with an 'events' list", style: .compiler)
        }
        func fail(_ n: Node, _ msg: String) -> LocatedError { LocatedError(at: n.location(in: file), msg, style: .compiler) }
        var scenario = Scenario()
        for (k, _) in map where k.string != "events" {
            throw fail(k, "unknown key '\(k.string ?? "?")'; a scenario has only 'events'")
        }
        guard let events = map["events"] else { return scenario }
        guard let list = events.sequence else { throw fail(events, "'events' must be a list") }
        for item in list {
            guard let e = item.mapping else { throw fail(item, "each event is a mapping with 'at' and a fault or signal") }
            func get(_ key: String) -> Node? { e[key] }
            func seconds(_ key: String, in m: Node.Mapping? = nil) throws(LocatedError) -> Double? {
                guard let n = (m ?? e)[key] else { return nil }
                guard let s = n.string, let v = parseDurationSeconds(s) else {
                    throw fail(n, "'\(key)' must be a duration like 30s, 5m, 2h or 250ms")
                }
                return v
            }
            func number(_ key: String, in m: Node.Mapping) throws(LocatedError) -> Double? {
                guard let n = m[key] else { return nil }
                guard let s = n.string, let v = Double(s), v.isFinite else { throw fail(n, "'\(key)' must be a number") }
                return v
            }
            guard let at = try seconds("at") else { throw fail(item, "event has no 'at' time") }
            let allowed: Set<String> = ["at", "device", "fault", "for", "code", "delay_ms", "hz", "price_spike", "dr_event",
                                        "inference_burst"]
            for (k, _) in e where !allowed.contains(k.string ?? "") {
                throw fail(k, "unknown key '\(k.string ?? "?")' in an event")
            }
            if let spikeNode = get("price_spike") {
                guard let m = spikeNode.mapping else { throw fail(spikeNode, "'price_spike' needs {usd_per_mwh, for}") }
                guard let price = try number("usd_per_mwh", in: m) else { throw fail(spikeNode, "'price_spike' needs 'usd_per_mwh'") }
                let d = try seconds("for", in: m) ?? 900
                scenario.signals.append(.priceSpike(atSeconds: at, usdPerMWh: price, durationSeconds: d))
                continue
            }
            if let drNode = get("dr_event") {
                guard let m = drNode.mapping else { throw fail(drNode, "'dr_event' needs {cap_kw, for}") }
                guard let cap = try number("cap_kw", in: m), cap >= 0 else { throw fail(drNode, "'dr_event' needs 'cap_kw' ≥ 0") }
                let d = try seconds("for", in: m) ?? 3600
                let id = m["id"]?.string ?? "scenario-dr-\(Int(at))"
                scenario.signals.append(.drEvent(atSeconds: at, capKW: cap, durationSeconds: d, id: id))
                continue
            }
            guard let deviceNode = get("device"), let device = deviceNode.string else {
                throw fail(item, get("inference_burst") != nil ? "an inference_burst needs 'device' (a GPU container)" : "a fault event needs 'device'")
            }
            if let burstNode = get("inference_burst") {
                guard let m = burstNode.mapping else { throw fail(burstNode, "'inference_burst' needs {fraction, for}") }
                for (k, _) in m where !["fraction", "for"].contains(k.string ?? "") {
                    throw fail(k, "unknown key '\(k.string ?? "?")' in 'inference_burst'; use fraction and for")
                }
                guard let f = try number("fraction", in: m), (0...1).contains(f) else {
                    throw fail(burstNode, "'inference_burst' needs 'fraction' between 0 and 1 (of the container's max power)")
                }
                scenario.faults.append(ScheduledFault(atSeconds: at, device: device, action: .inferenceBurst(fractionOfMax: f),
                                                      durationSeconds: try seconds("for", in: m) ?? 600))
                continue
            }
            guard let faultNode = get("fault"), let kind = faultNode.string else { throw fail(item, "a fault event needs 'fault'") }
            let duration = try seconds("for")
            let action: ScheduledFault.Action
            switch kind {
            case "silent", "stops-answering": action = .fault(.silent)
            case "garbage", "garbled": action = .fault(.garbage)
            case "short": action = .fault(.short)
            case "frozen", "stuck": action = .fault(.frozen)
            case "disconnect": action = .fault(.disconnect)
            case "vanish": action = .fault(.vanish)
            case "ignore-setpoint": action = .fault(.ignoreSetpoint)
            case "clear": action = .clear
            case "exception":
                guard let n = get("code"), let s = n.string, let c = UInt8(s), let ex = ModbusException(rawValue: c) else {
                    throw fail(get("code") ?? faultNode, "'exception' needs 'code', a standard Modbus exception code (1–8, 10, 11)")
                }
                action = .fault(.exception(ex))
            case "delay":
                guard let n = get("delay_ms"), let s = n.string, let ms = Int(s), ms >= 0 else {
                    throw fail(get("delay_ms") ?? faultNode, "'delay' needs 'delay_ms', a whole number of milliseconds")
                }
                action = .fault(.delay(milliseconds: ms))
            case "frequency":
                guard let n = get("hz"), let s = n.string, let hz = Double(s), (40...70).contains(hz) else {
                    throw fail(get("hz") ?? faultNode, "'frequency' needs 'hz' between 40 and 70")
                }
                action = .frequency(hz: hz)
            default:
                throw fail(faultNode, "unknown fault '\(kind)'; use silent, exception, garbage, short, delay, frozen, disconnect, vanish, ignore-setpoint, frequency or clear")
            }
            scenario.faults.append(ScheduledFault(atSeconds: at, device: device, action: action, durationSeconds: duration))
        }
        return scenario
    }
}
