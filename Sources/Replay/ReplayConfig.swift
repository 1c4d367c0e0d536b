// What one replay runs on: the site, a price trace and the other signals over a time range,
// and how finely to step. Built from files by `ReplayInputs.load` or directly in tests.

import Basics
import Foundation
import HardwareProfiles
import Signals
import Site

/// One error line, in the compilers' format: `file:line: error: what is wrong`.
public struct ReplayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One interval `[start, end)` of a series (seconds since 1970) and its value.
public struct TraceInterval: Sendable, Equatable {
    public var start: Double
    public var end: Double
    public var value: Double
    public init(start: Double, end: Double, value: Double) {
        self.start = start
        self.end = end
        self.value = value
    }
}

/// A paid reduction without a baseline of its own (see `ReplayConfig.measuredPaidReductions`).
public struct MeasuredPaidReduction: Sendable, Equatable {
    public var id: String
    public var start: Double
    public var end: Double
    public var usdPerMWh: Double
    public init(id: String, start: Double, end: Double, usdPerMWh: Double) {
        self.id = id; self.start = start; self.end = end; self.usdPerMWh = usdPerMWh
    }
}

public struct ReplayConfig: Sendable {
    public var site: Site
    public var profiles: [String: DeviceProfile]
    /// Energy prices ($/MWh): sorted, contiguous.
    public var prices: [TraceInterval]
    /// Hashprice ($/PH/day) over time; nil = the site file's economics.
    public var hashprice: [TraceInterval]?
    /// DR events, peak windows and extra contracts (each in its time zone), in the Signals vocabulary.
    public var drEvents: [DREvent]
    public var peakWindows: [PeakWindow]
    public var contracts: [Contract]
    /// The replayed range `[from, to)`.
    public var from: Double
    public var to: Double
    /// Control tick (seconds of simulated time between two ticks of the loop).
    public var tickS: Double
    /// Physics step: each tick is simulated in steps of at most this many seconds.
    public var physicsStepS: Double
    /// Seed of the simulator's measurement noise.
    public var seed: UInt64
    /// Measurement noise as a fraction of device max power (nil: the simulator's default, 0.2%).
    public var noiseFraction: Double?
    /// Inference demand by UTC hour, as fractions of each GPU container's max (nil: the simulator's daily curve).
    public var inferenceDemand: [Double]?
    /// How far ahead the controller sees prices (the broker uses the forecast to decide starts).
    public var forecastHorizonS: Double
    /// Price for the fixed-strike baseline ($/MWh); nil: the site's strike, else the mining value.
    public var baselineStrikeUsdPerMWh: Double?
    /// Share of the site budget given to mining in the static-split baseline.
    public var staticMiningShare: Double
    /// Where the inputs came from (shown in the report).
    public var sources: [String]
    /// Paid reductions that bring no baseline: each is valued, as `serve` values an OpenADR event,
    /// against the mean measured import over `baselineWindowS` before it (`MeasuredBaseline`).
    public var measuredPaidReductions: [MeasuredPaidReduction] = []
    /// The window before such an event whose mean import is its baseline (serve's `baseline_window_s`).
    public var baselineWindowS: Double = 900

    public init(site: Site, profiles: [String: DeviceProfile], prices: [TraceInterval], hashprice: [TraceInterval]? = nil,
                drEvents: [DREvent] = [], peakWindows: [PeakWindow] = [], contracts: [Contract] = [],
                from: Double? = nil, to: Double? = nil, tickS: Double = 300, physicsStepS: Double? = nil, seed: UInt64 = 1,
                noiseFraction: Double? = nil, inferenceDemand: [Double]? = nil, forecastHorizonS: Double = 86_400,
                baselineStrikeUsdPerMWh: Double? = nil, staticMiningShare: Double = 0.5, sources: [String] = []) {
        self.site = site
        self.profiles = profiles
        self.prices = prices
        self.hashprice = hashprice
        self.drEvents = drEvents
        self.peakWindows = peakWindows
        self.contracts = contracts
        self.from = from ?? prices.first?.start ?? 0
        self.to = to ?? prices.last?.end ?? 0
        self.tickS = tickS
        self.physicsStepS = physicsStepS ?? tickS
        self.seed = seed
        self.noiseFraction = noiseFraction
        self.inferenceDemand = inferenceDemand
        self.forecastHorizonS = forecastHorizonS
        self.baselineStrikeUsdPerMWh = baselineStrikeUsdPerMWh
        self.staticMiningShare = staticMiningShare
        self.sources = sources
    }

    /// Checks the ranges; the messages name the prices file.
    public func validate(pricesFile: String = "<prices>") throws(ReplayError) {
        guard let first = prices.first, let last = prices.last else {
            throw ReplayError("\(pricesFile): error: the price series is empty")
        }
        guard tickS > 0, tickS.isFinite else { throw ReplayError("error: the tick must be > 0 s, not \(tickS)") }
        guard physicsStepS > 0, physicsStepS.isFinite else { throw ReplayError("error: the physics step must be > 0 s, not \(physicsStepS)") }
        guard from < to else {
            throw ReplayError("error: the replay range is empty: from \(ISO8601.format(from)) is not before to \(ISO8601.format(to))")
        }
        guard from >= first.start else {
            throw ReplayError("\(pricesFile): error: the replay starts at \(ISO8601.format(from)), before the first price (\(ISO8601.format(first.start)))")
        }
        guard to <= last.end else {
            throw ReplayError("\(pricesFile): error: the replay ends at \(ISO8601.format(to)), after the last price interval ends (\(ISO8601.format(last.end)))")
        }
        guard (0...1).contains(staticMiningShare) else { throw ReplayError("error: the static split's mining share must be within 0…1") }
    }
}
