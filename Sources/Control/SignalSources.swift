// Signal sources for the loop. Everything ends up as the Site's `SiteSignals`
// (prices, and the Signals vocabulary's DR events and contracts; peak windows) resolved
// at an instant by the one mapping `dispatch` and `replay` use too (`SiteDispatch.resolve`).

import Broker
import Foundation
import Safety
import struct Signals.Contract
import struct Signals.ContractCalendar
import struct Signals.ContractWindow
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

    /// The contract windows (the site's, then the signals') around a recent instant: expanding them on the
    /// calendar every tick would cost more than the rest of the tick's signals.
    private struct ContractSpan {
        var contracts: [Contract]
        var from: Double
        var to: Double
        var windows: [[ContractWindow]]
    }
    private let span = Mutex<ContractSpan?>(nil)

    /// The contract windows in force at `t`, in the order `SiteDispatch.resolve` would find them.
    func contractsInForce(at t: Double, _ sig: SiteSignals) -> [ContractWindow] {
        let all = site.contracts + sig.contracts
        guard !all.isEmpty else { return [] }
        let at = Date(timeIntervalSince1970: t)
        return span.withLock { s in
            if s == nil || s!.contracts != all || t < s!.from || t >= s!.to {
                // Windows overlapping [t − 1 day, t + 2 days) hold every window in force during [t, t + 1 day).
                let windows = ContractCalendar(contracts: all).windowsByContract(
                    from: Date(timeIntervalSince1970: t - 86_400), to: Date(timeIntervalSince1970: t + 2 * 86_400))
                s = ContractSpan(contracts: all, from: t, to: t + 86_400, windows: windows)
            }
            return s!.windows.flatMap { $0.filter { $0.contains(at) } }
        }
    }

    public func signals(at t: Double) -> DispatchSignals {
        let sig = current.withLock { $0 }
        let contracts = contractsInForce(at: t, sig)
        if let resolved = try? SiteDispatch.resolve(site: site, plant: plant, signals: sig, at: t, contracts: contracts) { return resolved }
        // No price yet: resolve the rest at a placeholder price; the loop replaces it (last known price,
        // the site's fallback price, or mining held: see `PriceBasis`).
        var fallback = sig
        fallback.energyPrices = [PricePoint(at: t, usdPerMWh: sig.energyPrices.first?.usdPerMWh ?? 0)]
        return (try? SiteDispatch.resolve(site: site, plant: plant, signals: fallback, at: t, contracts: contracts))
            ?? DispatchSignals(energyPriceUsdPerMWh: 0)
    }

    public func hasPrice(at t: Double) -> Bool {
        current.withLock { s in s.energyPrices.contains { $0.at <= t } }
    }

    public func describe(at t: Double) -> [String] {
        let sig = current.withLock { $0 }
        var out: [String] = []
        for e in sig.drEvents where SiteDispatch.isActive(e, at: t) {
            switch e.action {
            case .importCap(let kw): out.append("DR \(e.id): import cap \(fmtKW(kw))")
            case .paidReduction(let usd, let b?): out.append("DR \(e.id): paid reduction below \(fmtKW(b)) at $\(Int(usd))/MWh")
            case .paidReduction(_, nil), .price, .level: continue
            }
        }
        for w in sig.peakWindows where t >= w.start && t < w.end { out.append("peak window \(w.id)") }
        return out
    }
}
