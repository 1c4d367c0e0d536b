// The one ISO 8601 / RFC 3339 timestamp grammar: site files, signal files, OpenADR payloads and CLI
// flags (`--start-at`, `--from`) all parse and print times here. Hand-written, no Foundation
// formatter, so the accepted grammar is exact and the same on every platform.

import Foundation

public enum ISO8601 {
    /// Parses `YYYY-MM-DD(T|t|space)HH:MM[:SS[(.|,)fff…]](Z|z|±HH:MM|±HHMM)` to seconds since
    /// 1970-01-01T00:00:00Z. The offset is required (a time without one is ambiguous); offsets are at
    /// most ±18:59; `24:00[:00]` is the end of the day. Returns nil for anything else.
    public static func parse(_ text: some StringProtocol) -> Double? {
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
        func expect(_ c: Character) -> Bool {
            guard i < s.count, s[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2) else {
            return nil
        }
        guard expect("T") || expect("t") || expect(" ") else { return nil }
        guard let hour = digits(2), expect(":"), let minute = digits(2) else { return nil }
        var second = 0.0
        if expect(":") {
            guard let whole = digits(2) else { return nil }
            second = Double(whole)
            if expect(".") || expect(",") {
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
        var offset = 0
        if expect("Z") || expect("z") {
        } else if i < s.count, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            let sign = s[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2) else { return nil }
            _ = expect(":")
            guard let om = digits(2), oh <= 18, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil  // no offset
        }
        guard i == s.count else { return nil }
        guard minute < 60, second < 61, hour < 24 || (hour == 24 && minute == 0 && second == 0) else { return nil }
        guard let days = daysFromCivil(year: year, month: month, day: day) else { return nil }
        return Double(days) * 86_400 + Double(hour * 3600 + minute * 60 - offset) + second
    }

    /// `parse` as a `Date`.
    public static func parseDate(_ text: some StringProtocol) -> Date? {
        parse(text).map { Date(timeIntervalSince1970: $0) }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (UTC; fractions of a second dropped, rounding down).
    public static func format(_ t: Double) -> String {
        let whole = Int(t.rounded(.down))
        let days = whole >= 0 ? whole / 86_400 : (whole - 86_399) / 86_400
        let secs = whole - days * 86_400
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = String(y).count < 4 ? String(repeating: "0", count: 4 - String(y).count) + String(y) : String(y)
        return "\(year)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }

    public static func format(_ date: Date) -> String { format(date.timeIntervalSince1970) }

    /// Seconds since midnight UTC of the instant.
    public static func secondOfDay(_ t: Double) -> Double {
        let r = t.truncatingRemainder(dividingBy: 86_400)
        return r < 0 ? r + 86_400 : r
    }

    /// Days since 1970-01-01 for a proleptic Gregorian date; nil if the day does not exist.
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int? {
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

    /// (year, month, day) of a day counted from 1970-01-01.
    public static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
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
