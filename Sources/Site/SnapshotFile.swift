import Basics
import Foundation
import Signals
import Yams

/// One device's state in a snapshot file.
public struct SnapshotDevice: Sendable, Equatable {
    public var measuredKw: Double?
    public var setpointKw: Double?
    public var available: Bool
    public var ageS: Double
    public var on: Bool?
    public var stateForS: Double?
}

/// A snapshot file (JSON): what the controller measured at one instant. See docs/dispatch.md.
public struct SiteSnapshot: Sendable {
    public var at: Double?
    public var devices: [String: SnapshotDevice]
    public var nodeMeasuredKw: [String: Double]
    public var uncontrolledKw: [String: Double]
    public var miningCurtailed: Bool
    public var miningCurtailedForS: Double
    /// Signals embedded in the snapshot (used when no separate signals file is given).
    public var signals: SiteSignals?
    public var file: String
    /// Where each device / node entry is, for errors found later (an unknown device id).
    var marks: [String: Mark] = [:]

    public static func load(path: String) throws(LocatedError) -> SiteSnapshot {
        try parse(text: try readText(path, "snapshot"), file: path)
    }

    public static func parse(text: String, file: String = "<snapshot>") throws(LocatedError) -> SiteSnapshot {
        let r = Reader(file: file)
        let root = try r.compose(text)
        let f = try r.fields(
            root, "the snapshot", allowed: ["at", "devices", "nodes", "uncontrolled_kw", "mining", "signals"])
        var s = SiteSnapshot(
            at: nil, devices: [:], nodeMeasuredKw: [:], uncontrolledKw: [:], miningCurtailed: false,
            miningCurtailedForS: .infinity, signals: nil, file: file)
        s.at = try f["at"].map { n throws(LocatedError) in try r.time(n, "'at'") }
        if let dn = f["devices"] {
            guard case .mapping(let map) = dn else { throw r.fail(dn, "'devices' should map device ids to their state") }
            for (k, v) in map {
                let id = try r.string(k, "a device id")
                let g = try r.fields(
                    v, "the state of device '\(id)'",
                    allowed: ["measured_kw", "setpoint_kw", "available", "age_s", "on", "on_for_s", "off_for_s", "state_for_s"])
                var d = SnapshotDevice(measuredKw: nil, setpointKw: nil, available: true, ageS: 0, on: nil, stateForS: nil)
                d.measuredKw = try g["measured_kw"].map { n throws(LocatedError) in try r.number(n, "measured_kw of '\(id)'") }
                d.setpointKw = try g["setpoint_kw"].map { n throws(LocatedError) in try r.nonNegative(n, "setpoint_kw of '\(id)'") }
                d.available = try g["available"].map { n throws(LocatedError) in try r.bool(n, "available of '\(id)'") } ?? true
                d.ageS = try g["age_s"].map { n throws(LocatedError) in try r.nonNegative(n, "age_s of '\(id)'") } ?? 0
                d.on = try g["on"].map { n throws(LocatedError) in try r.bool(n, "on of '\(id)'") }
                if let n = g["on_for_s"] {
                    if d.on == false { throw r.fail(n, "device '\(id)' says on: false but gives on_for_s") }
                    d.on = true
                    d.stateForS = try r.nonNegative(n, "on_for_s of '\(id)'")
                }
                if let n = g["off_for_s"] {
                    if d.on == true { throw r.fail(n, "device '\(id)' is on but gives off_for_s") }
                    d.on = false
                    d.stateForS = try r.nonNegative(n, "off_for_s of '\(id)'")
                }
                if let n = g["state_for_s"] { d.stateForS = try r.nonNegative(n, "state_for_s of '\(id)'") }
                s.devices[id] = d
                if let m = k.mark { s.marks[id] = m }
            }
        }
        func kwMap(_ key: String, _ inner: String?) throws(LocatedError) -> [String: Double] {
            guard let n = f[key] else { return [:] }
            guard case .mapping(let map) = n else { throw r.fail(n, "'\(key)' should map node ids to values") }
            var out: [String: Double] = [:]
            for (k, v) in map {
                let id = try r.string(k, "a node id")
                if let inner {
                    let g = try r.fields(v, "'\(key)' of '\(id)'", allowed: [inner])
                    out[id] = try r.nonNegative(try g.require(inner), "\(inner) of '\(id)'")
                } else {
                    out[id] = try r.nonNegative(v, "\(key) of '\(id)'")
                }
                if let m = k.mark { s.marks["node:" + id] = m }
            }
            return out
        }
        s.nodeMeasuredKw = try kwMap("nodes", "measured_kw")
        s.uncontrolledKw = try kwMap("uncontrolled_kw", nil)
        if let mn = f["mining"] {
            let g = try r.fields(mn, "'mining'", allowed: ["curtailed", "curtailed_for_s"])
            s.miningCurtailed = try g["curtailed"].map { n throws(LocatedError) in try r.bool(n, "mining curtailed") } ?? false
            s.miningCurtailedForS = try g["curtailed_for_s"].map { n throws(LocatedError) in
                try r.nonNegative(n, "curtailed_for_s")
            } ?? .infinity
        }
        if let sn = f["signals"] { s.signals = try SiteSignals.parse(node: sn, reader: r) }
        return s
    }

