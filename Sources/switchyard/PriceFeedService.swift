// `serve --prices-url URL`: an HTTP JSON (or CSV) price series polled with the Signals
// module's `HTTPSeriesFeed` and `FeedPoller`, merged into the loop's energy prices.
// A failed poll logs one line and keeps the last good prices; it never stops serve.

import Foundation
import Logging
import ServiceLifecycle
import Signals
import Site
import Synchronization

struct PriceFeedService: Service {
    let poller: FeedPoller
    let signals: LiveSignals
    let logger: Logger

    init(url: URL, pollS: Double, settlementPoint: String?, signals: LiveSignals, logger: Logger) {
        let feed = HTTPSeriesFeed(url: url, options: SeriesOptions(quantity: .price, settlementPoint: settlementPoint))
        // After a failure, try again on the next regular poll (at most a minute later).
        self.poller = FeedPoller(feed: feed, interval: pollS, retryInterval: min(pollS, 60))
        self.signals = signals
        self.logger = logger
    }

    /// What the feed last delivered, for the log lines.
    private final class Health: Sendable {
        struct State {
            var lastGood: Date?
            var points = 0
            var failing = false
        }
        let state = Mutex(State())
    }

    func run() async throws {
        let health = Health()
        let (url, clock, signals, logger) = (poller.feed.name, poller.clock, signals, logger)
        await cancelWhenGracefulShutdown {
            await poller.run { result in
                switch result {
                case .success(let series):
                    guard let end = series.end else {
                        logger.warning("price feed returned no points; keeping the last good prices", metadata: ["prices.url": "\(url)"])
                        return
                    }
                    signals.mergeFeedPrices(series.points.map { PricePoint(at: $0.start.timeIntervalSince1970, usdPerMWh: $0.value) },
                                            end: end.timeIntervalSince1970)
                    let (first, recovered) = health.state.withLock { s -> (Bool, Bool) in
                        defer { s.lastGood = clock.now(); s.points = series.points.count; s.failing = false }
                        return (s.lastGood == nil, s.failing)
                    }
                    let meta: Logger.Metadata = ["prices.url": "\(url)", "prices.points": "\(series.points.count)",
                                                 "prices.from": "\(isoTime(series.start?.timeIntervalSince1970 ?? 0))",
                                                 "prices.until": "\(isoTime(end.timeIntervalSince1970))"]
                    if first || recovered {
                        logger.notice(recovered ? "price feed recovered" : "price feed: first prices", metadata: meta)
                    } else {
                        logger.info("price feed updated", metadata: meta)
                    }
                case .failure(let error):
                    let last = health.state.withLock { s -> (Date?, Int) in
                        s.failing = true
                        return (s.lastGood, s.points)
                    }
                    var meta: Logger.Metadata = ["prices.url": "\(url)", "error": "\(String(describing: error).replacingOccurrences(of: "\n", with: " "))"]
                    if let at = last.0 {
                        meta["prices.age_s"] = "\(Int(clock.now().timeIntervalSince(at).rounded()))"
                        meta["prices.points"] = "\(last.1)"
                        logger.warning("price feed poll failed; keeping the last good prices", metadata: meta)
                    } else {
                        logger.warning("price feed poll failed; no prices from it yet", metadata: meta)
                    }
                }
            }
        }
    }
}
