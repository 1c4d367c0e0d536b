// OpenADR 3 events → `DREvent`s. One event interval becomes one `DREvent`
// (id `<eventID>#<intervalID>`), timed by the interval's own intervalPeriod or,
// when it has none, by the event's: intervals without a period follow one
// another from the event's start, each lasting the event's duration.
// A duration of PT0S (or none) on the last interval means "until cancelled".

import Basics
import Foundation

/// How to turn payloads into caps and prices.
public struct OpenADRMapping: Sendable, Hashable {
    /// Payload types read as a kW import cap (units from the payload descriptor: W, KW, MW; default KW).
    public var capPayloadTypes: Set<String>
    /// Caps for SIMPLE levels (1…3); a level without an entry becomes `.level(n)`. Level 0 means normal operation and yields nothing.
    public var simpleLevelCapsKW: [Int: Double]
    /// Programs (by `programType`) whose PRICE payloads are tariff prices (`.price`).
    /// PRICE in any other program is a paid reduction (`.paidReduction`).
    public var tariffProgramTypes: Set<String>
    /// The baseline paid reductions are measured against, per program name; `defaultBaselineKW` otherwise.
    public var baselineKWByProgram: [String: Double]
    public var defaultBaselineKW: Double?
    /// Price units when the descriptor gives none (OpenADR examples use KWH: $/kWh).
    public var defaultPriceUnits: String

    public init(capPayloadTypes: Set<String> = ["IMPORT_CAPACITY_LIMIT", "CONSUMPTION_POWER_LIMIT"],
                simpleLevelCapsKW: [Int: Double] = [:], tariffProgramTypes: Set<String> = ["PRICING_TARIFF"],
                baselineKWByProgram: [String: Double] = [:], defaultBaselineKW: Double? = nil, defaultPriceUnits: String = "KWH") {
        self.capPayloadTypes = capPayloadTypes
        self.simpleLevelCapsKW = simpleLevelCapsKW
        self.tariffProgramTypes = tariffProgramTypes
        self.baselineKWByProgram = baselineKWByProgram
        self.defaultBaselineKW = defaultBaselineKW
        self.defaultPriceUnits = defaultPriceUnits
    }
}

public enum OpenADRMapper {
    /// Maps events (in VTN order) to DR events. `source` names the VTN URL in errors;
    /// key paths are `[i].intervals[j]…` into the `/events` answer.
    public static func map(events: [OADREvent], programs: [OADRProgram], mapping: OpenADRMapping = OpenADRMapping(),
                           source: String = "events") throws(SignalsError) -> [DREvent] {
        var programsByID: [String: OADRProgram] = [:]
        for p in programs { if let id = p.id { programsByID[id] = p } }
        var out: [DREvent] = []
        for (i, e) in events.enumerated() {
            let here = "[\(i)]"
            func fail(_ kind: SignalsError.Kind, _ path: String, _ message: String) -> SignalsError {
                SignalsError(kind, message, at: SignalSource(file: source, keyPath: here + path))
            }
            let program = programsByID[e.programID]
            let eventID = e.id ?? "event-\(i)"
            let descriptors = (e.payloadDescriptors ?? []) + (program?.payloadDescriptors ?? [])
            var eventStart: Date?
            var eventDuration: ISODuration?
            if let p = e.intervalPeriod {
                guard let s = ISO8601.parseDate(p.start) else { throw fail(.badValue, ".intervalPeriod.start", "\"\(p.start)\" is not an ISO 8601 date-time with an offset") }
                eventStart = s
                if let d = p.duration {
                    guard let dur = ISODuration(d) else { throw fail(.badValue, ".intervalPeriod.duration", "\"\(d)\" is not an ISO 8601 duration") }
                    eventDuration = dur
                }
            }
            var cursor = eventStart
            let name = [e.eventName, program.map { $0.programLongName ?? $0.programName }].compactMap { $0 }.joined(separator: " / ")
            for (j, interval) in e.intervals.enumerated() {
                let ipath = ".intervals[\(j)]"
                var start: Date
                var duration = eventDuration
                if let p = interval.intervalPeriod {
                    guard let s = ISO8601.parseDate(p.start) else { throw fail(.badValue, ipath + ".intervalPeriod.start", "\"\(p.start)\" is not an ISO 8601 date-time with an offset") }
                    start = s
                    if let d = p.duration {
                        guard let dur = ISODuration(d) else { throw fail(.badValue, ipath + ".intervalPeriod.duration", "\"\(d)\" is not an ISO 8601 duration") }
                        duration = dur
                    }
                } else {
                    guard let c = cursor else {
                        throw fail(.missingField, ipath, "interval \(interval.id) has no intervalPeriod and the event has none either")
                    }
                    start = c
                }
                var end: Date? = nil
                if let d = duration, !d.isZero {
                    guard !d.negative else { throw fail(.badValue, ipath, "negative duration \(d)") }
                    end = d.adding(to: start)
                }
                cursor = end
                if cursor == nil, interval.intervalPeriod == nil, j < e.intervals.count - 1 {
                    throw fail(.missingField, ipath, "interval \(interval.id) is open-ended (no duration) but later intervals follow")
                }
                for (k, payload) in interval.payloads.enumerated() {
                    let ppath = ipath + ".payloads[\(k)]"
                    let descriptor = descriptors.first { $0.payloadType == payload.type }
                    guard let action = try action(for: payload, descriptor: descriptor, program: program, mapping: mapping,
                                                  fail: { kind, msg in fail(kind, ppath, msg) }) else { continue }
                    out.append(DREvent(id: "\(eventID)#\(interval.id)", origin: .openADR(programID: e.programID, eventID: eventID, intervalID: interval.id),
                                       action: action, start: start, end: end, reason: name.isEmpty ? "OpenADR event \(eventID)" : name,
                                       priority: e.priority))
                }
            }
        }
        return out
    }

