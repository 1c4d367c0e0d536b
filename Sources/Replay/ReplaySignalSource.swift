// The loop's signals during a replay. `SiteSignalSource` hands the whole price list to
// `SiteDispatch.resolve`, which filters it every tick (O(n) per tick: too slow for a year of
// 5-minute prices). This source keeps a cursor into the trace and resolves only a window:
// the price in force and the forecast up to the horizon, the events and contracts active now.
// Time only moves forward in a replay, so the cursor advances; a jump back is searched.

import Broker
import Control
import Foundation
import struct Signals.ContractCalendar
import struct Signals.ContractWindow
import struct Signals.DREvent
import enum Signals.MeasuredBaseline
import Site
import Synchronization

final class ReplaySignalSource: SignalSource {
    let site: Site
    let plant: Plant
    let prices: [PricePoint]
    let priceEnds: [Double]
    let hashprice: [TraceInterval]?
    let drEvents: [DREvent]
    let peakWindows: [PeakWindow]
    /// Every contract window of the replay (the site's, then the extra contracts'), sorted by start, with its
    /// rank: a site contract's index in the site file, or (for every extra contract) the site's contract count.
    let contracts: [(window: ContractWindow, rank: Int)]
    let contractStarts: [Double]
    let maxContractLength: Double
    let horizonS: Double
    /// Paid reductions without a baseline: each is in the signals once its measured baseline is settled.
    let measured: [MeasuredPaidReduction]
    let baselineWindowS: Double
    let settled = Mutex<[String: MeasuredBaseline.Settled]>([:])

    struct Cursor {
        var price = 0
        var hash = 0
        var cachedAt = Double.nan
        var cached: DispatchSignals?
    }
    let cursor = Mutex(Cursor())

    init(config: ReplayConfig, site: Site, plant: Plant) {
        self.site = site
        self.plant = plant
        prices = config.prices.map { PricePoint(at: $0.start, usdPerMWh: $0.value) }
        priceEnds = config.prices.map(\.end)
        hashprice = config.hashprice
        drEvents = config.drEvents
        peakWindows = config.peakWindows
        // Expanded once (a day beyond each end), in each contract's own time zone.
        let from = Date(timeIntervalSince1970: config.from - 86_400), to = Date(timeIntervalSince1970: config.to + 86_400)
        var cs: [(window: ContractWindow, rank: Int)] = []
        for (i, ws) in ContractCalendar(contracts: site.contracts).windowsByContract(from: from, to: to).enumerated() {
            cs += ws.map { (window: $0, rank: i) }
        }
        cs += ContractCalendar(contracts: config.contracts).windows(from: from, to: to).map { (window: $0, rank: site.contracts.count) }
        cs.sort { ($0.window.start, $0.rank, $0.window.contractID) < ($1.window.start, $1.rank, $1.window.contractID) }
        contracts = cs
        contractStarts = cs.map { $0.window.start.timeIntervalSince1970 }
        maxContractLength = cs.reduce(0) { max($0, $1.window.end.timeIntervalSince1970 - $1.window.start.timeIntervalSince1970) }
        horizonS = config.forecastHorizonS
        measured = config.measuredPaidReductions
        baselineWindowS = config.baselineWindowS
    }

    /// Settles the baseline of every measured paid reduction that has started by `t`, from the
    /// replay's measured site import so far (one sample per tick, as serve's ledger records them):
    /// the same `MeasuredBaseline` rule serve applies. The first tick's import is the fallback when
    /// nothing was measured before the event.
    func settleBaselines(at t: Double, samples: [TickSample]) {
        guard !measured.isEmpty else { return }
        let changed = settled.withLock { done -> Bool in
            var changed = false
            for e in measured where done[e.id] == nil && e.start <= t {
                let first = samples.last(where: { $0.at >= e.start })?.siteKW
                if let b = MeasuredBaseline.settle(samples: samples.lazy.map { (t: $0.at, kw: $0.siteKW) },
                                                   before: e.start, windowS: baselineWindowS, fallback: first) {
                    done[e.id] = b
                    changed = true
                }
            }
            return changed
        }
        if changed { cursor.withLock { $0.cachedAt = .nan } }
    }

    /// The settled baselines of the measured paid reductions, by event id.
    var measuredBaselines: [String: MeasuredBaseline.Settled] { settled.withLock { $0 } }

