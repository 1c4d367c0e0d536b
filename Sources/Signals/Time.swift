// ISO 8601 durations (PT15M, PT1H, P1D, P1W, P1Y2M3DT4H5M6.5S, -PT5M) and local wall-clock times.
// Hand-written so the accepted grammar is exact and the same on every platform. Timestamps are the
// shared grammar, `ISO8601` (Basics).

import Basics
import Foundation

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
        guard let days = ISO8601.daysFromCivil(year: year, month: month, day: day) else { return nil }
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
