// Signal sources for the loop. Everything ends up as the Site's `SiteSignals`
// (prices, DR events, peak windows, contracts) resolved at an instant by the
// same code the one-shot `dispatch` command uses.

import Broker
import Safety
import Site
import Synchronization

/// A fixed (or replaceable) set of signals: a price trace with events.
public final class SiteSignalSource: SignalSource {
    public let site: Site
    public let plant: Plant
    let current: Mutex<SiteSignals>

    public init(site: Site, signals: SiteSignals) throws {
        self.site = site
        self.plant = try site.plant()
        self.current = Mutex(signals)
    }

    /// Replaces the signals (a feed refreshed them).
    public func update(_ body: (inout SiteSignals) -> Void) { current.withLock { body(&$0) } }

    public var signalsNow: SiteSignals { current.withLock { $0 } }

    public func signals(at t: Double) -> DispatchSignals {
        let sig = current.withLock { $0 }
        if let resolved = try? SiteDispatch.resolve(site: site, plant: plant, signals: sig, at: t) { return resolved }
        // No price yet: resolve the rest at a placeholder price; the loop replaces it (last known price,
        // the site's fallback price, or mining held: see `PriceBasis`).
        var fallback = sig
        fallback.energyPrices = [PricePoint(at: t, usdPerMWh: sig.energyPrices.first?.usdPerMWh ?? 0)]
        return (try? SiteDispatch.resolve(site: site, plant: plant, signals: fallback, at: t)) ?? DispatchSignals(energyPriceUsdPerMWh: 0)
    }

    public func hasPrice(at t: Double) -> Bool {
        current.withLock { s in s.energyPrices.contains { $0.at <= t } }
    }

    public func describe(at t: Double) -> [String] {
        let sig = current.withLock { $0 }
        var out: [String] = []
        for e in sig.drEvents where t >= e.start && t < e.end {
            switch e.kind {
            case .importCap(let kw): out.append("DR \(e.id): import cap \(fmtKW(kw))")
            case .paidReduction(let b, let usd): out.append("DR \(e.id): paid reduction below \(fmtKW(b)) at $\(Int(usd))/MWh")
            }
        }
        for w in sig.peakWindows where t >= w.start && t < w.end { out.append("peak window \(w.id)") }
        return out
    }
}
