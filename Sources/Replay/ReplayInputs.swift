// From files to a ReplayConfig: the price trace (ERCOT RT/DA, generic CSV or JSON), an
// optional hashprice series, DR events (manual events, or the dr_events / peak_windows of
// a signals file) and a contract calendar. The Signals loaders already name the file and
// line of a missing column, an unsorted or gapped series, an ambiguous or nonexistent
// local time; those messages pass through unchanged.

import Basics
import Foundation
import HardwareProfiles
import Signals
import Site

/// The input files of a replay.
public struct ReplayFiles: Sendable {
    public var prices: String
    public var hashprice: String?
    public var events: String?
    public var contracts: String?
    /// ERCOT files: the settlement point to keep (needed when the file has several).
    public var settlementPoint: String?
    /// IANA zone of ERCOT local times and of contract calendars without `time_zone` (default America/Chicago).
    public var timeZone: String?

    public init(prices: String, hashprice: String? = nil, events: String? = nil, contracts: String? = nil,
                settlementPoint: String? = nil, timeZone: String? = nil) {
        self.prices = prices
        self.hashprice = hashprice
        self.events = events
        self.contracts = contracts
        self.settlementPoint = settlementPoint
        self.timeZone = timeZone
    }
}

public enum ReplayInputs {
    /// Reads every file and checks that they cover `[from, to)` (default: the whole price trace).
    public static func load(site: Site, profiles: [String: DeviceProfile], files: ReplayFiles,
                            from: Double? = nil, to: Double? = nil, tickS: Double = 300, physicsStepS: Double? = nil,
                            seed: UInt64 = 1) throws(ReplayError) -> ReplayConfig {
        var zone = TimeZone(identifier: "America/Chicago")!
        if let z = files.timeZone {
            guard let tz = TimeZone(identifier: z) else {
                throw ReplayError("error: unknown time zone \"\(z)\" (use an IANA name such as America/Chicago)")
            }
            zone = tz
        }
        let priceSeries: TimeSeries
        do {
            priceSeries = try SeriesLoader.load(
                path: files.prices, options: SeriesOptions(quantity: .price, settlementPoint: files.settlementPoint, timeZone: zone))
        } catch { throw ReplayError(error.description) }
        let prices = intervals(priceSeries)
        var config = ReplayConfig(site: site, profiles: profiles, prices: prices, from: from, to: to, tickS: tickS,
                                  physicsStepS: physicsStepS, seed: seed, sources: [files.prices])
        try config.validate(pricesFile: files.prices)

        if let path = files.hashprice {
            let series: TimeSeries
            do { series = try SeriesLoader.load(path: path, options: SeriesOptions(quantity: .hashprice, timeZone: zone)) } catch {
                throw ReplayError(error.description)
            }
            let hp = intervals(series)
            guard let a = hp.first?.start, let b = hp.last?.end, a <= config.from, b >= config.to else {
                throw ReplayError(
                    "\(path): error: the hashprice series covers \(range(hp)), not the whole replay \(ISO8601.format(config.from)) … \(ISO8601.format(config.to))")
            }
            config.hashprice = hp
            config.sources.append(path)
        }
        if let path = files.events {
            try loadEvents(path: path, into: &config)
            config.sources.append(path)
        }
        if let path = files.contracts {
            let calendar: ContractCalendar
            do { calendar = try ContractCalendar.load(path: path, defaultTimeZone: zone) } catch { throw ReplayError(error.description) }
            config.contracts += try contracts(calendar, file: path, site: site)
            config.sources.append(path)
        }
        return config
    }

    static func intervals(_ s: TimeSeries) -> [TraceInterval] {
        s.points.map { TraceInterval(start: $0.start.timeIntervalSince1970, end: $0.end.timeIntervalSince1970, value: $0.value) }
    }

    static func range(_ s: [TraceInterval]) -> String {
        guard let a = s.first?.start, let b = s.last?.end else { return "nothing" }
        return "\(ISO8601.format(a)) … \(ISO8601.format(b))"
    }

    /// Manual events (`events:` with cap_kw), or a signals file's dr_events, peak_windows and contracts.
    static func loadEvents(path: String, into config: inout ReplayConfig) throws(ReplayError) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ReplayError("\(path): error: cannot read the file: \(error.localizedDescription)")
        }
        if text.contains("dr_events") || text.contains("peak_windows") {
            let sig: SiteSignals
            do { sig = try SiteSignals.parse(text: text, file: path) } catch { throw ReplayError(siteError(error)) }
            config.drEvents += sig.drEvents
            config.peakWindows += sig.peakWindows
            config.contracts += sig.contracts
            return
        }
        let events: [DREvent]
        do { events = try ManualEvents.parse(text, name: path) } catch { throw ReplayError(error.description) }
        for e in events {
            switch e.action {
            case .importCap, .paidReduction(_, _?):
                config.drEvents.append(e)
            case .paidReduction(let usd, nil):
                // Valued as serve values it: against the mean measured import before the event.
                config.measuredPaidReductions.append(MeasuredPaidReduction(id: e.id, start: e.start.timeIntervalSince1970,
                                                                           end: e.end?.timeIntervalSince1970 ?? config.to, usdPerMWh: usd))
            case .price, .level:
                throw ReplayError("\(path): error: event '\(e.id)': only import caps and paid reductions can be replayed")
            }
        }
    }

    /// The calendar's contracts, each in its time zone (the calendar's). A calendar has no rate: delivered
    /// committed kW earn the devices' spot value (`SiteDispatch.resolve`), short kW pay the penalty.
    static func contracts(_ calendar: ContractCalendar, file: String, site: Site) throws(ReplayError) -> [Contract] {
        for c in calendar.contracts {
            for id in c.deviceIDs {
                guard let d = site.device(id), d.deviceClass == .inference else {
                    throw ReplayError("\(file): error: contract '\(c.id)' names device '\(id)', which is not an inference device in \(site.file)")
                }
            }
        }
        return calendar.contracts.map { c in
            var c = c
            c.timeZone = c.timeZone ?? calendar.timeZone
            return c
        }
    }

    static func siteError(_ e: LocatedError) -> String { "\(e.file):\(e.line):\(e.column): error: \(e.message)" }
}
