// Fleet DR allocation (issue 18): a regional shed target split across the region's sites by least value lost per
// MW. Pure: no I/O, no clock, deterministic (ties broken by site, then step).
//
// Each site offers a curve: the MW it can shed within one tick, step by step in the order its own broker would
// shed them (least valuable first), and the $/h it loses while each step is shed. Shedding part of a step loses
// that part of its $/h. A curve whose $/MWh falls somewhere (a later step cheaper than an earlier one) cannot be
// taken step by step cheapest-first, so the allocator uses its lower convex hull: adjacent steps are pooled until
// the rates rise. On convex (pooled) curves, taking the cheapest MW of the whole region first is optimal: it is
// the greedy solution of a fractional knapsack, which the LP tests in HubTests check against an exact simplex.

import Broker

/// One step of a site's offer: `mw` it can shed within one tick, losing `dollarsPerHour` while it is shed.
public struct OfferStep: Sendable, Hashable, Codable {
    public var mw: Double
    public var dollarsPerHour: Double

    public init(mw: Double, dollarsPerHour: Double) {
        self.mw = mw
        self.dollarsPerHour = dollarsPerHour
    }

    /// Value lost per MW shed, per hour ($/MWh).
    public var dollarsPerMWh: Double { dollarsPerHour / mw }
}

public enum OfferCurveError: Error, Sendable, Hashable, CustomStringConvertible {
    case step(index: Int, why: String)

    public var description: String {
        switch self { case .step(let i, let why): "offer curve step \(i + 1): \(why)" }
    }
}

/// A site's offer curve, in the order the site sheds its steps.
public struct OfferCurve: Sendable, Hashable, Codable {
    public let steps: [OfferStep]
    /// The lower convex hull of `steps` (pooled where the $/MWh falls): rates never fall along it.
    public let convex: [OfferStep]

    /// Every step must shed a positive, finite MW and lose a finite, non-negative $/h.
    public init(steps: [OfferStep]) throws(OfferCurveError) {
        for (i, s) in steps.enumerated() {
            guard s.mw.isFinite, s.mw > 0 else { throw .step(index: i, why: "MW must be positive and finite, not \(s.mw)") }
            guard s.dollarsPerHour.isFinite, s.dollarsPerHour >= 0 else {
                throw .step(index: i, why: "$/h lost must be finite and not negative, not \(s.dollarsPerHour)")
            }
        }
        self.steps = steps
        convex = Self.pooled(steps)
    }

    public var totalMW: Double { steps.reduce(0) { $0 + $1.mw } }

    /// The $/h lost when the site sheds `mw` along its convex curve (cheapest first).
    public func dollarsPerHourLost(sheddingMW mw: Double) -> Double {
        var left = max(0, mw), lost = 0.0
        for s in convex where left > 0 {
            let take = min(left, s.mw)
            lost += take * s.dollarsPerMWh
            left -= take
        }
        return lost
    }

    /// Pool adjacent violators: merge a step into the one before it while its rate is lower.
    static func pooled(_ steps: [OfferStep]) -> [OfferStep] {
        Broker.poolAdjacent(steps, rate: \.dollarsPerMWh) { last, cur in
            OfferStep(mw: last.mw + cur.mw, dollarsPerHour: last.dollarsPerHour + cur.dollarsPerHour)
        }
    }
}

/// One site's part of a regional shed.
public struct ShedShare: Sendable, Hashable, Codable {
    public var site: SiteKey
    public var mw: Double
    /// The $/h the site loses for it (on its convex curve).
    public var dollarsPerHour: Double
    /// The $/MWh of the last MW it was given (0 when it sheds nothing).
    public var marginalDollarsPerMWh: Double
    /// The most it could be given, and why, when less than its curve offers (a re-allocation's hold).
    public var limit: ShedLimit?
    /// What its curve offers in all.
    public var offeredMW: Double
}

/// A bound on a site's share below its offer, with the reason, for the words of the allocation.
public struct ShedLimit: Sendable, Hashable, Codable {
    public var mw: Double
    public var reason: String

    public init(mw: Double, reason: String) {
        self.mw = mw
        self.reason = reason
    }
}

/// A regional shed split across sites.
public struct ShedAllocation: Sendable, Hashable, Codable {
    public var targetMW: Double
    /// Every offering site, sorted by site (a share of 0 MW included, so that the sites left out are visible).
    public var shares: [ShedShare]
    /// The $/MWh of the last MW allocated: every MW allocated costs at most this, every MW left costs at least it.
    public var marginalDollarsPerMWh: Double?

    public var allocatedMW: Double { shares.reduce(0) { $0 + $1.mw } }
    public var dollarsPerHour: Double { shares.reduce(0) { $0 + $1.dollarsPerHour } }
    /// What the region could not shed (its offers fall short of the target).
    public var shortfallMW: Double { max(0, targetMW - allocatedMW) }

