// Feeds for `serve`: price series (ERCOT settlement-point CSV, generic CSV/JSON) and manual
// DR events, loaded with the Signals module and merged into the site's signals.

import Foundation
import Signals
import Site

/// Adds the price series and events of `--prices` / `--events` to `signals`.
/// Errors are one line with file and line (from the Signals loaders).
func mergeFeeds(into signals: inout SiteSignals, prices: String?, settlementPoint: String?, events: String?) throws {
    if let prices {
        let series = try SeriesLoader.load(path: prices, options: SeriesOptions(quantity: .price, settlementPoint: settlementPoint))
        signals.energyPrices += series.points.map { .init(at: $0.start.timeIntervalSince1970, usdPerMWh: $0.value) }
        signals.energyPrices.sort { $0.at < $1.at }
    }
    if let events {
        for e in try ManualEvents.load(path: events) {
            let start = e.start.timeIntervalSince1970
            let end = e.end?.timeIntervalSince1970 ?? .infinity
            switch e.action {
            case .importCap(let kw):
                signals.drEvents.append(.init(id: e.id, start: start, end: end, kind: .importCap(kw: kw)))
            case .paidReduction(let usd, let baseline):
                signals.drEvents.append(.init(id: e.id, start: start, end: end,
                                              kind: .paidReduction(baselineKw: baseline ?? 0, usdPerMWh: usd)))
            default:
                continue  // price and level events are not caps; the price feed carries prices
            }
        }
    }
}
