import Foundation
import Testing
@testable import Signals

// Issue 12 §7: a paid reduction that brings no baseline is valued against the mean measured import over a
// window before it, by one rule (`MeasuredBaseline`) in serve's ledger and in replay.
@Suite("Measured baselines and manual paid reductions")
struct MeasuredBaselineTests {
    @Test func meanOfTheSamplesInTheWindowOnly() throws {
        // Ticks every 10 s from t = 0; the event starts at 100 and the window is 50 s: ticks 50…90 count.
        let samples = (0..<20).map { (t: Double($0 * 10), kw: Double(1000 + $0)) }
        let b = try #require(MeasuredBaseline.settle(samples: samples, before: 100, windowS: 50, fallback: 7))
        let expected: Double = [1005.0, 1006, 1007, 1008, 1009].reduce(0, +) / 5
        #expect(b.kw == expected)
        #expect(b.how == "mean measured import over 5 ticks before the event")
    }

    @Test func fallbackOnlyWhenNothingWasMeasuredBefore() {
        let after = [(t: 100.0, kw: 900.0), (t: 110.0, kw: 800.0)]
        #expect(MeasuredBaseline.settle(samples: after, before: 100, windowS: 900, fallback: 900)?.kw == 900)
        #expect(MeasuredBaseline.settle(samples: after, before: 100, windowS: 900, fallback: nil) == nil,
                "never valued against 0 kW: not known yet")
        // Non-finite readings are not measurements.
        #expect(MeasuredBaseline.settle(samples: [(t: 50.0, kw: Double.nan)], before: 100, windowS: 900, fallback: nil) == nil)
    }

    @Test func manualPaidReductionWithAndWithoutBaseline() throws {
        let events = try ManualEvents.parse("""
            events:
              - id: pay-own
                usd_per_mwh: 400
                baseline_kw: 30000
                from: 2025-08-14T18:00:00Z
                until: 2025-08-14T19:00:00Z
              - id: pay-measured
                usd_per_mwh: 250
                from: 2025-08-14T20:00:00Z
            """, name: "dr.yaml")
        #expect(events.map(\.id) == ["pay-own", "pay-measured"])
        guard case .paidReduction(let usd, let b) = events[0].action else { Issue.record("\(events[0].action)"); return }
        #expect(usd == 400 && b == 30000)
        guard case .paidReduction(let usd2, let b2) = events[1].action else { Issue.record("\(events[1].action)"); return }
        #expect(usd2 == 250 && b2 == nil)
    }

    @Test(arguments: [
        ("events:\n  - id: a\n    cap_kw: 5\n    usd_per_mwh: 3\n    from: 2025-08-14T10:00:00Z\n", 4, "events[0].usd_per_mwh", "not both"),
        ("events:\n  - id: a\n    from: 2025-08-14T10:00:00Z\n", 2, "events[0]", "needs cap_kw"),
        ("events:\n  - id: a\n    cap_kw: 5\n    baseline_kw: 3\n    from: 2025-08-14T10:00:00Z\n", 4, "events[0].baseline_kw", "belongs to a paid reduction"),
        ("events:\n  - id: a\n    usd_per_mwh: -1\n    from: 2025-08-14T10:00:00Z\n", 3, "events[0].usd_per_mwh", "must be ≥ 0"),
        ("events:\n  - id: a\n    usd_per_mwh: 1\n    baseline_kw: -1\n    from: 2025-08-14T10:00:00Z\n", 4, "events[0].baseline_kw", "must be ≥ 0"),
    ] as [(String, Int, String, String)])
    func paidReductionErrors(text: String, line: Int, keyPath: String, fragment: String) {
        var caught: SignalsError?
        do { _ = try ManualEvents.parse(text, name: "dr.yaml") } catch { caught = error }
        #expect(caught?.source.line == line, "\(String(describing: caught))")
        #expect(caught?.source.keyPath == keyPath, "\(String(describing: caught))")
        #expect(caught?.message.contains(fragment) == true, "\(String(describing: caught))")
    }
}
