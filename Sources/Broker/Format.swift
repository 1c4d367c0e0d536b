// Small number formatting without Foundation (the Broker has no dependencies).

enum Fmt {
    // Rounding without libm (the Broker links nothing, not even Glibc).
    static func roundAbs(_ x: Double) -> Double {
        let a = abs(x)
        return a < 9.0e18 ? Double(UInt64(a + 0.5)) : a
    }

    static func near(_ x: Double) -> Double { x < 0 ? -roundAbs(x) : roundAbs(x) }

    static func ceilPos(_ x: Double) -> Double {
        guard x > 0, x < 9.0e18 else { return max(0, x) }
        let t = Double(UInt64(x))
        return t < x ? t + 1 : t
    }

    /// `x` rounded to `decimals` places, e.g. fixed(24.456, 1) == "24.5". No exponent notation.
    static func fixed(_ x: Double, _ decimals: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        var scale = 1.0
        for _ in 0..<max(0, decimals) { scale *= 10 }
        let scaled = roundAbs(x * scale)
        let negative = x < 0 && scaled > 0
        guard scaled < 9.0e18 else { return String(x) }
        let n = UInt64(scaled)
        let p = UInt64(scale)
        var s = String(n / p)
        if decimals > 0 {
            var frac = String(n % p)
            while frac.count < decimals { frac = "0" + frac }
            s += "." + frac
        }
        return negative ? "-" + s : s
    }

    /// Power in kW below 10 MW ("640 kW", "2.5 kW"), otherwise in MW ("24.5 MW").
    static func power(_ kw: Double) -> String {
        if abs(kw) >= 10_000 { return mw(kw) }
        if abs(kw - near(kw)) < 0.05 || abs(kw) >= 100 { return fixed(kw, 0) + " kW" }
        return fixed(kw, 1) + " kW"
    }

    /// Power in MW with up to 3 decimals, trailing zeros trimmed to one ("24.5 MW", "0.125 MW").
    static func mw(_ kw: Double) -> String {
        var s = fixed(kw / 1000, 3)
        while s.hasSuffix("0"), let dot = s.firstIndex(of: "."), s.index(after: dot) < s.index(before: s.endIndex) {
            s.removeLast()
        }
        return s + " MW"
    }

    /// A price in $/MWh without the unit: 0 decimals from 100 up, else 1.
    static func price(_ usd: Double) -> String {
        abs(usd) >= 100 || abs(usd - near(usd)) < 0.05 ? fixed(usd, 0) : fixed(usd, 1)
    }

    static func seconds(_ s: Double) -> String { fixed(ceilPos(s), 0) + " s" }
}

/// One labelled number in a printed comparison ("mining value 136", "− hysteresis 25").
struct Term: Sendable {
    var label: String
    var value: Double
    /// Subtracted rather than added.
    var minus = false
    init(_ label: String, _ value: Double, minus: Bool = false) {
        self.label = label
        self.value = value
        self.minus = minus
    }
}

/// Comparisons that hold as printed: "price 54.2 > mining value 36 $/MWh" is checked on the
/// printed numbers, so decimals are added until the printed sides compare as the true ones do.
enum Cmp {
    enum Style { case price, kw }

    /// "lhs REL rhs unit", REL the true relation of the two sums (">", "<", or `tie` when equal).
    /// If the printed sides stay equal although the true ones differ, REL becomes "≥" or "≤".
    /// `prefer` ("≥", say) is used instead when it holds for the true values.
    static func text(
        _ lhs: [Term], _ rhs: [Term], unit: String = "$/MWh", style: Style = .price, tie: String = "=", prefer: String? = nil
    ) -> String {
        let l = sum(lhs.map { ($0.value, $0.minus) })
        let r = sum(rhs.map { ($0.value, $0.minus) })
        var rel = l > r ? ">" : (l < r ? "<" : tie)
        if let p = prefer, holds(l, p, r) { rel = p }
        let weak = l > r ? "≥" : (l < r ? "≤" : tie)
        let suffix = unit.isEmpty ? "" : " " + unit
        var fallback: String? = nil
        var last = ""
        for extra in 0...4 {
            let ls = lhs.map { render($0, style, extra) }
            let rs = rhs.map { render($0, style, extra) }
            let pl = sum(ls.map { ($0.1, $0.2) })
            let pr = sum(rs.map { ($0.1, $0.2) })
            let lt = join(ls.map { ($0.0, $0.2) })
            let rt = join(rs.map { ($0.0, $0.2) })
            if holds(pl, rel, pr) { return lt + " " + rel + " " + rt + suffix }
            if fallback == nil && holds(pl, weak, pr) { fallback = lt + " " + weak + " " + rt + suffix }
            last = lt + " " + rel + " " + rt + suffix
        }
        return fallback ?? last
    }

    static func holds(_ a: Double, _ rel: String, _ b: Double) -> Bool {
        switch rel {
        case ">": return a > b
        case "<": return a < b
        case "≥": return a >= b
        case "≤": return a <= b
        default: return a == b
        }
    }

    static func sum(_ t: [(Double, Bool)]) -> Double { t.reduce(0) { $0 + ($1.1 ? -$1.0 : $1.0) } }

    /// (text, printed value, minus)
    static func render(_ t: Term, _ style: Style, _ extra: Int) -> (String, Double, Bool) {
        let s: String
        switch style {
        case .price:
            let base = abs(t.value) >= 100 || abs(t.value - Fmt.near(t.value)) < 0.05 ? 0 : 1
            s = extra == 0 ? Fmt.price(t.value) : Fmt.fixed(t.value, max(base, extra))
        case .kw:
            let base = abs(t.value - Fmt.near(t.value)) < 0.05 || abs(t.value) >= 100 ? 0 : 1
            s = (extra == 0 ? Fmt.fixed(t.value, base) : Fmt.fixed(t.value, max(base, extra))) + " kW"
        }
        let num = Double(s.hasSuffix(" kW") ? String(s.dropLast(3)) : s) ?? t.value
        return ((t.label.isEmpty ? "" : t.label + " ") + s, num, t.minus)
    }

    static func join(_ parts: [(String, Bool)]) -> String {
        var out = ""
        for (i, p) in parts.enumerated() {
            if i == 0 {
                out = p.1 ? "− " + p.0 : p.0
            } else {
                out += (p.1 ? " − " : " + ") + p.0
            }
        }
        return out
    }
}