    /// Events in force at `t`: the configured ones and the measured paid reductions whose baseline is known.
    func eventsInForce(at t: Double) -> [DREvent] {
        var out: [DREvent] = drEvents.filter { SiteDispatch.isActive($0, at: t) }
        if !measured.isEmpty {
            let b = settled.withLock { $0 }
            for e in measured where t >= e.start && t < e.end {
                guard let kw = b[e.id]?.kw else { continue }
                out.append(DREvent(id: e.id, origin: .manual, action: .paidReduction(usdPerMWh: e.usdPerMWh, baselineKW: kw),
                                   start: Date(timeIntervalSince1970: e.start), end: Date(timeIntervalSince1970: e.end), reason: "DR event \(e.id)"))
            }
        }
        return out
    }

    /// Index of the interval containing `t` (or the last one starting at or before it).
    static func index(_ starts: (Int) -> Double, count: Int, at t: Double, from hint: Int) -> Int {
        var i = min(max(hint, 0), max(count - 1, 0))
        if count == 0 { return 0 }
        if starts(i) > t {
            var lo = 0, hi = i
            while lo < hi { let mid = (lo + hi + 1) / 2; if starts(mid) <= t { lo = mid } else { hi = mid - 1 } }
            return lo
        }
        while i + 1 < count, starts(i + 1) <= t { i += 1 }
        return i
    }

    func signals(at t: Double) -> DispatchSignals {
        cursor.withLock { c in
            if c.cachedAt == t, let s = c.cached { return s }
            c.price = Self.index({ self.prices[$0].at }, count: prices.count, at: t, from: c.price)
            var sig = SiteSignals()
            var j = c.price
            let until = t + horizonS
            while j < prices.count, prices[j].at <= until { j += 1 }
            sig.energyPrices = Array(prices[c.price..<max(j, c.price + 1)])
            if let hp = hashprice, !hp.isEmpty {
                c.hash = Self.index({ hp[$0].start }, count: hp.count, at: t, from: c.hash)
                sig.hashpriceUsdPerPHDay = hp[c.hash].value
            }
            sig.drEvents = eventsInForce(at: t)
            sig.peakWindows = peakWindows.filter { t >= $0.start && t < $0.end }
            let resolved: DispatchSignals
            do { resolved = try SiteDispatch.resolve(site: site, plant: plant, signals: sig, at: t, contracts: activeContracts(at: t)) } catch {
                // Unreachable: the config is validated to have a price at every replayed instant.
                resolved = DispatchSignals(energyPriceUsdPerMWh: prices.first?.usdPerMWh ?? 0)
            }
            c.cachedAt = t
            c.cached = resolved
            return resolved
        }
    }

    /// The contract windows in force at `t`: the site's in file order, then the extra ones by start.
    func activeContracts(at t: Double) -> [ContractWindow] {
        guard !contracts.isEmpty else { return [] }
        // Windows starting after t cannot be active; those starting before t − longest cannot either.
        var hi = contractStarts.count
        var lo = 0
        while lo < hi { let mid = (lo + hi) / 2; if contractStarts[mid] <= t { lo = mid + 1 } else { hi = mid } }
        var out: [(window: ContractWindow, rank: Int)] = []
        var k = lo - 1
        while k >= 0, contractStarts[k] >= t - maxContractLength {
            if t < contracts[k].window.end.timeIntervalSince1970 { out.append(contracts[k]) }
            k -= 1
        }
        return out.sorted { ($0.rank, $0.window.start, $0.window.contractID) < ($1.rank, $1.window.start, $1.window.contractID) }.map(\.window)
    }

    /// The price in force at `t` and the end of its interval.
    func price(at t: Double) -> (usdPerMWh: Double, end: Double) {
        let i = cursor.withLock { c in Self.index({ self.prices[$0].at }, count: prices.count, at: t, from: c.price) }
        return (prices[i].usdPerMWh, priceEnds[i])
    }

    func describe(at t: Double) -> [String] {
        var out: [String] = []
        for e in eventsInForce(at: t) {
            switch e.action {
            case .importCap(let kw): out.append("DR \(e.id): import cap \(Int(kw)) kW")
            case .paidReduction(let usd, let b?): out.append("DR \(e.id): paid reduction below \(Int(b)) kW at $\(Int(usd))/MWh")
            case .paidReduction(_, nil), .price, .level: continue
            }
        }
        for w in peakWindows where t >= w.start && t < w.end { out.append("peak window \(w.id)") }
        return out
    }
}
