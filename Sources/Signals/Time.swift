// Time parsing: ISO 8601 timestamps (an explicit offset is required) and
// ISO 8601 durations (PT15M, PT1H, P1D, P1W, P1Y2M3DT4H5M6.5S, -PT5M).
// Hand-written so the accepted grammar is exact and the same on every platform.

import Foundation

/// ISO 8601 timestamps with an explicit UTC offset.
public enum ISOTimestamp {
    /// Parses `YYYY-MM-DDTHH:MM[:SS[.fff…]](Z|±HH:MM|±HHMM)`. A space may replace `T`.
    /// Returns nil when the text has no offset or is malformed.
    public static func parse(_ text: some StringProtocol) -> Date? {
        let s = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= s.count else { return nil }
            var v = 0
            for k in i..<(i + n) {
                let c = s[k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < s.count, s[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2) else { return nil }
        guard i < s.count, s[i] == UInt8(ascii: "T") || s[i] == UInt8(ascii: "t") || s[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2) else { return nil }
        var second = 0.0
        if expect(UInt8(ascii: ":")) {
            guard let whole = digits(2) else { return nil }
            second = Double(whole)
            if expect(UInt8(ascii: ".")) || expect(UInt8(ascii: ",")) {
                var scale = 0.1
                var any = false
                while i < s.count, s[i] >= 48, s[i] <= 57 {
                    second += Double(s[i] - 48) * scale
                    scale /= 10
                    i += 1
                    any = true
                }
                guard any else { return nil }
            }
        }
        guard i < s.count else { return nil }  // offset required
        var offset = 0
        if s[i] == UInt8(ascii: "Z") || s[i] == UInt8(ascii: "z") {
            i += 1
        } else if s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            let sign = s[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2) else { return nil }
            _ = expect(UInt8(ascii: ":"))
            guard let om = digits(2), oh <= 18, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == s.count else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), (0...24).contains(hour), (0...59).contains(minute),
              second < 61, hour < 24 || (minute == 0 && second == 0) else { return nil }
        guard let days = daysFromCivil(year: year, month: month, day: day) else { return nil }
        let local = Double(days) * 86_400 + Double(hour * 3600 + minute * 60) + second
        return Date(timeIntervalSince1970: local - Double(offset))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), the form sent to peers.
    public static func format(_ date: Date) -> String {
        let t = Int((date.timeIntervalSince1970).rounded(.down))
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secs = t - days * 86_400
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = String(y).count < 4 ? String(repeating: "0", count: 4 - String(y).count) + String(y) : String(y)
        return "\(year)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date; nil if the day does not exist.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int? {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), day >= 1, day <= lengths[month - 1] else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// An ISO 8601 duration such as `PT15M`, `PT1H`, `P1D`, `P1W`, `P1Y2M10DT2H30M`, `-PT5M`.
/// Years and months are calendar units: `adding(to:)` applies them on the UTC
/// Gregorian calendar; `seconds` is nil when they are present.
public struct ISODuration: Sendable, Hashable, CustomStringConvertible {
    public var negative = false
    public var years = 0
    public var months = 0
    public var weeks = 0
    public var days = 0
    public var hours = 0
    public var minutes = 0
    public var seconds_: Double = 0

    public init(negative: Bool = false, years: Int = 0, months: Int = 0, weeks: Int = 0, days: Int = 0,
                hours: Int = 0, minutes: Int = 0, seconds: Double = 0) {
        self.negative = negative
        self.years = years
        self.months = months
        self.weeks = weeks
        self.days = days
        self.hours = hours
        self.minutes = minutes
        self.seconds_ = seconds
    }

    /// Parses the OpenADR 3 `duration` grammar: `-?P(nY)?(nM)?(nW|nD)?(T(nH)?(nM)?(n[.n]S)?)?`,
    /// with at least one component. (Weeks and days together are also accepted.)
    public init?(_ text: some StringProtocol) {
        var s = Substring(text)
        if s.first == "-" { negative = true; s = s.dropFirst() } else if s.first == "+" { s = s.dropFirst() }
        guard s.first == "P" || s.first == "p" else { return nil }
        s = s.dropFirst()
        var inTime = false
        var any = false
        var order = 0  // enforce Y M W D | H M S order
        var number = ""
        for ch in s {
            if ch == "T" || ch == "t" {
                guard !inTime, number.isEmpty else { return nil }
                inTime = true
                order = 10
                continue
            }
            if ch.isASCII, ch.isNumber || ch == "." || ch == "," {
                number.append(ch == "," ? "." : ch)
                continue
            }
            guard !number.isEmpty else { return nil }
            let isFraction = number.contains(".")
            let unit = ch.uppercased()
            let rank: Int
            switch (inTime, unit) {
            case (false, "Y"): rank = 1
            case (false, "M"): rank = 2
            case (false, "W"): rank = 3
            case (false, "D"): rank = 4
            case (true, "H"): rank = 11
            case (true, "M"): rank = 12
            case (true, "S"): rank = 13
            default: return nil
            }
            guard rank > order else { return nil }
            order = rank
            if isFraction && rank != 13 { return nil }
            if rank == 13 {
                guard let v = Double(number), v.isFinite else { return nil }
                seconds_ = v
            } else {
                guard let v = Int(number) else { return nil }
                switch rank {
                case 1: years = v
                case 2: months = v
                case 3: weeks = v
                case 4: days = v
                case 11: hours = v
                default: minutes = v
                }
            }
            number = ""
            any = true
        }
        guard any, number.isEmpty, !(inTime && order == 10) else { return nil }
    }

    /// Exact length in seconds, or nil when the duration has years or months.
    public var seconds: TimeInterval? {
        guard years == 0, months == 0 else { return nil }
        let s = Double(((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60) + seconds_
        return negative ? -s : s
    }

    /// True for PT0S (OpenADR: "instantaneous or infinity, depending on payloadType").
    public var isZero: Bool { years == 0 && months == 0 && weeks == 0 && days == 0 && hours == 0 && minutes == 0 && seconds_ == 0 }

    /// `date` moved by this duration (calendar months and years on the UTC Gregorian calendar).
    public func adding(to date: Date) -> Date {
        let sign = negative ? -1 : 1
        var d = date
        if years != 0 || months != 0 {
            var cal = Calendar(identifier: .gregorian)
            cal.timeZone = TimeZone(identifier: "UTC")!
            d = cal.date(byAdding: DateComponents(year: sign * years, month: sign * months), to: d) ?? d
        }
        let rest = Double(((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60) + seconds_
        return d.addingTimeInterval(Double(sign) * rest)
    }

    public var description: String {
        var out = negative ? "-P" : "P"
        if years != 0 { out += "\(years)Y" }
        if months != 0 { out += "\(months)M" }
        if weeks != 0 { out += "\(weeks)W" }
        if days != 0 { out += "\(days)D" }
        if hours != 0 || minutes != 0 || seconds_ != 0 || out.hasSuffix("P") {
            out += "T"
            if hours != 0 { out += "\(hours)H" }
            if minutes != 0 { out += "\(minutes)M" }
            if seconds_ != 0 || out.hasSuffix("T") {
                out += seconds_ == seconds_.rounded() ? "\(Int(seconds_))S" : "\(seconds_)S"
            }
        }
        return out
    }

    /// A duration of whole seconds, for building reports.
    public static func seconds(_ s: Int) -> ISODuration {
        var d = ISODuration(negative: s < 0)
        var r = abs(s)
        d.hours = r / 3600; r %= 3600
        d.minutes = r / 60
        d.seconds_ = Double(r % 60)
        return d
    }
}

/// Local wall-clock time → instant, with DST handled explicitly.
public enum LocalTime {
    /// How to resolve a local time that happens twice (the repeated hour at DST fall-back).
    public enum Repeat: Sendable, Hashable {
        /// No flag was given: an ambiguous time is an error.
        case unspecified
        /// The flag says "not the repeated hour": the first occurrence (daylight time).
        case first
        /// The flag says "the repeated hour": the second occurrence (standard time).
        case second
    }

    public enum Resolution: Sendable, Hashable {
        case instant(Date)
        case ambiguous(first: Date, second: Date)
        case nonexistent
    }

    /// All instants at which the clock in `zone` reads the given wall time
    /// (seconds after local midnight of `year-month-day`; may exceed 24 h).
    public static func resolve(year: Int, month: Int, day: Int, secondsAfterMidnight: Int, in zone: TimeZone) -> Resolution? {
        guard let days = ISOTimestamp.daysFromCivil(year: year, month: month, day: day) else { return nil }
        let wall = Double(days * 86_400 + secondsAfterMidnight)
        let offsets = Set([
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall - 86_400)),
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall)),
            zone.secondsFromGMT(for: Date(timeIntervalSince1970: wall + 86_400)),
        ])
        var hits: [Date] = []
        for o in offsets {
            let utc = Date(timeIntervalSince1970: wall - Double(o))
            if zone.secondsFromGMT(for: utc) == o { hits.append(utc) }
        }
        hits.sort()
        switch hits.count {
        case 0: return .nonexistent
        case 1: return .instant(hits[0])
        default: return .ambiguous(first: hits[0], second: hits[hits.count - 1])
        }
    }
}