    func position(_ key: String) -> (Int, Int) {
        let m = marks[key]
        return (m?.line ?? 1, m?.column ?? 1)
    }
}

/// A price point.
public struct PricePoint: Sendable, Equatable {
    public var at: Double
    public var usdPerMWh: Double
    public init(at: Double, usdPerMWh: Double) {
        self.at = at
        self.usdPerMWh = usdPerMWh
    }
}

public enum PeakWindowKind: Sendable, Equatable {
    case importCap(kw: Double)
    case adder(usdPerMWh: Double)
}

public struct PeakWindow: Sendable, Equatable {
    public var id: String
    public var start: Double
    public var end: Double
    public var kind: PeakWindowKind
}

/// A signals file (JSON): prices, DR events, peak windows, extra contracts. See docs/dispatch.md.
/// A hashprice from a time on ($/PH/day).
public struct HashpricePoint: Sendable, Equatable {
    public var at: Double
    public var usdPerPHDay: Double
    public init(at: Double, usdPerPHDay: Double) {
        self.at = at
        self.usdPerPHDay = usdPerPHDay
    }
}

public struct SiteSignals: Sendable, Equatable {
    public var energyPrices: [PricePoint] = []
    public var hashpriceUsdPerPHDay: Double?
    /// A hashprice series (sorted); where it has a point at or before the time, it wins over the static value.
    public var hashpriceSeries: [HashpricePoint] = []
    public var miningValueUsdPerMWh: Double?
    public var inferenceSpotUsdPerMWh: Double?
    public var inferenceSpotUsdPerGpuHour: Double?
    /// DR events (the Signals vocabulary). Only import caps and paid reductions with a baseline become broker
    /// inputs (`SiteDispatch.resolve`); a paid reduction without one waits for its measured baseline.
    public var drEvents: [DREvent] = []
    public var peakWindows: [PeakWindow] = []
    public var contracts: [Contract] = []

    public init() {}

    public static func load(path: String) throws(LocatedError) -> SiteSignals {
        let file = path
        let r = Reader(file: file)
        let root = try r.compose(try readText(path, "signals"))
        return try parse(node: root, reader: r)
    }

    public static func parse(text: String, file: String = "<signals>") throws(LocatedError) -> SiteSignals {
        let r = Reader(file: file)
        return try parse(node: try r.compose(text), reader: r)
    }

