// The baseline a paid reduction is measured against when the event brings none: the mean measured
// site import over a window before the event. One definition, used by `serve` (the OpenADR
// curtailment ledger, whose reports send it, and the broker's valuation of the event) and by
// `replay` (its own simulated import), so that both value the same event the same way.

public enum MeasuredBaseline {
    /// A settled baseline and how it was found, in words for reports and logs.
    public struct Settled: Sendable, Equatable {
        public var kw: Double
        public var how: String
    }

    /// The mean of the import samples taken in `[before - windowS, before)`; with none, `fallback`
    /// (the first import measured once the event was known); with neither, nil (not yet known:
    /// the event is not valued until it is, never against 0 kW).
    public static func settle(samples: some Sequence<(t: Double, kw: Double)>, before: Double, windowS: Double,
                              fallback: Double?) -> Settled? {
        var sum = 0.0, n = 0
        for s in samples where s.t >= before - windowS && s.t < before && s.kw.isFinite {
            sum += s.kw
            n += 1
        }
        if n > 0 { return Settled(kw: sum / Double(n), how: "mean measured import over \(n) ticks before the event") }
        if let fallback, fallback.isFinite {
            return Settled(kw: fallback, how: "first measured import once the event was known (no measurement before it)")
        }
        return nil
    }
}
