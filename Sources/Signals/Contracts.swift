// Contracts: committed power for named devices during contract hours, as a weekly schedule
// in a time zone (DST aware) and/or explicit windows. The one contract type: a site file's
// `daily` UTC window is a weekly window on every day in time zone UTC (`Contract.daily`).

import Foundation

/// A recurring weekly window in local time. `until` ≤ `from` means it runs past midnight.
public struct WeeklyWindow: Sendable, Hashable {
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    public var days: Set<Int>
    /// Seconds after local midnight.
    public var from: Int
    /// Seconds after local midnight (86 400 for "24:00").
    public var until: Int

    public init(days: Set<Int>, from: Int, until: Int) {
        self.days = days
        self.from = from
        self.until = until
    }
}

/// One contract: committed kW for some devices, in some hours, with a penalty for falling short.
public struct Contract: Sendable, Hashable, Identifiable {
    public var id: String
    public var deviceIDs: [String]
    public var committedKW: Double
    /// $/MWh earned for committed energy delivered; nil: the devices' spot value (a calendar names no rate).
    public var rateUSDPerMWh: Double?
    /// $/MWh charged for energy delivered short of the commitment.
    public var penaltyUSDPerMWhShort: Double
    public var weekly: [WeeklyWindow]
    /// Explicit windows `[start, end)`.
    public var windows: [DateInterval]
    /// The zone the weekly windows are written in; nil: the calendar's.
    public var timeZone: TimeZone?

    public init(id: String, deviceIDs: [String], committedKW: Double, rateUSDPerMWh: Double? = nil, penaltyUSDPerMWhShort: Double,
                weekly: [WeeklyWindow] = [], windows: [DateInterval] = [], timeZone: TimeZone? = nil) {
        self.id = id
        self.deviceIDs = deviceIDs
        self.committedKW = committedKW
        self.rateUSDPerMWh = rateUSDPerMWh
        self.penaltyUSDPerMWhShort = penaltyUSDPerMWhShort
        self.weekly = weekly
        self.windows = windows
        self.timeZone = timeZone
    }

    /// Every day from `fromS` to `toS` seconds after midnight in `timeZone` (a site file's `daily` window, in UTC).
    /// `toS` < `fromS` runs past midnight; equal times make an empty window (none), and a start at 24:00 is 00:00.
    public static func daily(fromS: Int, toS: Int) -> [WeeklyWindow] {
        guard fromS != toS else { return [] }
        let f = fromS >= 86_400 ? 0 : fromS
        guard f != toS else { return [] }
        return [WeeklyWindow(days: Set(1...7), from: f, until: toS)]
    }
}

/// A concrete contract window (a weekly occurrence or an explicit window).
public struct ContractWindow: Sendable, Hashable {
    public var contractID: String
    public var deviceIDs: [String]
    public var committedKW: Double
    /// See `Contract.rateUSDPerMWh`.
    public var rateUSDPerMWh: Double?
    public var penaltyUSDPerMWhShort: Double
    public var start: Date
    public var end: Date

    public func contains(_ t: Date) -> Bool { start <= t && t < end }
}

/// All contracts of a site and the zone their weekly schedules are written in.
public struct ContractCalendar: Sendable, Hashable {
    public var timeZone: TimeZone
    public var contracts: [Contract]

    public init(timeZone: TimeZone = TimeZone(identifier: "America/Chicago")!, contracts: [Contract] = []) {
        self.timeZone = timeZone
        self.contracts = contracts
    }

    /// Windows overlapping `[from, to)`, sorted by start. Weekly windows are turned into
    /// instants on the local calendar: a start in the skipped spring-forward hour moves
    /// forward to the first valid time; a start in the repeated fall-back hour takes the first occurrence.
    public func windows(from: Date, to: Date) -> [ContractWindow] {
        windowsByContract(from: from, to: to).flatMap(\.self).sorted { ($0.start, $0.contractID) < ($1.start, $1.contractID) }
    }

