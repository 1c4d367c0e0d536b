// The site's offer to a fleet shed (issue 18): how many kW of import it can shed within one tick, and the $/h
// it loses for each step, least valuable first. The same accounting as the objective (Objective.swift): each
// device's revenue (contract rate up to its commitment, spot or hashprice value above it), its contract
// shortfall penalty, and the energy it no longer buys (the price with adders, times the import each device kW
// causes). Paid-reduction credits are not in it: a fleet shed is paid, if at all, to the fleet, not per site.
//
// Per device, kW are shed from the top: a running device can trim down to its min-stable power (or its min-on
// floor), and a device free to stop sheds its min-stable block whole. Down-ramps are immediate (RampRule limits
// only rises), so all of it can go within one tick. A device held on by its min-on time keeps its min-stable
// power; an unavailable device offers nothing. Within a device, steps whose $/MWh falls are pooled (a later
// step cannot be shed before an earlier one); across devices, steps are sorted by $/MWh, so the site's curve
// is convex: each further MW costs at least as much as the last. A step whose shed would save money (a device
// run at a loss, say under a contract) is offered at $0/h.

/// One step of a site's shed offer.
public struct ShedOfferStep: Sendable, Hashable {
    /// The device shed (several when steps were merged by `coarsened`).
    public var deviceIDs: [String]
    /// Device kW shed (summed over `deviceIDs` when merged).
    public var deviceKw: Double
    /// Site import shed, kW (the device's kW times the import each kW causes, auxiliary load included).
    public var importKw: Double
    /// Value lost while shed, $/h (never negative).
    public var usdPerHour: Double

    public init(deviceIDs: [String], deviceKw: Double, importKw: Double, usdPerHour: Double) {
        self.deviceIDs = deviceIDs
        self.deviceKw = deviceKw
        self.importKw = importKw
        self.usdPerHour = usdPerHour
    }

    /// $/MWh of import shed.
    public var usdPerMWh: Double { importKw > 0 ? usdPerHour / importKw * 1000 : 0 }
}

extension Broker {
    /// Adjacent steps pooled until their rates never fall (pool-adjacent-violators): a step whose `rate` is lower
    /// than the one before it is merged into it (`merge(earlier, later)`), repeatedly. Shared by the site's offer
    /// (within a device) and the hub's allocator (a site's convex hull, Hub/Allocation.swift).
    public static func poolAdjacent<Step>(_ steps: [Step], rate: (Step) -> Double, merge: (Step, Step) -> Step) -> [Step] {
        var out: [Step] = []
        for s in steps {
            var cur = s
            while let last = out.last, rate(cur) < rate(last) {
                out.removeLast()
                cur = merge(last, cur)
            }
            out.append(cur)
        }
        return out
    }

    /// The offer of a site running `setpointsKw` (parallel to `problem.plant.devices`), cheapest step first.
    public static func shedOffer(_ problem: DispatchProblem, setpointsKw: [Double]) -> [ShedOfferStep] {
        Engine(problem).shedOffer(setpointsKw)
    }

    /// At most `maxSteps` steps: neighbours merged where their $/MWh is closest. Merging neighbours of a convex
    /// curve keeps it convex, and keeps its total kW and $/h.
    public static func coarsened(_ steps: [ShedOfferStep], maxSteps: Int) -> [ShedOfferStep] {
        precondition(maxSteps > 0)
        var s = steps
        while s.count > maxSteps {
            var best = 0
            for i in 0..<(s.count - 1) where s[i + 1].usdPerMWh - s[i].usdPerMWh < s[best + 1].usdPerMWh - s[best].usdPerMWh {
                best = i
            }
            let a = s[best], b = s[best + 1]
            s[best] = ShedOfferStep(deviceIDs: a.deviceIDs + b.deviceIDs, deviceKw: a.deviceKw + b.deviceKw, importKw: a.importKw + b.importKw,
                                    usdPerHour: a.usdPerHour + b.usdPerHour)
            s.remove(at: best + 1)
        }
        return s
    }
}

extension Engine {
    /// $/h that device `d` adds to the objective at `x` kW: revenue, less the shortfall penalty, less the energy.
    func deviceNet(_ d: Int, _ x: Double) -> Double {
        let c = commitKw[d]
        var r: Double
        if c > 0, !spotOverContract[d] {
            r = (rate[d] * min(x, c) + value[d] * max(0, x - c)) / 1000
            r -= pen[d] * max(0, c - x) / 1000
        } else {
            r = value[d] * x / 1000
        }
        return r - price * plant.rootMult[d] * x / 1000
    }

    func shedOffer(_ x: [Double]) -> [ShedOfferStep] {
        precondition(x.count == nD, "one setpoint per device")
        var steps: [ShedOfferStep] = []
        for d in 0..<nD where status[d] != .pinned && x[d] > eps {
            let floor = status[d] == .forcedOn ? min(lo[d], x[d]) : 0
            // Breakpoints from the top down: the commitment (the value per kW changes there) and the min-stable
            // power (below it, the block goes whole).
            var points = [x[d]]
            for p in [servedCommit(d), minStable[d]].sorted(by: >) where p < points.last! - eps && p > floor + eps {
                points.append(p)
            }
            points.append(floor)
            var own: [ShedOfferStep] = []
            for i in 0..<(points.count - 1) {
                let (top, bottom) = (points[i], points[i + 1])
                let importKw = (top - bottom) * plant.rootMult[d]
                guard importKw > eps else { continue }
                let lost = max(0, deviceNet(d, top) - deviceNet(d, bottom))
                own.append(ShedOfferStep(deviceIDs: [plant.devices[d].id], deviceKw: top - bottom, importKw: importKw, usdPerHour: lost))
            }
            // Pooled where a later step is cheaper per MWh than the one before it.
            steps += Broker.poolAdjacent(own, rate: \.usdPerMWh) { last, step in
                ShedOfferStep(deviceIDs: step.deviceIDs, deviceKw: last.deviceKw + step.deviceKw, importKw: last.importKw + step.importKw,
                              usdPerHour: last.usdPerHour + step.usdPerHour)
            }
        }
        // Cheapest first; ties by device id (then the device's own order, which the stable sort keeps).
        return steps.enumerated().sorted {
            ($0.element.usdPerMWh, $0.element.deviceIDs[0], $0.offset) < ($1.element.usdPerMWh, $1.element.deviceIDs[0], $1.offset)
        }.map(\.element)
    }
}
