// Polled feeds: something that fetches a series, and a loop that calls it on
// an interval of an injected clock.

import Foundation

/// Fetches the current version of a series (prices or hashprice).
public protocol SeriesFeed: Sendable {
    /// Where the series comes from (for messages and logs).
    var name: String { get }
    func fetch() async throws(SignalsError) -> TimeSeries
}

/// A series served as JSON (or CSV) over HTTP GET. The body uses the same
/// layouts as files (see docs/signals.md); errors name the URL and key path.
public struct HTTPSeriesFeed: SeriesFeed {
    public var url: URL
    public var options: SeriesOptions
    public var headers: [String: String]
    public var transport: any HTTPTransport

    public init(url: URL, options: SeriesOptions = SeriesOptions(format: .auto), headers: [String: String] = [:],
                transport: any HTTPTransport) {
        self.url = url
        self.options = options
        self.headers = headers
        self.transport = transport
    }

    public var name: String { url.absoluteString }

    public func fetch() async throws(SignalsError) -> TimeSeries {
        let request = HTTPRequest(url: url, headers: headers.merging(["Accept": "application/json, text/csv"]) { a, _ in a })
        let response = try await transport.send(request)
        try response.requireSuccess(request)
        return try SeriesLoader.parse(response.text, name: url.absoluteString, options: options)
    }
}

/// A series read from a file each time (a file that an external job rewrites).
public struct FileSeriesFeed: SeriesFeed {
    public var path: String
    public var options: SeriesOptions
    public init(path: String, options: SeriesOptions = SeriesOptions()) {
        self.path = path
        self.options = options
    }
    public var name: String { path }
    public func fetch() async throws(SignalsError) -> TimeSeries { try SeriesLoader.load(path: path, options: options) }
}

/// Calls a feed every `interval` seconds of `clock` and hands each result on.
/// After a failure it retries after `retryInterval` instead.
public struct FeedPoller: Sendable {
    public var feed: any SeriesFeed
    public var interval: TimeInterval
    public var retryInterval: TimeInterval
    public var clock: any SignalClock

    public init(feed: any SeriesFeed, interval: TimeInterval, retryInterval: TimeInterval? = nil, clock: any SignalClock = SystemSignalClock()) {
        precondition(interval > 0, "poll interval must be positive")
        self.feed = feed
        self.interval = interval
        self.retryInterval = retryInterval ?? min(interval, 30)
        self.clock = clock
    }

    /// Polls until the task is cancelled. The first fetch happens at once;
    /// the next one `interval` after the previous one started (on `clock`).
    public func run(_ onResult: @Sendable (Result<TimeSeries, SignalsError>) async -> Void) async {
        while !Task.isCancelled {
            let started = clock.now()
            let result: Result<TimeSeries, SignalsError>
            do { result = .success(try await feed.fetch()) } catch { result = .failure(error) }
            await onResult(result)
            let wait: TimeInterval
            if case .success = result { wait = interval } else { wait = retryInterval }
            do { try await clock.sleep(until: started.addingTimeInterval(wait)) } catch { return }
        }
    }
}
