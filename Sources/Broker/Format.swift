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