    /// Windows overlapping `[from, to)`, one list per contract (in the calendar's order), each sorted by start.
    public func windowsByContract(from: Date, to: Date) -> [[ContractWindow]] {
        guard from < to else { return contracts.map { _ in [] } }
        var zoned = Calendar(identifier: .gregorian)
        zoned.timeZone = timeZone
        return contracts.map { c in
            var cal = zoned
            if let z = c.timeZone { cal.timeZone = z }
            var out: [ContractWindow] = []
            func add(_ s: Date, _ e: Date) {
                if s < to && e > from {
                    out.append(ContractWindow(contractID: c.id, deviceIDs: c.deviceIDs, committedKW: c.committedKW, rateUSDPerMWh: c.rateUSDPerMWh,
                                              penaltyUSDPerMWhShort: c.penaltyUSDPerMWhShort, start: s, end: e))
                }
            }
            for w in c.windows { add(w.start, w.end) }
            guard !c.weekly.isEmpty else { return out }
            // Start a day early so an overnight window from yesterday is seen.
            var day = cal.startOfDay(for: from.addingTimeInterval(-86_400))
            while day < to {
                let weekday = cal.component(.weekday, from: day)  // 1 = Sunday
                let iso = weekday == 1 ? 7 : weekday - 1
                for w in c.weekly where w.days.contains(iso) {
                    let s = localTime(day, w.from, cal)
                    let endDay = w.until <= w.from ? cal.date(byAdding: .day, value: 1, to: day)! : day
                    let e = localTime(endDay, w.until, cal)
                    if e > s { add(s, e) }
                }
                guard let next = cal.date(byAdding: .day, value: 1, to: day) else { break }
                day = next
            }
            return out.sorted { $0.start < $1.start }
        }
    }

    /// Windows active at `t`.
    public func active(at t: Date) -> [ContractWindow] {
        windows(from: t, to: t.addingTimeInterval(0.001)).filter { $0.contains(t) }
    }

    /// Windows active at `t`, in the calendar's contract order (each contract's by start).
    public func activeByContract(at t: Date) -> [ContractWindow] {
        windowsByContract(from: t, to: t.addingTimeInterval(0.001)).flatMap { $0.filter { $0.contains(t) } }
    }

    private func localTime(_ day: Date, _ seconds: Int, _ cal: Calendar) -> Date {
        if seconds >= 86_400 { return cal.date(byAdding: .day, value: 1, to: day)! }
        return cal.date(bySettingHour: seconds / 3600, minute: seconds / 60 % 60, second: seconds % 60, of: day,
                        matchingPolicy: .nextTime, repeatedTimePolicy: .first, direction: .forward) ?? day
    }

    // MARK: Loading