    /// kW in one unit of an OpenADR power payload (`W`, `KW`, `MW`, any case); nil for other units.
    public static func kilowatts(per units: String) -> Double? {
        switch units.uppercased() {
        case "W": 0.001
        case "KW": 1
        case "MW": 1000
        default: nil
        }
    }

    static func action(for payload: OADRValuesMap, descriptor: OADRPayloadDescriptor?, program: OADRProgram?, mapping: OpenADRMapping,
                       fail: (SignalsError.Kind, String) -> SignalsError) throws(SignalsError) -> DREvent.Action? {
        func single() throws(SignalsError) -> Double {
            guard payload.values.count == 1, let v = payload.values[0].number, v.isFinite else {
                throw fail(.badValue, "\(payload.type) needs exactly one number in values, got \(payload.values.count) value(s)")
            }
            return v
        }
        if mapping.capPayloadTypes.contains(payload.type) {
            let v = try single()
            let units = (descriptor?.units ?? "KW").uppercased()
            guard let scale = kilowatts(per: units) else {
                throw fail(.badValue, "\(payload.type) units \"\(units)\" are not W, KW or MW")
            }
            guard v >= 0 else { throw fail(.badValue, "\(payload.type) must be ≥ 0, got \(v)") }
            return .importCap(kW: v * scale)
        }
        switch payload.type {
        case "PRICE":
            let v = try single()
            if let cur = descriptor?.currency, cur.uppercased() != "USD" {
                throw fail(.badValue, "PRICE currency \(cur) is not USD")
            }
            let units = (descriptor?.units ?? mapping.defaultPriceUnits).uppercased()
            let perMWh: Double
            switch units {
            case "KWH": perMWh = v * 1000
            case "MWH": perMWh = v
            case "WH": perMWh = v * 1_000_000
            default: throw fail(.badValue, "PRICE units \"\(units)\" are not KWH, MWH or WH")
            }
            if let t = program?.programType, mapping.tariffProgramTypes.contains(t) { return .price(usdPerMWh: perMWh) }
            let baseline = program.flatMap { mapping.baselineKWByProgram[$0.programName] } ?? mapping.defaultBaselineKW
            return .paidReduction(usdPerMWh: perMWh, baselineKW: baseline)
        case "SIMPLE":
            let v = try single()
            guard v == v.rounded(), (0...3).contains(v) else { throw fail(.badValue, "SIMPLE level must be 0, 1, 2 or 3, got \(v)") }
            let level = Int(v)
            if level == 0 { return nil }
            if let cap = mapping.simpleLevelCapsKW[level] { return .importCap(kW: cap) }
            return .level(level)
        default:
            return nil  // other payload types (alerts, GHG, …) carry nothing Switchyard acts on
        }
    }
}
