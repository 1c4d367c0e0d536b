// A fleet DR shed in progress (issue 18, `fleet event create --region R --shed-mw N …`). Pure: the hub feeds it
// the sites' offers and metered imports and the time, and sends the commands it returns.
//
// At the start, the target is split by FleetShedAllocator over the region's online sites' offers, and each site
// with a share gets a DR cap of (its import at the start − its share), as an NCMD with the shed's end as its
// expiry: a site that loses the broker keeps its cap until then, and then returns to local policy. Every cap is
// checked against the site's own DR event rules (Signals.DREventRules) before it is sent. Every allocation
// period the hub compares each site's metered shed (import at the start − import now, from the site's own meter)
// with its share: a site that dropped off, or delivered less than its share (beyond the tolerance), is held to
// what it delivered and the target is split again over the rest; each site whose share changed gets its old cap
// cancelled and a new one. The site's governor keeps the last word on its caps.

import Signals

/// A site's part in a fleet shed, as the hub knows it at the start.
public struct SiteShedInput: Sendable, Hashable {
    public var offer: OfferCurve
    /// Metered site import at the start (the baseline the shed is counted from), kW.
    public var importKW: Double

    public init(offer: OfferCurve, importKW: Double) {
        self.offer = offer
        self.importKW = importKW
    }
}

/// A command the shed asks the hub to send (NCMD to the site's edge node).
public enum FleetShedAction: Sendable, Hashable {
    case cap(site: SiteKey, eventID: String, capKW: Double, until: Double, reason: String)
    case cancel(site: SiteKey, eventID: String)
}

public struct FleetShed: Sendable, Codable {
    public let id: String
    public let region: String
    public let targetMW: Double
    public let until: Double
    public let reason: String
    /// How often shares are checked against the meters and re-allocated (seconds).
    public let periodS: Double
    /// A site is short when it delivers less than its share minus this (MW).
    public let toleranceMW: Double

    public private(set) var allocation: ShedAllocation?
    public private(set) var baselineKW: [SiteKey: Double] = [:]
    public private(set) var latestKW: [SiteKey: Double] = [:]
    public private(set) var offline: Set<SiteKey> = []
    /// The DR event in force at each site (its id), if any.
    public private(set) var activeEvent: [SiteKey: String] = [:]
    /// Caps that were not sent because the site's rules would refuse them, with why.
    public private(set) var refused: [SiteKey: String] = [:]
    /// When an operator cancelled the shed (seconds), if one did.
    public private(set) var cancelledAt: Double?
    /// After a cancel: the caps still to withdraw from sites that were offline then (event id by site); each is sent
    /// when its site is heard again before the shed's end, after which the cap has expired at the site anyway.
    public private(set) var unsentCancels: [SiteKey: String] = [:]
    /// The offers the target was split over (the region's at the start).
    public private(set) var offers: [SiteKey: OfferCurve] = [:]
    private var revision = 0
    private var lastAllocationAt = 0.0

    public init(id: String, region: String, targetMW: Double, until: Double, reason: String, periodS: Double = 30, toleranceMW: Double = 0.1) {
        precondition(DREventRules.isValidID(id) && id.count <= 56, "a shed id is 1…56 of A-Z a-z 0-9 . _ - (its events add a revision)")
        precondition(periodS > 0 && toleranceMW >= 0)
        self.id = id
        self.region = region
        self.targetMW = targetMW
        self.until = until
        self.reason = reason
        self.periodS = periodS
        self.toleranceMW = toleranceMW
    }

    /// Splits the target over `sites` (the region's online sites) and returns a cap for each site with a share.
    public mutating func start(now: Double, sites: [SiteKey: SiteShedInput]) -> [FleetShedAction] {
        precondition(allocation == nil, "a shed starts once")
        offers = sites.mapValues(\.offer)
        baselineKW = sites.mapValues(\.importKW)
        latestKW = baselineKW
        let a = FleetShedAllocator.allocate(targetMW: targetMW, offers: offers)
        return apply(a, now: now)
    }

    /// A metered import from a site's data.
    public mutating func observe(site: SiteKey, importKW: Double) {
        guard baselineKW[site] != nil else { return }
        latestKW[site] = importKW
        offline.remove(site)
    }

    /// The site's edge node died (NDEATH) or went stale.
    public mutating func dropped(site: SiteKey) {
        guard baselineKW[site] != nil else { return }
        offline.insert(site)
    }

    /// MW each site has shed by its own meter: import at the start minus its latest import.
    public var deliveredMW: [SiteKey: Double] {
        baselineKW.reduce(into: [:]) { out, e in out[e.key] = (e.value - (latestKW[e.key] ?? e.value)) / 1000 }
    }

    /// The shed's end: `until`, or the cancel if one came first.
    public var endsAt: Double { min(until, cancelledAt ?? until) }