    static func parse(node: Node, reader r: Reader) throws(LocatedError) -> SiteSignals {
        let f = try r.fields(
            node, "the signals",
            allowed: [
                "energy_prices", "hashprice_usd_per_ph_day", "mining_value_usd_per_mwh", "inference_spot", "dr_events",
                "peak_windows", "contracts",
            ])
        var s = SiteSignals()
        if let pn = f["energy_prices"] {
            for p in try r.sequence(pn, "'energy_prices'") {
                let g = try r.fields(p, "a price point", allowed: ["at", "usd_per_mwh"])
                s.energyPrices.append(
                    PricePoint(
                        at: try r.time(try g.require("at"), "'at' of a price point"),
                        usdPerMWh: try r.number(try g.require("usd_per_mwh"), "usd_per_mwh")))
            }
            s.energyPrices.sort { $0.at < $1.at }
        }
        s.hashpriceUsdPerPHDay = try f["hashprice_usd_per_ph_day"].map { v throws(LocatedError) in
            try r.nonNegative(v, "hashprice_usd_per_ph_day")
        }
        s.miningValueUsdPerMWh = try f["mining_value_usd_per_mwh"].map { v throws(LocatedError) in
            try r.number(v, "mining_value_usd_per_mwh")
        }
        if let sp = f["inference_spot"] { (s.inferenceSpotUsdPerMWh, s.inferenceSpotUsdPerGpuHour) = try Site.parseSpot(sp, r) }
        if let dn = f["dr_events"] {
            for e in try r.sequence(dn, "'dr_events'") {
                let g = try r.fields(e, "a DR event", allowed: ["id", "start", "end", "import_cap_kw", "baseline_kw", "usd_per_mwh"])
                let id = try r.string(try g.require("id"), "a DR event id")
                let (start, end) = try interval(g, r, "DR event '\(id)'")
                let action: DREvent.Action
                if let c = g["import_cap_kw"] {
                    if g.has("baseline_kw") || g.has("usd_per_mwh") {
                        throw r.fail(e, "DR event '\(id)' is either a cap (import_cap_kw) or a paid reduction (baseline_kw + usd_per_mwh), not both")
                    }
                    action = .importCap(kW: try r.nonNegative(c, "import_cap_kw"))
                } else if let b = g["baseline_kw"] {
                    let baseline = try r.nonNegative(b, "baseline_kw")
                    action = .paidReduction(usdPerMWh: try r.nonNegative(try g.require("usd_per_mwh"), "usd_per_mwh"), baselineKW: baseline)
                } else {
                    throw r.fail(e, "DR event '\(id)' needs import_cap_kw, or baseline_kw with usd_per_mwh")
                }
                s.drEvents.append(DREvent(id: id, origin: .manual, action: action, start: Date(timeIntervalSince1970: start),
                                          end: Date(timeIntervalSince1970: end), reason: "DR event \(id)"))
            }
        }
        if let pn = f["peak_windows"] {
            for e in try r.sequence(pn, "'peak_windows'") {
                let g = try r.fields(e, "a peak window", allowed: ["id", "start", "end", "import_cap_kw", "adder_usd_per_mwh"])
                let id = try r.string(try g.require("id"), "a peak window id")
                let (start, end) = try interval(g, r, "peak window '\(id)'")
                let kind: PeakWindowKind
                switch (g["import_cap_kw"], g["adder_usd_per_mwh"]) {
                case (let c?, nil): kind = .importCap(kw: try r.nonNegative(c, "import_cap_kw"))
                case (nil, let a?): kind = .adder(usdPerMWh: try r.number(a, "adder_usd_per_mwh"))
                default: throw r.fail(e, "peak window '\(id)' needs exactly one of import_cap_kw or adder_usd_per_mwh")
                }
                s.peakWindows.append(PeakWindow(id: id, start: start, end: end, kind: kind))
            }
        }
        if let cn = f["contracts"] {
            for c in try r.sequence(cn, "'contracts'") { s.contracts.append(try Site.parseContract(c, r)) }
        }
        return s
    }

    static func interval(_ g: Fields, _ r: Reader, _ what: String) throws(LocatedError) -> (Double, Double) {
        let sn = try g.require("start")
        let s = try r.time(sn, "start of \(what)")
        let e = try r.time(try g.require("end"), "end of \(what)")
        if e <= s { throw r.fail(sn, "\(what) ends before it starts") }
        return (s, e)
    }
}

func readText(_ path: String, _ what: String) throws(LocatedError) -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw LocatedError(file: path, line: 1, column: 1, message: "cannot read the \(what) file (\(reason(error)))")
    }
}