    /// Reads a YAML or JSON contract calendar (see docs/signals.md).
    public static func load(path: String, defaultTimeZone: TimeZone = TimeZone(identifier: "America/Chicago")!) throws(SignalsError) -> ContractCalendar {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw SignalsError(.io, "cannot read the file: \(error.localizedDescription)", at: SignalSource(file: path))
        }
        return try parse(text, name: path, defaultTimeZone: defaultTimeZone)
    }

    public static func parse(_ text: String, name: String, defaultTimeZone: TimeZone = TimeZone(identifier: "America/Chicago")!) throws(SignalsError) -> ContractCalendar {
        let root = try TreeNode.parse(text, file: name)
        let m = try root.map("the contract calendar", allowed: ["time_zone", "contracts"])
        var zone = defaultTimeZone
        if let z = m.optional("time_zone") {
            let id = try z.string("time_zone")
            guard let tz = TimeZone(identifier: id) else { throw z.fail(.badValue, "unknown time zone \"\(id)\" (use an IANA name such as America/Chicago)") }
            zone = tz
        }
        var contracts: [Contract] = []
        var seen: Set<String> = []
        for item in try m.required("contracts", in: root).list("contracts") {
            let c = try item.map("a contract", allowed: ["id", "devices", "committed_kw", "penalty_usd_per_mwh_short", "weekly", "windows"])
            let idNode = try c.required("id", in: item)
            let id = try idNode.string("id")
            guard seen.insert(id).inserted else { throw idNode.fail(.badValue, "contract id \"\(id)\" is used twice") }
            let devicesNode = try c.required("devices", in: item)
            var devices: [String] = []
            for d in try devicesNode.list("devices") { devices.append(try d.string("a device id")) }
            guard !devices.isEmpty else { throw devicesNode.fail(.badValue, "devices must name at least one device") }
            let kwNode = try c.required("committed_kw", in: item)
            let kw = try kwNode.number("committed_kw")
            guard kw >= 0 else { throw kwNode.fail(.badValue, "committed_kw must be ≥ 0") }
            let penNode = try c.required("penalty_usd_per_mwh_short", in: item)
            let penalty = try penNode.number("penalty_usd_per_mwh_short")
            guard penalty >= 0 else { throw penNode.fail(.badValue, "penalty_usd_per_mwh_short must be ≥ 0") }
            var weekly: [WeeklyWindow] = []
            for w in try c.optional("weekly")?.list("weekly") ?? [] {
                let wm = try w.map("a weekly window", allowed: ["days", "from", "until"])
                var days: Set<Int> = []
                let daysNode = try wm.required("days", in: w)
                for d in try daysNode.list("days") {
                    let text = try d.string("a day").lowercased()
                    guard let n = weekdayNumber(text) else { throw d.fail(.badValue, "\"\(text)\" is not a weekday (mon … sun)") }
                    days.insert(n)
                }
                guard !days.isEmpty else { throw daysNode.fail(.badValue, "days must list at least one weekday") }
                let fromNode = try wm.required("from", in: w)
                let untilNode = try wm.required("until", in: w)
                guard let f = clockSeconds(try fromNode.string("from")), f < 86_400 else {
                    throw fromNode.fail(.badValue, "from must be a local time HH:MM (00:00 … 23:59)")
                }
                guard let u = clockSeconds(try untilNode.string("until")) else {
                    throw untilNode.fail(.badValue, "until must be a local time HH:MM (00:00 … 24:00)")
                }
                guard u != f else { throw untilNode.fail(.badValue, "until equals from; the window would be empty") }
                weekly.append(WeeklyWindow(days: days, from: f, until: u))
            }
            var windows: [DateInterval] = []
            for w in try c.optional("windows")?.list("windows") ?? [] {
                let wm = try w.map("a window", allowed: ["from", "until"])
                let f = try wm.required("from", in: w).timestamp("from")
                let uNode = try wm.required("until", in: w)
                let u = try uNode.timestamp("until")
                guard u > f else { throw uNode.fail(.badValue, "until must be after from") }
                windows.append(DateInterval(start: f, end: u))
            }
            guard !weekly.isEmpty || !windows.isEmpty else {
                throw item.fail(.missingField, "contract \"\(id)\" has neither weekly nor windows")
            }
            contracts.append(Contract(id: id, deviceIDs: devices, committedKW: kw, penaltyUSDPerMWhShort: penalty, weekly: weekly, windows: windows, timeZone: zone))
        }
        return ContractCalendar(timeZone: zone, contracts: contracts)
    }

    static func weekdayNumber(_ s: String) -> Int? {
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        let key = String(s.prefix(3))
        guard let i = names.firstIndex(of: key), s.count == 3 || ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"].contains(s) else { return nil }
        return i + 1
    }

    /// `HH:MM` or `HH:MM:SS` → seconds after midnight (24:00 allowed).
    static func clockSeconds(_ s: String) -> Int? {
        let p = s.split(separator: ":", omittingEmptySubsequences: false)
        guard p.count == 2 || p.count == 3, p.allSatisfy({ $0.count == 2 }), let h = Int(p[0]), let m = Int(p[1]) else { return nil }
        let sec = p.count == 3 ? Int(p[2]) : 0
        guard let sec, (0...59).contains(m), (0...59).contains(sec), (0...24).contains(h) else { return nil }
        if h == 24 { return m == 0 && sec == 0 ? 86_400 : nil }
        return h * 3600 + m * 60 + sec
    }
}
