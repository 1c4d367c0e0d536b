// `serve --prices-url URL` and `--hashprice-url URL`: an HTTP JSON (or CSV) series polled with
// the Signals module's `HTTPSeriesFeed` and `FeedPoller`, merged into the loop's energy prices or
// hashprice. A failed poll logs one line and keeps the last good values; it never stops serve.

import Basics
import Foundation
import Logging
import ServiceLifecycle
import Signals
import Site
import Synchronization

/// What a polled series feeds.
enum SeriesFeedKind: Hashable, Sendable {
    case energyPrice, hashprice

    /// The log lines' words and metadata prefix.
    var noun: String { self == .energyPrice ? "price" : "hashprice" }
    var key: String { self == .energyPrice ? "prices" : "hashprice" }
    var values: String { self == .energyPrice ? "prices" : "values" }
}

struct PriceFeedService: Service {
    let kind: SeriesFeedKind
    let poller: FeedPoller
    let signals: LiveSignals
    let logger: Logger

    init(_ kind: SeriesFeedKind = .energyPrice, url: URL, pollS: Double, settlementPoint: String?, transport: any HTTPTransport,
         signals: LiveSignals, logger: Logger) {
        self.kind = kind
        let quantity: SeriesQuantity = kind == .energyPrice ? .price : .hashprice
        let feed = HTTPSeriesFeed(url: url, options: SeriesOptions(quantity: quantity, settlementPoint: settlementPoint),
                                  transport: transport)
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
        let (url, clock, signals, logger, kind) = (poller.feed.name, poller.clock, signals, logger, kind)
        let (noun, key, values) = (kind.noun, kind.key, kind.values)
        await cancelWhenGracefulShutdown {
            await poller.run { result in
                switch result {
                case .success(let series):
                    guard let end = series.end else {
                        logger.warning("\(noun) feed returned no points; keeping the last good \(values)", metadata: ["\(key).url": "\(url)"])
                        return
                    }
                    signals.mergeFeed(kind, series.points.map { (at: $0.start.timeIntervalSince1970, value: $0.value) }, end: end.timeIntervalSince1970)
                    let (first, recovered) = health.state.withLock { s -> (Bool, Bool) in
                        defer { s.lastGood = clock.now(); s.points = series.points.count; s.failing = false }
                        return (s.lastGood == nil, s.failing)
                    }
                    let meta: Logger.Metadata = ["\(key).url": "\(url)", "\(key).points": "\(series.points.count)",
                                                 "\(key).from": "\(ISO8601.format(series.start?.timeIntervalSince1970 ?? 0))",
                                                 "\(key).until": "\(ISO8601.format(end.timeIntervalSince1970))"]
                    if first || recovered {
                        logger.notice(recovered ? "\(noun) feed recovered" : "\(noun) feed: first \(values)", metadata: meta)
                    } else {
                        logger.info("\(noun) feed updated", metadata: meta)
                    }
                case .failure(let error):
                    let last = health.state.withLock { s -> (Date?, Int) in
                        s.failing = true
                        return (s.lastGood, s.points)
                    }
                    var meta: Logger.Metadata = ["\(key).url": "\(url)", "error": "\(String(describing: error).replacingOccurrences(of: "\n", with: " "))"]
                    if let at = last.0 {
                        meta["\(key).age_s"] = "\(Int(clock.now().timeIntervalSince(at).rounded()))"
                        meta["\(key).points"] = "\(last.1)"
                        logger.warning("\(noun) feed poll failed; keeping the last good \(values)", metadata: meta)
                    } else {
                        logger.warning("\(noun) feed poll failed; no \(values) from it yet", metadata: meta)
                    }
                }
            }
        }
    }
}