    public func share(of site: SiteKey) -> Double { shares.first { $0.site == site }?.mw ?? 0 }

    /// In words that are true of the numbers.
    public var explanation: [String] {
        var lines: [String] = []
        let alloc = FleetShedAllocator.format(allocatedMW), target = FleetShedAllocator.format(targetMW)
        if let m = marginalDollarsPerMWh {
            lines.append("allocated \(alloc) of \(target) MW, losing $\(FleetShedAllocator.format(dollarsPerHour))/h; "
                         + "every MW allocated loses at most $\(FleetShedAllocator.format(m))/MWh, every MW offered and not allocated at least that")
        } else {
            lines.append("allocated \(alloc) of \(target) MW")
        }
        if shortfallMW > FleetShedAllocator.epsilon {
            lines.append("short by \(FleetShedAllocator.format(shortfallMW)) MW: the sites offered only \(alloc) MW")
        }
        let f = FleetShedAllocator.format
        for s in shares {
            var line: String
            if s.mw > FleetShedAllocator.epsilon {
                line = "\(s.site): shed \(f(s.mw)) MW, losing $\(f(s.dollarsPerHour))/h (last MW at $\(f(s.marginalDollarsPerMWh))/MWh)"
            } else if s.offeredMW <= FleetShedAllocator.epsilon {
                line = "\(s.site): nothing: it offers no MW"
            } else if let l = s.limit, l.mw <= FleetShedAllocator.epsilon {
                line = "\(s.site): nothing: held to 0 MW (\(l.reason))"
            } else {
                line = "\(s.site): nothing: its cheapest MW loses more than the marginal"
            }
            if let l = s.limit, l.mw > FleetShedAllocator.epsilon, l.mw < s.offeredMW - FleetShedAllocator.epsilon {
                line += "; held to \(f(l.mw)) MW (\(l.reason))"
            }
            lines.append(line)
        }
        return lines
    }
}

public enum FleetShedAllocator {
    static let epsilon = 1e-9

    /// Splits `targetMW` across `offers` by least $/MWh lost, never giving a site more than its curve offers or its
    /// limit in `limits` (for a re-allocation: what a site that fell short actually delivered; 0 for a site that
    /// dropped off).
    public static func allocate(targetMW: Double, offers: [SiteKey: OfferCurve], limits: [SiteKey: ShedLimit] = [:]) -> ShedAllocation {
        struct Piece { var site: SiteKey; var index: Int; var mw: Double; var rate: Double }
        var pieces: [Piece] = []
        for (site, curve) in offers {
            var room = max(0, limits[site]?.mw ?? .infinity)
            for (i, s) in curve.convex.enumerated() where room > epsilon {
                let mw = min(s.mw, room)
                pieces.append(Piece(site: site, index: i, mw: mw, rate: s.dollarsPerMWh))
                room -= mw
            }
        }
        // Cheapest first; ties by site, then by step (a site's convex steps have rising rates, so its order is kept).
        pieces.sort { ($0.rate, $0.site, $0.index) < ($1.rate, $1.site, $1.index) }
        var need = max(0, targetMW)
        var given: [SiteKey: (mw: Double, lost: Double, marginal: Double)] = [:]
        var marginal: Double?
        for p in pieces where need > epsilon {
            let take = min(p.mw, need)
            var g = given[p.site] ?? (0, 0, 0)
            g.mw += take
            g.lost += take * p.rate
            g.marginal = p.rate
            given[p.site] = g
            marginal = p.rate
            need -= take
        }
        let shares = offers.keys.sorted().map { site in
            let g = given[site] ?? (0, 0, 0)
            return ShedShare(site: site, mw: g.mw, dollarsPerHour: g.lost, marginalDollarsPerMWh: g.marginal,
                             limit: limits[site], offeredMW: offers[site]?.totalMW ?? 0)
        }
        return ShedAllocation(targetMW: max(0, targetMW), shares: shares, marginalDollarsPerMWh: marginal)
    }

    /// A re-allocation within the next allocation period: sites in `offline` are given nothing; a site whose
    /// metered shed (`deliveredMW`) fell short of its share is held to what it delivered; the target is split again
    /// over everyone else's offers.
    public static func reallocate(_ previous: ShedAllocation, offers: [SiteKey: OfferCurve],
                                  deliveredMW: [SiteKey: Double], offline: Set<SiteKey>) -> ShedAllocation {
        var limits: [SiteKey: ShedLimit] = [:]
        for site in offline where offers[site] != nil { limits[site] = ShedLimit(mw: 0, reason: "offline") }
        for s in previous.shares where !offline.contains(s.site) {
            if let d = deliveredMW[s.site], d < s.mw - 1e-6 {
                limits[s.site] = ShedLimit(mw: max(0, d), reason: "delivered \(format(max(0, d))) of its \(format(s.mw)) MW share")
            }
        }
        return allocate(targetMW: previous.targetMW, offers: offers, limits: limits)
    }

    static func format(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}