    /// Ended: past its end, with no cap left to withdraw.
    public func isFinished(now: Double) -> Bool { now >= endsAt && activeEvent.isEmpty && unsentCancels.isEmpty }

    /// An operator's cancel: every cap in force is withdrawn (to an offline site, when it is heard again), and
    /// nothing is re-allocated after it. Refused once the shed has ended or been cancelled.
    public mutating func cancel(now: Double) -> [FleetShedAction]? {
        guard cancelledAt == nil, now < until else { return nil }
        cancelledAt = now
        var out: [FleetShedAction] = []
        for (site, event) in activeEvent.sorted(by: { $0.key < $1.key }) {
            if offline.contains(site) { unsentCancels[site] = event } else { out.append(.cancel(site: site, eventID: event)) }
        }
        activeEvent = [:]
        return out
    }

    /// A cancel that could not be sent after the shed was cancelled: sent again when the site is heard.
    public mutating func cancelNotDelivered(site: SiteKey, eventID: String) {
        guard cancelledAt != nil else { return }
        unsentCancels[site] = eventID
    }

    /// Once per period: re-allocates the shortfall of sites that dropped off or delivered too little. At `until`,
    /// the shed is over and the caps expire at the sites by themselves (nothing is sent). After a cancel: the
    /// cancels not yet delivered go to the sites heard again.
    public mutating func tick(now: Double) -> [FleetShedAction] {
        if cancelledAt != nil {
            guard now < until else { unsentCancels = [:]; return [] }
            let ready = unsentCancels.filter { !offline.contains($0.key) }.sorted { $0.key < $1.key }
            for (site, _) in ready { unsentCancels[site] = nil }
            return ready.map { .cancel(site: $0.key, eventID: $0.value) }
        }
        guard let previous = allocation, now < until, now - lastAllocationAt >= periodS else {
            if now >= until { activeEvent = [:]; lastAllocationAt = max(lastAllocationAt, now) }
            return []
        }
        let delivered = deliveredMW
        var short: [SiteKey: Double] = [:]
        for s in previous.shares where s.mw > 0 && !offline.contains(s.site) {
            let d = delivered[s.site] ?? 0
            if d < s.mw - toleranceMW { short[s.site] = d }
        }
        let lost = offline.filter { previous.share(of: $0) > 0 || activeEvent[$0] != nil }
        guard !short.isEmpty || !lost.isEmpty else {
            lastAllocationAt = now
            return []
        }
        let next = FleetShedAllocator.reallocate(previous, offers: offers, deliveredMW: short, offline: offline)
        return apply(next, now: now)
    }

    private mutating func apply(_ next: ShedAllocation, now: Double) -> [FleetShedAction] {
        let previous = allocation
        allocation = next
        lastAllocationAt = now
        revision += 1
        var out: [FleetShedAction] = []
        for s in next.shares {
            let before = previous?.share(of: s.site) ?? 0
            let changed = previous == nil || abs(s.mw - before) > 1e-6
            guard changed else { continue }
            if let old = activeEvent[s.site] {
                // To an offline site the cancel is lost: it keeps its old cap until the cap expires (a shed larger
                // than its share, never smaller, if it comes back first).
                out.append(.cancel(site: s.site, eventID: old))
                activeEvent[s.site] = nil
            }
            guard s.mw > 1e-9, !offline.contains(s.site), let base = baselineKW[s.site] else { continue }
            let cap = max(0, base - s.mw * 1000)
            let eventID = "\(id)-r\(revision)"
            let why = "\(reason) (fleet shed \(id): \(FleetShedAllocator.format(s.mw)) of \(FleetShedAllocator.format(targetMW)) MW in \(region))"
            let words = String(why.prefix(DREventRules.maxReasonCharacters))
            if let problem = DREventRules.eventProblem(capKW: cap, from: now, until: until, reason: words, now: now) {
                refused[s.site] = problem
                continue
            }
            out.append(.cap(site: s.site, eventID: eventID, capKW: cap, until: until, reason: words))
            activeEvent[s.site] = eventID
        }
        return out
    }

    /// In words that are true of the state.
    public var summary: [String] {
        guard let a = allocation else { return ["fleet shed \(id): not started"] }
        let delivered = deliveredMW
        var lines = ["fleet shed \(id) in \(region): \(FleetShedAllocator.format(targetMW)) MW until \(Int(until)); "
                     + "allocated \(FleetShedAllocator.format(a.allocatedMW)) MW, metered \(FleetShedAllocator.format(delivered.values.reduce(0, +))) MW"]
        for s in a.shares {
            var line = "\(s.site): share \(FleetShedAllocator.format(s.mw)) MW, metered \(FleetShedAllocator.format(delivered[s.site] ?? 0)) MW"
            if offline.contains(s.site) { line += ", offline" }
            if let r = refused[s.site] { line += ", cap not sent: \(r)" }
            lines.append(line)
        }
        return lines
    }
}
