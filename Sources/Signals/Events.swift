// Demand-response events in Switchyard's own vocabulary. OpenADR events and
// operator-created (manual) events both become `DREvent`s.

import Basics
import Foundation

/// One demand-response instruction over a time window.
public struct DREvent: Sendable, Hashable, Identifiable {
    /// What the event asks for.
    public enum Action: Sendable, Hashable {
        /// A hard cap on site import (kW) for the window.
        case importCap(kW: Double)
        /// A payment ($/MWh) for each MWh consumed below `baselineKW` during the window.
        /// A nil baseline means "the site's own baseline" (the lead's model decides).
        case paidReduction(usdPerMWh: Double, baselineKW: Double?)
        /// An event price ($/MWh) for the window, e.g. from a PRICE payload of a tariff program.
        case price(usdPerMWh: Double)
        /// An OpenADR SIMPLE level (0 normal … 3 emergency) with no cap configured for it.
        case level(Int)
    }

    /// Where the event came from.
    public enum Origin: Sendable, Hashable {
        case manual
        case openADR(programID: String, eventID: String, intervalID: Int)
    }

    public var id: String
    public var origin: Origin
    public var action: Action
    /// Start of the window (inclusive).
    public var start: Date
    /// End of the window (exclusive); nil means until cancelled.
    public var end: Date?
    /// Human text: the operator's reason, or the OpenADR event and program names.
    public var reason: String
    /// OpenADR priority (lower is more important); nil when not given.
    public var priority: Int?

    public init(id: String, origin: Origin, action: Action, start: Date, end: Date?, reason: String, priority: Int? = nil) {
        self.id = id
        self.origin = origin
        self.action = action
        self.start = start
        self.end = end
        self.reason = reason
        self.priority = priority
    }

    public func isActive(at t: Date) -> Bool { start <= t && (end.map { t < $0 } ?? true) }

    /// The cap in kW when this is an import cap.
    public var capKW: Double? { if case .importCap(let kw) = action { kw } else { nil } }
}

/// Operator-created events: a file of `{id, cap_kw | usd_per_mwh [baseline_kw], from, until, reason}` entries.
public enum ManualEvents {
    /// Reads a YAML or JSON file: a list of events, or a mapping with an `events:` list.
    public static func load(path: String) throws(SignalsError) -> [DREvent] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw SignalsError(.io, "cannot read the file: \(error.localizedDescription)", at: SignalSource(file: path))
        }
        return try parse(text, name: path)
    }

    public static func parse(_ text: String, name: String) throws(SignalsError) -> [DREvent] {
        let root = try TreeNode.parse(text, file: name)
        var list = root
        if case .map = root.value {
            list = try root.map("the file", allowed: ["events"]).required("events", in: root)
        }
        var out: [DREvent] = []
        var seen: [String: Int] = [:]
        for item in try list.list("events") {
            let event = try parseOne(item)
            if let line = seen[event.id] {
                throw item.fail(.badValue, "event id \"\(event.id)\" is used twice (first on line \(line))")
            }
            seen[event.id] = item.line ?? 0
            out.append(event)
        }
        return out
    }

    /// One manual event (also used by an API that accepts a single event as JSON).
    static func parseOne(_ item: TreeNode) throws(SignalsError) -> DREvent {
        let m = try item.map("an event", allowed: ["id", "cap_kw", "usd_per_mwh", "baseline_kw", "from", "until", "reason"])
        let idNode = try m.required("id", in: item)
        let id = try idNode.string("id")
        guard !id.isEmpty else { throw idNode.fail(.badValue, "id must not be empty") }
        // An import cap (`cap_kw`), or a paid reduction (`usd_per_mwh` for each MWh below `baseline_kw`; without
        // a baseline, the mean measured import before the event, as for an OpenADR event: MeasuredBaseline).
        let action: DREvent.Action
        switch (m.optional("cap_kw"), m.optional("usd_per_mwh")) {
        case (let capNode?, nil):
            let cap = try capNode.number("cap_kw")
            guard cap >= 0 else { throw capNode.fail(.badValue, "cap_kw must be ≥ 0, not \(cap)") }
            if let b = m.optional("baseline_kw") {
                throw b.fail(.badValue, "baseline_kw belongs to a paid reduction (usd_per_mwh), not to an import cap")
            }
            action = .importCap(kW: cap)
        case (nil, let priceNode?):
            let usd = try priceNode.number("usd_per_mwh")
            guard usd >= 0 else { throw priceNode.fail(.badValue, "usd_per_mwh must be ≥ 0, not \(usd)") }
            var baseline: Double?
            if let b = m.optional("baseline_kw") {
                let kw = try b.number("baseline_kw")
                guard kw >= 0 else { throw b.fail(.badValue, "baseline_kw must be ≥ 0, not \(kw)") }
                baseline = kw
            }
            action = .paidReduction(usdPerMWh: usd, baselineKW: baseline)
        case (_?, let priceNode?):
            throw priceNode.fail(.badValue, "an event is an import cap (cap_kw) or a paid reduction (usd_per_mwh), not both")
        case (nil, nil):
            throw item.fail(.missingField, "an event needs cap_kw (an import cap) or usd_per_mwh (a paid reduction)")
        }
        let from = try m.required("from", in: item).timestamp("from")
        var until: Date?
        if let u = m.optional("until") {
            let t = try u.timestamp("until")
            guard t > from else { throw u.fail(.badValue, "until (\(ISO8601.format(t))) must be after from (\(ISO8601.format(from)))") }
            until = t
        }
        let reason = try m.optional("reason")?.string("reason") ?? "manual event \(id)"
        return DREvent(id: id, origin: .manual, action: action, start: from, end: until, reason: reason)
    }
}
