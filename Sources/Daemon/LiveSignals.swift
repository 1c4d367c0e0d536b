// The signals `serve` feeds into the control loop: the static ones (from --signals,
// --prices, --events) plus what the live feeds (the OpenADR VTN, the HTTP price feed)
// last delivered. Each feed replaces its own part; the composed whole is pushed into
// the current loop's `SiteSignalSource`, and a loop built for a new configuration
// (API config apply) starts from the same composed signals, so a swap does not drop
// the feeds' data.

import Control
import Foundation
import Signals
import Site
import Synchronization

final class LiveSignals: Sendable {
    private struct State {
        /// From files, given at start.
        var base: SiteSignals
        /// The VTN's events, mapped on demand (replaced on every successful poll; a paid reduction's
        /// measured baseline may arrive later, see `refreshOpenADR`).
        var openADREvents: (@Sendable () -> [DREvent])?
        /// The `--events` paid reductions without a baseline of their own, mapped on demand: each is in the
        /// signals once its measured baseline is known (see `refreshOpenADR`).
        var measuredFileEvents: (@Sendable () -> [DREvent])?
        /// Each HTTP feed's points (loop seconds, value), sorted, and where its latest payload ends.
        var feeds: [SeriesFeedKind: (points: [(at: Double, value: Double)], end: Double)] = [:]
        var host: LoopHost?
    }

    private let state: Mutex<State>

    init(base: SiteSignals) { state = Mutex(State(base: base)) }

    /// The file signals merged with the feeds' latest data.
    var composed: SiteSignals { state.withLock { Self.compose($0) } }

    /// A signal source for a (new) loop, seeded with the composed signals.
    func makeSource(site: Site) throws -> SiteSignalSource { try SiteSignalSource(site: site, signals: composed) }

    /// From now on, updates go to the host's current loop.
    func attach(_ host: LoopHost) {
        state.withLock { $0.host = host }
        push()
    }

    /// Replaces the VTN's events (a pass in flight yields to them).
    func setOpenADREvents(_ events: @escaping @Sendable () -> [DREvent]) {
        state.withLock { $0.openADREvents = events }
        push(eventsChanged: true)
    }

    /// Sets the `--events` paid reductions that wait for a measured baseline.
    func setMeasuredFileEvents(_ events: @escaping @Sendable () -> [DREvent]) {
        state.withLock { $0.measuredFileEvents = events }
        push(eventsChanged: true)
    }

    /// Maps the VTN's and the files' waiting events again (a baseline they wait for is now measured).
    func refreshOpenADR() { push(eventsChanged: true) }

    /// Merges one successful poll of a feed: its points replace the feed's earlier points from its first
    /// point on; earlier feed points are kept for a day before it (so "now" stays valued if the new payload starts
    /// in the future). Inside the feed's range, the feed's points win over the files' series.
    func mergeFeed(_ kind: SeriesFeedKind, _ points: [(at: Double, value: Double)], end: Double) {
        guard let first = points.map(\.at).min() else { return }
        state.withLock { s in
            let kept = (s.feeds[kind]?.points ?? []).filter { $0.at < first && $0.at >= first - 86_400 }
            s.feeds[kind] = ((kept + points).sorted { $0.at < $1.at }, end)
        }
        push()
    }

    private func push(eventsChanged: Bool = false) {
        let (signals, host) = state.withLock { (Self.compose($0), $0.host) }
        guard let loop = host?.current else { return }
        (loop.signals as? SiteSignalSource)?.update { $0 = signals }
        if eventsChanged { loop.inputsChanged() }
    }

    private static func compose(_ s: State) -> SiteSignals {
        var out = s.base
        out.drEvents += s.openADREvents?() ?? []
        out.drEvents += s.measuredFileEvents?() ?? []
        for (kind, feed) in s.feeds {
            guard let first = feed.points.first?.at else { continue }
            let end = max(feed.end, feed.points.last?.at ?? first)
            let outside = { (at: Double) in at < first || at >= end }
            switch kind {
            case .energyPrice:
                out.energyPrices = (out.energyPrices.filter { outside($0.at) } + feed.points.map { PricePoint(at: $0.at, usdPerMWh: $0.value) })
                    .sorted { $0.at < $1.at }
            case .hashprice:
                out.hashpriceSeries = (out.hashpriceSeries.filter { outside($0.at) } + feed.points.map { HashpricePoint(at: $0.at, usdPerPHDay: $0.value) })
                    .sorted { $0.at < $1.at }
            }
        }
        return out
    }
}
