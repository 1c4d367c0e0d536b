// The signals at one instant: a pure function of the loaded inputs and a time.

import Foundation

/// Where a price came from.
public enum PriceSource: String, Sendable, Hashable {
    case realTime = "real-time"
    case dayAhead = "day-ahead"
}

/// A price over an interval.
public struct PriceQuote: Sendable, Hashable {
    public var start: Date
    public var end: Date
    public var usdPerMWh: Double
    public var source: PriceSource

    public init(start: Date, end: Date, usdPerMWh: Double, source: PriceSource) {
        self.start = start
        self.end = end
        self.usdPerMWh = usdPerMWh
        self.source = source
    }
}

/// Hashprice: a constant or a series ($/PH/day).
public enum Hashprice: Sendable, Hashable {
    case fixed(usdPerPHDay: Double)
    case series(TimeSeries)

    public func value(at t: Date) -> Double? {
        switch self {
        case .fixed(let v): v
        case .series(let s): s.value(at: t)
        }
    }
}

/// Everything the broker needs to know about the outside world at one instant.
public struct SignalState: Sendable, Hashable {
    public var time: Date
    /// The price of the interval containing `time` (real-time where present, else day-ahead).
    public var price: PriceQuote?
    /// Prices from the current interval to `time + horizon`, contiguous where data exists;
    /// real-time intervals win, day-ahead fills the rest. Clipped to the horizon.
    public var forecast: [PriceQuote]
    /// Hashprice in $/PH/day at `time`.
    public var hashpriceUSDPerPHDay: Double?
    /// Events whose window contains `time`.
    public var activeEvents: [DREvent]
    /// Events that start after `time` and before `time + horizon`.
    public var upcomingEvents: [DREvent]
    /// Contract windows containing `time`.
    public var activeContracts: [ContractWindow]
    /// Contract windows that start after `time` and before `time + horizon`.
    public var upcomingContracts: [ContractWindow]

    /// The tightest active import cap (kW), if any event sets one.
    public var importCapKW: Double? { activeEvents.compactMap(\.capKW).min() }

    /// Active paid-reduction offers, best-paying first.
    public var paidReductions: [(usdPerMWh: Double, baselineKW: Double?, event: DREvent)] {
        activeEvents.compactMap { e -> (Double, Double?, DREvent)? in
            if case .paidReduction(let p, let b) = e.action { return (p, b, e) }
            return nil
        }.sorted { $0.0 > $1.0 }
    }
}

/// The loaded inputs. Value type: replace a part (e.g. a new real-time series from
/// a poller, new events from the VEN) and call `at(_:)` again.
public struct SignalInputs: Sendable, Hashable {
    public var realTime: TimeSeries?
    public var dayAhead: TimeSeries?
    public var hashprice: Hashprice?
    public var events: [DREvent]
    public var contracts: ContractCalendar
    /// How far ahead `forecast`, `upcomingEvents` and `upcomingContracts` look.
    public var horizon: TimeInterval

    public init(realTime: TimeSeries? = nil, dayAhead: TimeSeries? = nil, hashprice: Hashprice? = nil,
                events: [DREvent] = [], contracts: ContractCalendar = ContractCalendar(), horizon: TimeInterval = 24 * 3600) {
        self.realTime = realTime
        self.dayAhead = dayAhead
        self.hashprice = hashprice
        self.events = events
        self.contracts = contracts
        self.horizon = horizon
    }

    /// The signal state at `t`. Pure: no clock reads, no I/O.
    public func at(_ t: Date) -> SignalState {
        let end = t.addingTimeInterval(horizon)
        let forecast = mergedForecast(from: t, to: end)
        let price = forecast.first.flatMap { $0.start <= t && t < $0.end ? $0 : nil }
        let active = events.filter { $0.isActive(at: t) }.sorted { ($0.start, $0.id) < ($1.start, $1.id) }
        let upcoming = events.filter { $0.start > t && $0.start < end }.sorted { ($0.start, $0.id) < ($1.start, $1.id) }
        let windows = contracts.windows(from: t, to: end)
        return SignalState(
            time: t,
            price: price,
            forecast: forecast,
            hashpriceUSDPerPHDay: hashprice?.value(at: t),
            activeEvents: active,
            upcomingEvents: upcoming,
            activeContracts: windows.filter { $0.contains(t) },
            upcomingContracts: windows.filter { $0.start > t })
    }

    /// Real-time intervals over `[from, to)`, with day-ahead filling what real-time does not cover.
    /// The current interval keeps its real start (which may be before `from`).
    func mergedForecast(from: Date, to: Date) -> [PriceQuote] {
        let rt = (realTime?.points(from: from, to: to) ?? []).map {
            PriceQuote(start: $0.start, end: $0.end, usdPerMWh: $0.value, source: .realTime)
        }
        let da = (dayAhead?.points(from: from, to: to) ?? []).map {
            PriceQuote(start: $0.start, end: $0.end, usdPerMWh: $0.value, source: .dayAhead)
        }
        var quotes: [PriceQuote]
        if let rtFirst = rt.first, let rtLast = rt.last {
            // A loaded series is contiguous, so real-time covers one range [rtStart, rtEnd).
            let rtStart = rtFirst.start, rtEnd = rtLast.end
            quotes = []
            for var q in da where q.start < rtStart {
                q.end = min(q.end, rtStart)
                quotes.append(q)
            }
            quotes.append(contentsOf: rt)
            for var q in da where q.end > rtEnd {
                q.start = max(q.start, rtEnd)
                quotes.append(q)
            }
        } else {
            quotes = da
        }
        // Give the current interval its whole extent.
        if var first = quotes.first, first.start == from {
            let series = first.source == .realTime ? realTime : dayAhead
            if let whole = series?.point(at: from) { first.start = whole.start; quotes[0] = first }
        }
        return quotes
    }
}
