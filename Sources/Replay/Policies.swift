// What decides the setpoints in a run: the controller itself (the broker), or one of the
// baselines. Baselines replace the broker's proposals through `ControlOptions.policy`; the
// safety governor still holds every cap, ramp and the restore budget, as it would on site.

import Broker

public enum ReplayPolicy: Sendable, Equatable {
    /// The real controller: broker + governor.
    case controller
    /// Every container at full power all the time (mining always on, inference serving all demand).
    case alwaysOn
    /// Mining at full power while the energy price (with peak adders) is below a fixed strike, off above it;
    /// inference at full power. No hysteresis, no forecast.
    case fixedStrike(usdPerMWh: Double)
    /// The site budget (import limit − margin) split statically: `miningShare` to mining, the rest to
    /// inference, each class's share spread over its containers in proportion to their max power.
    case staticSplit(miningShare: Double)

    public var id: String {
        switch self {
        case .controller: "policy"
        case .alwaysOn: "always-on"
        case .fixedStrike: "fixed-strike"
        case .staticSplit: "static-split"
        }
    }

    public var label: String {
        switch self {
        case .controller: "Switchyard (broker + governor)"
        case .alwaysOn: "Always-on mining"
        case .fixedStrike(let s): "Fixed strike $\(Int(s.rounded()))/MWh"
        case .staticSplit(let m):
            "Static split \(Int((m * 100).rounded()))/\(Int(((1 - m) * 100).rounded()))"
        }
    }

    /// The proposal function for `ControlOptions.policy` (nil for the controller).
    func proposal() -> (@Sendable (DispatchProblem) -> (setpointsKW: [Double], reason: String))? {
        switch self {
        case .controller:
            return nil
        case .alwaysOn:
            return { p in (p.plant.devices.map(\.maxKw), "baseline always-on: every container at max") }
        case .fixedStrike(let strike):
            return { p in
                let price = p.signals.energyPriceUsdPerMWh + p.signals.priceAdders.reduce(0) { $0 + $1.usdPerMWh }
                let on = price < strike
                let sp = p.plant.devices.map { d in d.deviceClass == .mining ? (on ? d.maxKw : 0) : d.maxKw }
                let why = on ? "baseline fixed strike: price \(Int(price.rounded())) < strike \(Int(strike.rounded())) $/MWh, mining on"
                             : "baseline fixed strike: price \(Int(price.rounded())) ≥ strike \(Int(strike.rounded())) $/MWh, mining off"
                return (sp, why)
            }
        case .staticSplit(let share):
            return { p in
                let budget = p.plant.importLimitKw - p.plant.safetyMarginKw
                var maxBy: [DeviceClass: Double] = [:]
                for d in p.plant.devices { maxBy[d.deviceClass, default: 0] += d.maxKw }
                let sp = p.plant.devices.map { d -> Double in
                    let classBudget = budget * (d.deviceClass == .mining ? share : 1 - share)
                    let total = maxBy[d.deviceClass] ?? 0
                    guard total > 0 else { return 0 }
                    var kw = min(d.maxKw, classBudget * d.maxKw / total)
                    if kw < d.minStableKw { kw = 0 }
                    return kw
                }
                return (sp, "baseline static split: \(Int((share * 100).rounded()))% of the budget to mining")
            }
        }
    }
}
