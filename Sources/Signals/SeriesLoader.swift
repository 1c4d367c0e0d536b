// Loading price and hashprice series from files and bodies:
//  * ERCOT real-time settlement point prices (15-minute intervals, local Central time),
//  * ERCOT day-ahead settlement point prices (hourly, "Hour Ending"),
//  * a generic CSV (`timestamp,price_usd_per_mwh`) or JSON time series.
// See docs/signals.md for every layout.

import Basics
import Foundation

/// What a series measures; decides the value column of generic files.
public enum SeriesQuantity: String, Sendable, Hashable {
    /// Energy price in $/MWh; generic column `price_usd_per_mwh`.
    case price
    /// Hashprice in $/PH/day; generic column `hashprice_usd_per_ph_day`.
    case hashprice

    /// The value column or key of the generic formats. `value` is accepted for both.
    public var columnName: String {
        switch self {
        case .price: "price_usd_per_mwh"
        case .hashprice: "hashprice_usd_per_ph_day"
        }
    }
}

/// The layout of a series file. `.auto` picks from the extension and the CSV header.
public enum SeriesFormat: String, Sendable, Hashable, Codable {
    case auto
    /// ERCOT real-time SPP: Delivery Date, Delivery Hour, Delivery Interval, Settlement Point Name, Settlement Point Price[, DSTFlag].
    case ercotRealTime = "ercot-rt"
    /// ERCOT day-ahead SPP: Delivery Date, Hour Ending, Repeated Hour Flag, Settlement Point, Settlement Point Price.
    case ercotDayAhead = "ercot-da"
    /// `timestamp,<value column>` with ISO 8601 timestamps carrying an offset.
    case csv
    /// A JSON (or YAML) list of `{timestamp, <value key>}` objects, or `{interval, points: [...]}`.
    case json
}

/// How to read a series.
public struct SeriesOptions: Sendable, Hashable {
    public var quantity: SeriesQuantity
    public var format: SeriesFormat
    /// ERCOT files carry many settlement points; the one to keep (e.g. `HB_NORTH`).
    /// May be nil only when the file has a single settlement point.
    public var settlementPoint: String?
    /// The zone of ERCOT's local times (Central prevailing time).
    public var timeZone: TimeZone
    /// Interval length of generic series; inferred from the first two points when nil.
    public var interval: TimeInterval?

    public init(quantity: SeriesQuantity = .price, format: SeriesFormat = .auto, settlementPoint: String? = nil,
                timeZone: TimeZone = TimeZone(identifier: "America/Chicago")!, interval: TimeInterval? = nil) {
        self.quantity = quantity
        self.format = format
        self.settlementPoint = settlementPoint
        self.timeZone = timeZone
        self.interval = interval
    }
}

public enum SeriesLoader {
    /// Reads and parses a file.
    public static func load(path: String, options: SeriesOptions = SeriesOptions()) throws(SignalsError) -> TimeSeries {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw SignalsError(.io, "cannot read the file: \(error.localizedDescription)", at: SignalSource(file: path))
        }
        var opts = options
        if opts.format == .auto {
            let lower = path.lowercased()
            if lower.hasSuffix(".json") || lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { opts.format = .json }
        }
        return try parse(text, name: path, options: opts)
    }

    /// Parses text (`name` is used in messages: a path or URL).
    public static func parse(_ text: String, name: String, options: SeriesOptions = SeriesOptions()) throws(SignalsError) -> TimeSeries {
        var format = options.format
        if format == .auto {
            let trimmed = text.drop { $0.isWhitespace || $0 == "\u{FEFF}" }
            format = trimmed.first == "[" || trimmed.first == "{" ? .json : .csv
        }
        if format == .json { return try parseJSON(text, name: name, options: options) }
        let rows = try CSV.parse(text, file: name)
        guard let headerRow = rows.first else {
            throw SignalsError(.syntax, "the file is empty; expected a CSV header line", at: SignalSource(file: name, line: 1))
        }
        let header = CSVHeader(headerRow, file: name)
        if format == .csv {
            if header.column("Delivery Interval") != nil { format = .ercotRealTime }
            else if header.column("Hour Ending") != nil { format = .ercotDayAhead }
        }
        switch format {
        case .ercotRealTime: return try parseERCOT(rows, header: header, name: name, options: options, realTime: true)
        case .ercotDayAhead: return try parseERCOT(rows, header: header, name: name, options: options, realTime: false)
        default: return try parseGenericCSV(rows, header: header, name: name, options: options)
        }
    }

    // MARK: ERCOT

    static func parseERCOT(_ rows: [CSVRow], header: CSVHeader, name: String, options: SeriesOptions, realTime: Bool) throws(SignalsError) -> TimeSeries {
        let dateCol = try header.require("Delivery Date", "DeliveryDate", "OperDay")
        let hourCol = realTime ? try header.require("Delivery Hour") : try header.require("Hour Ending", "HourEnding")
        let intervalCol = realTime ? try header.require("Delivery Interval") : -1
        let pointCol = try header.require(realTime ? "Settlement Point Name" : "Settlement Point", "Settlement Point Name", "Settlement Point", "SettlementPoint")
        let priceCol = try header.require("Settlement Point Price", "SettlementPointPrice")
        let flagCol = header.column("Repeated Hour Flag", "DSTFlag", "DST Flag")
        let flagName = flagCol.map { header.names[$0] } ?? "Repeated Hour Flag"

        var wanted = options.settlementPoint
        var points: [SeriesPoint] = []
        var lines: [Int?] = []
        let length: TimeInterval = realTime ? 900 : 3600
        for row in rows.dropFirst() {
            let sp = try row.field(pointCol, "Settlement Point", file: name)
            if let w = wanted {
                guard sp.caseInsensitiveCompare(w) == .orderedSame else { continue }
            } else {
                wanted = sp
            }
            let here = SignalSource(file: name, line: row.line)
            let dateText = try row.field(dateCol, "Delivery Date", file: name)
            guard let (y, m, d) = parseDate(dateText) else {
                throw SignalsError(.badValue, "Delivery Date \"\(dateText)\" is not a date (MM/DD/YYYY)", at: here)
            }
            let hourText = try row.field(hourCol, realTime ? "Delivery Hour" : "Hour Ending", file: name)
            guard let hourEnding = parseHourEnding(hourText), (1...24).contains(hourEnding) else {
                throw SignalsError(.badValue, "\(realTime ? "Delivery Hour" : "Hour Ending") \"\(hourText)\" is not an hour 1…24 (or 01:00…24:00)", at: here)
            }
            var minute = 0
            if realTime {
                let iText = try row.field(intervalCol, "Delivery Interval", file: name)
                guard let k = Int(iText), (1...4).contains(k) else {
                    throw SignalsError(.badValue, "Delivery Interval \"\(iText)\" is not 1…4", at: here)
                }
                minute = (k - 1) * 15
            }
            var repeatFlag = LocalTime.Repeat.unspecified
            if let flagCol {
                let f = try row.field(flagCol, flagName, file: name).uppercased()
                switch f {
                case "Y", "YES", "TRUE", "1": repeatFlag = .second
                case "N", "NO", "FALSE", "0", "": repeatFlag = .first
                default: throw SignalsError(.badValue, "\(flagName) \"\(f)\" is not Y or N", at: here)
                }
            }
            let price = try row.number(priceCol, "Settlement Point Price", file: name)
            let secs = (hourEnding - 1) * 3600 + minute * 60
            let start = try resolveLocal(y, m, d, secs, zone: options.timeZone, flag: repeatFlag, flagName: flagName,
                                         flagPresent: flagCol != nil, text: "\(dateText) hour \(hourText)\(realTime ? " interval \(minute / 15 + 1)" : "")", at: here)
            points.append(SeriesPoint(start: start, end: start.addingTimeInterval(length), value: price))
            lines.append(row.line)
        }
        if options.settlementPoint == nil {
            // A file with several points needs a choice: report the first row of another point.
            for row in rows.dropFirst() {
                if let sp = try? row.field(pointCol, "", file: name), let w = wanted, sp.caseInsensitiveCompare(w) != .orderedSame {
                    throw SignalsError(.badValue, "the file has several settlement points (\(w), \(sp), …); choose one (settlement_point)",
                                       at: SignalSource(file: name, line: row.line))
                }
            }
        }
        guard !points.isEmpty else {
            throw SignalsError(.missingField, wanted.map { "no rows for settlement point \($0)" } ?? "the file has no data rows",
                               at: SignalSource(file: name, line: header.line))
        }
        return try TimeSeries(points, origin: name, lines: lines)
    }

    static func resolveLocal(_ y: Int, _ m: Int, _ d: Int, _ secs: Int, zone: TimeZone, flag: LocalTime.Repeat, flagName: String,
                             flagPresent: Bool, text: String, at here: SignalSource) throws(SignalsError) -> Date {
        guard let r = LocalTime.resolve(year: y, month: m, day: d, secondsAfterMidnight: secs, in: zone) else {
            throw SignalsError(.badValue, "\(text) is not a calendar date", at: here)
        }
        switch (r, flag) {
        case (.instant, .second):
            throw SignalsError(.nonexistentLocalTime, "\(flagName) is Y but \(text) is not a repeated hour in \(zone.identifier)", at: here)
        case (.instant(let t), _):
            return t
        case (.ambiguous, .unspecified):
            throw SignalsError(.ambiguousLocalTime, "\(text) happens twice in \(zone.identifier) (DST ends); the file needs a \(flagName) column (N = first, Y = repeated)", at: here)
        case (.ambiguous(let first, _), .first):
            return first
        case (.ambiguous(_, let second), .second):
            return second
        case (.nonexistent, _):
            throw SignalsError(.nonexistentLocalTime, "\(text) does not exist in \(zone.identifier) (DST starts)", at: here)
        }
    }

    /// `MM/DD/YYYY` (ERCOT) or `YYYY-MM-DD`.
    static func parseDate(_ s: String) -> (Int, Int, Int)? {
        if s.contains("/") {
            let p = s.split(separator: "/")
            guard p.count == 3, let m = Int(p[0]), let d = Int(p[1]), let y = Int(p[2]), p[2].count == 4 else { return nil }
            return ISO8601.daysFromCivil(year: y, month: m, day: d) == nil ? nil : (y, m, d)
        }
        let p = s.split(separator: "-")
        guard p.count == 3, let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]), p[0].count == 4 else { return nil }
        return ISO8601.daysFromCivil(year: y, month: m, day: d) == nil ? nil : (y, m, d)
    }

    /// `14`, `14:00` → 14. Minutes other than 00 are rejected.
    static func parseHourEnding(_ s: String) -> Int? {
        let p = s.split(separator: ":", omittingEmptySubsequences: false)
        guard let h = Int(p[0]) else { return nil }
        if p.count == 2 { guard p[1] == "00" else { return nil } } else if p.count > 2 { return nil }
        return h
    }

    // MARK: Generic CSV

    static func parseGenericCSV(_ rows: [CSVRow], header: CSVHeader, name: String, options: SeriesOptions) throws(SignalsError) -> TimeSeries {
        let tCol = try header.require("timestamp", "time", "start")
        let vCol = try header.require(options.quantity.columnName, "value")
        var stamps: [(Date, Double, Int)] = []
        for row in rows.dropFirst() {
            let text = try row.field(tCol, "timestamp", file: name)
            guard let t = ISO8601.parseDate(text) else {
                throw SignalsError(.badValue, "timestamp \"\(text)\" is not an ISO 8601 time with an offset (e.g. 2025-08-14T15:00:00-05:00)",
                                   at: SignalSource(file: name, line: row.line))
            }
            stamps.append((t, try row.number(vCol, options.quantity.columnName, file: name), row.line))
        }
        return try regular(stamps.map { ($0.0, $0.1, SignalSource(file: name, line: $0.2)) }, name: name, options: options,
                           headerSource: SignalSource(file: name, line: header.line))
    }

    /// Turns timestamps into intervals of one step; a longer step is a gap, a shorter one an error.
    static func regular(_ stamps: [(Date, Double, SignalSource)], name: String, options: SeriesOptions,
                        headerSource: SignalSource, declaredInterval: TimeInterval? = nil) throws(SignalsError) -> TimeSeries {
        guard !stamps.isEmpty else { throw SignalsError(.missingField, "the series has no points", at: headerSource) }
        var step = declaredInterval ?? options.interval
        if step == nil {
            guard stamps.count >= 2 else {
                throw SignalsError(.missingField, "cannot infer the interval from one point; give an interval (e.g. PT1H)", at: stamps[0].2)
            }
            step = stamps[1].0.timeIntervalSince(stamps[0].0)
            if step! <= 0 {
                throw SignalsError(.unsorted, "series is not sorted: \(ISO8601.format(stamps[1].0)) is not after \(ISO8601.format(stamps[0].0))", at: stamps[1].2)
            }
        }
        let s = step!
        var points: [SeriesPoint] = []
        for (i, (t, v, src)) in stamps.enumerated() {
            if i > 0 {
                let diff = t.timeIntervalSince(stamps[i - 1].0)
                if diff <= 0 {
                    throw SignalsError(.unsorted, "series is not sorted: \(ISO8601.format(t)) is not after \(ISO8601.format(stamps[i - 1].0))", at: src)
                }
                if diff > s {
                    throw SignalsError(.gap, "series has a gap: nothing from \(ISO8601.format(stamps[i - 1].0.addingTimeInterval(s))) to \(ISO8601.format(t)) (interval \(Int(s)) s)", at: src)
                }
                if diff < s {
                    throw SignalsError(.unsorted, "point \(ISO8601.format(t)) is \(Int(diff)) s after the previous one; the series interval is \(Int(s)) s", at: src)
                }
            }
            points.append(SeriesPoint(start: t, end: t.addingTimeInterval(s), value: v))
        }
        return try TimeSeries(points, origin: name, lines: stamps.map { $0.2.line }, keyPaths: stamps.map { $0.2.keyPath })
    }

    // MARK: JSON

    /// `[{"timestamp": "...", "price_usd_per_mwh": 31.5}, ...]` or
    /// `{"interval": "PT15M", "points": [...]}`.
    static func parseJSON(_ text: String, name: String, options: SeriesOptions) throws(SignalsError) -> TimeSeries {
        let root = try TreeNode.parse(text, file: name)
        var list = root
        var declared: TimeInterval?
        if case .map = root.value {
            let m = try root.map("the series", allowed: ["interval", "points", "unit", "quantity", "source"])
            list = try m.required("points", in: root)
            if let iv = m.optional("interval") {
                let d = try iv.duration("interval")
                guard let secs = d.seconds, secs > 0 else { throw iv.fail(.badValue, "interval must be a positive fixed duration") }
                declared = secs
            }
        }
        var stamps: [(Date, Double, SignalSource)] = []
        for item in try list.list("points") {
            let m = try item.map("a point")
            guard let tNode = m.optional("timestamp") ?? m.optional("time") ?? m.optional("start") else {
                throw item.fail(.missingField, "missing key \"timestamp\"")
            }
            guard let vNode = m.optional(options.quantity.columnName) ?? m.optional("value") else {
                throw item.fail(.missingField, "missing key \"\(options.quantity.columnName)\"")
            }
            stamps.append((try tNode.timestamp("timestamp"), try vNode.number(options.quantity.columnName), tNode.source))
        }
        return try regular(stamps, name: name, options: options, headerSource: list.source, declaredInterval: declared)
    }
}
