// The safety governor: a pure function from proposed setpoints and telemetry
// to the setpoints that may be written. It is independent of the broker and
// the only path to hardware. It enforces, in order:
//   1. device limits (0…max, min-stable power as on/off);
//   2. ramp-up limits per device (`RampRule`, the broker's own definition: a device that is off
//      may start straight at its min-stable power) and a site-wide restore budget per tick
//      (staggered restore); no ramp-up under a stale meter (that node's subtree only);
//   3. every node cap in the capacity tree (import limit and DR caps at the root), with margin,
//      budgeting unreachable devices at their last known draw and stale meters at worst case;
//      when it must cut, it cuts the least valuable kW first (the broker's value order, inference
//      under contract last); an inference container may be budgeted at its measured draw plus a
//      reserve when the same node (and every ancestor) holds at least that much mining to shed;
//   4. feedback: a fresh meter over its cap forces more shedding, whatever the plan says, and the
//      mode stays `over-cap` until the meter reads under the cap in force;
//   5. comm loss: with the site meter lost, mining sheds to its safe level and nothing ramps up.
//      Start-up is not comm loss: until every device has answered once (the loop says so, within
//      the comm-loss limit) nothing ramps up where a meter has not been read, and mining is not shed.
// Ramp-down is never limited: shedding is always allowed.
//
// This target has no dependencies: the compiler holds it to pure functions of plain data.

public enum LoadClass: String, Sendable, Hashable, CaseIterable, Codable {
    case mining, inference, auxiliary
}

/// The governor's view of the site: topology, caps and device limits only.
public struct SafetyModel: Sendable {
    public struct Node: Sendable, Hashable {
        public var id: String
        public var parent: Int?
        public var capKW: Double
        /// Worst case of the load under this node that the controller does not command
        /// directly (cooling, offices …), used when its meter is stale or absent.
        public var uncontrolledMaxKW: Double
        public var metered: Bool

        public init(id: String, parent: Int?, capKW: Double, uncontrolledMaxKW: Double = 0, metered: Bool = false) {
            self.id = id
            self.parent = parent
            self.capKW = capKW
            self.uncontrolledMaxKW = uncontrolledMaxKW
            self.metered = metered
        }
    }

    public struct Device: Sendable, Hashable {
        public var id: String
        public var node: Int
        public var loadClass: LoadClass
        public var maxKW: Double
        public var minStableKW: Double
        public var rampUpKWPerS: Double
        /// The level shed to on comm loss.
        public var safeKW: Double

        public init(id: String, node: Int, loadClass: LoadClass, maxKW: Double, minStableKW: Double = 0,
                    rampUpKWPerS: Double = .infinity, safeKW: Double = 0) {
            self.id = id
            self.node = node
            self.loadClass = loadClass
            self.maxKW = maxKW
            self.minStableKW = minStableKW
            self.rampUpKWPerS = rampUpKWPerS
            self.safeKW = safeKW
        }
    }

    public var nodes: [Node]
    public var devices: [Device]
    public var importLimitKW: Double
    public var marginKW: Double
    /// Most kW of total ramp-up granted in one tick, site-wide (staggered restore).
    public var restoreKWPerTick: Double
    /// Data older than this counts as stale (worst case).
    public var staleAfterS: Double
    /// The site meter silent longer than this is comm loss.
    public var commLossAfterS: Double

    /// For each device, its node and every ancestor; for each node, itself and its ancestors.
    public let deviceAncestors: [[Int]]
    public let nodeAncestors: [[Int]]
    /// Nodes deepest first.
    public let nodesByDepth: [Int]
    public let root: Int

    public init(nodes: [Node], devices: [Device], importLimitKW: Double, marginKW: Double,
                restoreKWPerTick: Double = .infinity, staleAfterS: Double = 5, commLossAfterS: Double = 10) {
        self.nodes = nodes
        self.devices = devices
        self.importLimitKW = importLimitKW
        self.marginKW = marginKW
        self.restoreKWPerTick = restoreKWPerTick
        self.staleAfterS = staleAfterS
        self.commLossAfterS = commLossAfterS
        func anc(_ n: Int) -> [Int] {
            var out: [Int] = []
            var cur: Int? = n
            while let c = cur, out.count <= nodes.count { out.append(c); cur = nodes[c].parent }
            return out
        }
        let nAnc = nodes.indices.map(anc)
        nodeAncestors = nAnc
        deviceAncestors = devices.map { anc($0.node) }
        nodesByDepth = nodes.indices.sorted { (nAnc[$0].count, $1) > (nAnc[$1].count, $0) }
        root = nodes.indices.first { nodes[$0].parent == nil } ?? 0
    }
}

/// What the governor knows this tick.
public struct GovernorInput: Sendable {
    public var tickSeconds: Double
    /// Broker proposals per device (kW); nil = no proposal (hold the commanded value).
    public var proposedKW: [Double?]
    /// Operator overrides per device (kW), bounded by the same caps.
    public var overrideKW: [Double?]
    /// What each device was last told.
    public var commandedKW: [Double]
    public var measuredKW: [Double?]
    public var deviceAgeS: [Double]
    public var reachable: [Bool]
    public var nodeMeasuredKW: [Double?]
    public var nodeAgeS: [Double]
    /// Extra caps on site import (demand response, peak windows).
    public var importCaps: [(label: String, capKW: Double)]
    /// What a kW of each device earns ($/MWh, net of the energy price), as the broker values it;
    /// nil: unknown, and the governor trims the largest mining setpoint first.
    public var valueUsdPerMWh: [Double]?
    /// Devices serving a contract now: trimmed last, whatever their value.
    public var underContract: [Bool]?
    /// Inference headroom: per device, the reserve (kW) above its measured draw at which an
    /// inference container may be budgeted instead of its setpoint, when mining under the same
    /// node can be shed to cover the rest. nil, or a non-finite entry: budget at the setpoint.
    public var inferenceReserveKW: [Double]?
    /// Start-up: some device has not answered its first poll yet, and the comm-loss limit since the
    /// loop's first pass is not over (`ControlLoop`). A meter not read yet then holds ramp-up below it
    /// as a stale one does, but is not comm loss; the mode is `starting`.
    public var startingUp = false
    /// Inference demand each container reports (kW, fresh readings only): headroom is counted
    /// from the larger of draw and demand, so a rise the container already sees is budgeted.
    public var inferenceDemandKW: [Double?]?

    public init(tickSeconds: Double, proposedKW: [Double?], overrideKW: [Double?], commandedKW: [Double],
                measuredKW: [Double?], deviceAgeS: [Double], reachable: [Bool], nodeMeasuredKW: [Double?],
                nodeAgeS: [Double], importCaps: [(label: String, capKW: Double)] = [],
                valueUsdPerMWh: [Double]? = nil, underContract: [Bool]? = nil, inferenceReserveKW: [Double]? = nil,
                inferenceDemandKW: [Double?]? = nil) {
        self.tickSeconds = tickSeconds
        self.proposedKW = proposedKW
        self.overrideKW = overrideKW
        self.commandedKW = commandedKW
        self.measuredKW = measuredKW
        self.deviceAgeS = deviceAgeS
        self.reachable = reachable
        self.nodeMeasuredKW = nodeMeasuredKW
        self.nodeAgeS = nodeAgeS
        self.importCaps = importCaps
        self.valueUsdPerMWh = valueUsdPerMWh
        self.underContract = underContract
        self.inferenceReserveKW = inferenceReserveKW
        self.inferenceDemandKW = inferenceDemandKW
    }
}

public struct GovernorOutput: Sendable, Equatable {
    /// `over-cap`: a fresh meter reads above the cap in force (the devices have not got there yet).
    /// `starting`: some device has not answered its first poll yet (see `GovernorInput.startingUp`).
    public enum Mode: String, Sendable, Equatable { case normal, shedding, overCap = "over-cap", commLoss = "comm-loss", starting }
    public var setpointsKW: [Double]
    public var interventions: [String]
    /// Predicted load per node with these setpoints (budgeted as the governor does).
    public var predictedNodeKW: [Double]
    /// The cap in force per node (the root includes import caps) minus margin.
    public var limitKW: [Double]
    public var mode: Mode
    /// True when uncontrollable and unreachable load alone exceed some limit.
    public var infeasible: Bool
    /// Nodes whose fresh meter reads above the cap in force (not the margin: the cap itself).
    public var overCapNodes: [String] = []
    /// What each device was budgeted at in the caps: its setpoint, its last known draw when
    /// unreachable, or (inference headroom) its measured draw plus the reserve.
    public var budgetKW: [Double] = []
    /// What limited the setpoints this pass, in words, most pressing first: each cap the governor
    /// had to trim at, a spent restore budget, ramp-up held on missing or stale readings, comm loss.
    public var binding: [String] = []
}

public enum SafetyGovernor {
    public static func govern(_ model: SafetyModel, _ input: GovernorInput) -> GovernorOutput {
        let nD = model.devices.count, nN = model.nodes.count
        var notes: [String] = []
        var binding: [String] = []
        var sp = [Double](repeating: 0, count: nD)

        // Comm loss: the site meter is silent.
        let rootAge = input.nodeAgeS[model.root]
        let commLoss = !input.startingUp && model.nodes[model.root].metered
            && (input.nodeMeasuredKW[model.root] == nil || rootAge > model.commLossAfterS)
        // A stale meter blocks ramp-up in its own subtree only; its ancestors' shared budget is
        // protected by the caps (step 3 budgets the stale node at worst case).
        var staleNode = [Bool](repeating: false, count: nN)
        for n in 0..<nN where model.nodes[n].metered && (input.nodeMeasuredKW[n] == nil || input.nodeAgeS[n] > model.staleAfterS) {
            staleNode[n] = true
        }

        // 1. Device limits.
        for d in 0..<nD {
            let dev = model.devices[d]
            var want = input.overrideKW[d] ?? input.proposedKW[d] ?? input.commandedKW[d]
            if !want.isFinite { want = 0 }
            want = max(0, min(want, dev.maxKW))
            if want > 0, want < dev.minStableKW { want = 0 }
            sp[d] = want
        }

        // 2. Ramp-up per device (the broker's `RampRule`) and the site-wide restore budget;
        //    no ramp-up on stale data under the stale node.
        var budget = model.restoreKWPerTick
        let order = (0..<nD).sorted { a, b in
            let pa = model.devices[a].loadClass == .inference ? 0 : 1, pb = model.devices[b].loadClass == .inference ? 0 : 1
            return (pa, a) < (pb, b)
        }
        var heldForStale: [String] = []
        var staleNodesHolding: Set<Int> = []
        var startsRefused = 0
        for d in order {
            let dev = model.devices[d]
            let from = input.commandedKW[d]
            guard sp[d] > from else { continue }
            let underStale = model.deviceAncestors[d].first { staleNode[$0] }
            if commLoss || underStale != nil || !input.reachable[d] {
                sp[d] = from < dev.minStableKW ? 0 : from
                if commLoss || underStale != nil { heldForStale.append(dev.id) }
                if let s = underStale { staleNodesHolding.insert(s) }
                continue
            }
            let ceiling = RampRule.ceilingKw(fromKw: from, maxKw: dev.maxKW, minStableKw: dev.minStableKW,
                                             rampKwPerS: dev.rampUpKWPerS, tickS: input.tickSeconds)
            let off = RampRule.isOff(fromKw: from, minStableKw: dev.minStableKW)
            // From off, the rise is counted from 0 (a start), as the broker counts it.
            let base = off ? 0 : from
            var target = max(base, min(sp[d], ceiling))
            // A start goes to min-stable at least, within the budget, or does not happen.
            if off, target > 0, target < dev.minStableKW { target = dev.minStableKW }
            if target - base > budget {
                target = base + max(0, budget)
                if off, target < dev.minStableKW { target = 0; startsRefused += 1 }
            }
            if target < from, !off { target = from }
            sp[d] = target
            budget -= max(0, target - base)
        }
        if !heldForStale.isEmpty {
            if commLoss {
                notes.append("comm loss: site meter silent \(fmtS(rootAge)); no ramp-up for \(heldForStale.count) device(s)")
                binding.append("comm loss: site meter silent \(fmtS(rootAge)), no ramp-up")
            } else if input.startingUp {
                let names = staleNodesHolding.sorted().map { model.nodes[$0].id }.joined(separator: ", ")
                notes.append("starting: meters under \(names) not read yet: no ramp-up for \(heldForStale.count) device(s) there")
                binding.append("starting: no ramp-up until the meters are read")
            } else {
                let names = staleNodesHolding.sorted().map { model.nodes[$0].id }.joined(separator: ", ")
                notes.append("stale meter data under \(names): no ramp-up for \(heldForStale.count) device(s) there ("
                             + heldForStale.prefix(4).joined(separator: ", ") + (heldForStale.count > 4 ? " …)" : ")"))
                binding.append("stale meter data under \(names): no ramp-up there")
            }
        }
        if model.restoreKWPerTick.isFinite {
            if budget <= 0 || startsRefused > 0 {
                binding.append("site restore rate \(fmtKW(model.restoreKWPerTick))/tick")
            }
            if budget <= 0 {
                notes.append("restore staggered: \(fmtKW(model.restoreKWPerTick)) ramp-up per tick used"
                             + (startsRefused > 0 ? "; \(startsRefused) start(s) wait for the next tick" : ""))
            } else if startsRefused > 0 {
                notes.append("restore staggered: \(startsRefused) start(s) wait for the next tick (\(fmtKW(budget)) of the "
                             + "\(fmtKW(model.restoreKWPerTick)) ramp-up per tick left, less than their min-stable power)")
            }
        }

        // 5. Comm loss: mining to its safe level.
        if commLoss {
            var shed = 0
            for d in 0..<nD where model.devices[d].loadClass == .mining && input.reachable[d] && sp[d] > model.devices[d].safeKW {
                sp[d] = model.devices[d].safeKW
                shed += 1
            }
            if shed > 0 { notes.append("comm loss: \(shed) mining container(s) shed to safe level") }
        }

        // Inference headroom: the level each inference container may be budgeted at instead of its
        // setpoint (measured draw plus the reserve), when its data is fresh and the site meter is live.
        var headroomBase = [Double](repeating: .infinity, count: nD)
        if let reserve = input.inferenceReserveKW, !commLoss {
            for d in 0..<nD where model.devices[d].loadClass == .inference && input.reachable[d] && reserve[d].isFinite && reserve[d] >= 0 {
                guard let m = input.measuredKW[d], input.deviceAgeS[d] <= model.staleAfterS,
                      model.deviceAncestors[d].allSatisfy({ !staleNode[$0] }) else { continue }
                let demand = input.inferenceDemandKW.flatMap { $0.count == nD ? $0[d] : nil } ?? 0
                headroomBase[d] = max(0, m, demand) + reserve[d]
            }
        }

        // Budget per device: commandable devices at their setpoint, unreachable ones at their last known draw.
        func draw(_ d: Int) -> Double {
            if !input.reachable[d] { return max(input.measuredKW[d] ?? model.devices[d].maxKW, 0) }
            return sp[d]
        }

        // Uncontrolled load per node: from a fresh meter, else worst case from below.
        var uncontrolled = [Double](repeating: 0, count: nN)
        var devicesUnder = [[Int]](repeating: [], count: nN)
        for d in 0..<nD { for n in model.deviceAncestors[d] { devicesUnder[n].append(d) } }
        for n in model.nodesByDepth {
            let node = model.nodes[n]
            let fresh = node.metered && input.nodeMeasuredKW[n] != nil && input.nodeAgeS[n] <= model.staleAfterS
            if fresh, let m = input.nodeMeasuredKW[n] {
                // Measured minus what the devices under it report drawing (fresh readings only).
                var known = 0.0
                var allKnown = true
                for d in devicesUnder[n] {
                    if let md = input.measuredKW[d], input.deviceAgeS[d] <= model.staleAfterS { known += md } else { allKnown = false; known += draw(d) }
                }
                let estimate = max(0, m - known)
                uncontrolled[n] = allKnown ? estimate : max(estimate, childWorst(model, n, uncontrolled))
            } else {
                uncontrolled[n] = childWorst(model, n, uncontrolled)
            }
        }

        // The load the governor budgets at node n: uncontrolled, plus every device at its budget,
        // less the inference headroom that mining under n can cover (the mining it would shed if
        // inference rose to its setpoint): U + Σ draw − min(Σ headroom, Σ mining).
        func headroom(_ d: Int) -> Double {
            headroomBase[d].isFinite && input.reachable[d] ? max(0, sp[d] - headroomBase[d]) : 0
        }
        func nodeLoad(_ n: Int) -> Double {
            var total = uncontrolled[n], credit = 0.0, mining = 0.0
            for d in devicesUnder[n] {
                total += draw(d)
                credit += headroom(d)
                if model.devices[d].loadClass == .mining && input.reachable[d] { mining += sp[d] }
            }
            return total - min(credit, mining)
        }

        // Trim order: least valuable first (the broker's value, net of the energy price), inference
        // under contract last; without values, the largest mining setpoint first.
        let values = input.valueUsdPerMWh.flatMap { $0.count == nD ? $0 : nil }
        let contract = input.underContract.flatMap { $0.count == nD ? $0 : nil } ?? [Bool](repeating: false, count: nD)

        // 3 + 4. Caps, deepest node first; the root also carries the import caps.
        var limit = [Double](repeating: 0, count: nN)
        var infeasible = false
        var shedding = false
        var overCap: [String] = []
        var infeasibleNoted: Set<Int> = []
        // The caps trimmed at (listed before the ramp-up limits: they bind harder).
        var capBinding: [String] = []
        // Starting: nodes over their limit only on the budgets of devices and meters not read yet.
        var unreadOver: [String] = []
        // Shedding mining at an ancestor can take away the mining that covered inference headroom
        // below it: passes repeat (setpoints only fall) until no node is over its limit.
        for pass in 0...nN {
          var changed = false
          for n in model.nodesByDepth {
            // Which cap binds: the node's own, the import limit, or an import cap (by index).
            var cap = model.nodes[n].capKW
            var capSource = -2
            if n == model.root {
                if model.importLimitKW < cap { cap = model.importLimitKW; capSource = -1 }
                for (k, c) in input.importCaps.enumerated() where c.capKW < cap { cap = c.capKW; capSource = k }
            }
            limit[n] = cap - model.marginKW
            let capLabel = switch capSource {
            case -2: "\(model.nodes[n].id) cap \(fmtKW(cap))"
            case -1: "import limit \(fmtKW(cap))"
            default: "\(input.importCaps[capSource].label) cap \(fmtKW(cap))"
            }
            var measuredNote = ""
            if model.nodes[n].metered, let m = input.nodeMeasuredKW[n], input.nodeAgeS[n] <= model.staleAfterS {
                measuredNote = " (measured \(fmtKW(m)))"
                if pass == 0, m > cap + 1e-6 {
                    overCap.append(model.nodes[n].id)
                    notes.append("\(model.nodes[n].id): metered \(fmtKW(m)) is over the \(capLabel): not under the cap yet")
                }
            }
            let before = nodeLoad(n)
            guard before - limit[n] > 1e-9 else { continue }
            shedding = true
            // With inference headroom granted under this node, mining pays for it: mining is cut first.
            let creditHere = devicesUnder[n].contains { headroom($0) > 0 }
            let shedOrder = devicesUnder[n].filter { input.reachable[$0] && sp[$0] > 0 }.sorted { a, b in
                let ka = contract[a] ? 1 : 0, kb = contract[b] ? 1 : 0
                let ma = model.devices[a].loadClass == .mining ? 0 : 1, mb = model.devices[b].loadClass == .mining ? 0 : 1
                if let v = values {
                    let ca = creditHere ? ma : 0, cb = creditHere ? mb : 0
                    return (ka, ca, v[a], ma, a) < (kb, cb, v[b], mb, b)
                }
                return (ka, ma, -sp[a], a) < (kb, mb, -sp[b], b)
            }
            var shedNames: [String] = []
            var excess = before - limit[n]
            for d in shedOrder where excess > 1e-9 {
                let old = sp[d]
                var new = max(0, old - excess)
                if creditHere {
                    // The budgeted load is not linear in sp[d] with headroom granted: the highest
                    // setpoint for d that brings the node under its limit (the load is non-decreasing
                    // in sp[d]); 0 when none does.
                    sp[d] = 0
                    new = 0
                    if nodeLoad(n) - limit[n] <= 1e-9 {
                        var lo = 0.0, hi = old
                        for _ in 0..<60 where hi - lo > 1e-7 {
                            let mid = (lo + hi) / 2
                            sp[d] = mid
                            if nodeLoad(n) - limit[n] <= 1e-9 { lo = mid } else { hi = mid }
                        }
                        // Snap to 0.1 W when that still fits (the load is piecewise linear).
                        let snapped = min(old, (lo * 1e4).rounded() / 1e4)
                        sp[d] = snapped
                        new = nodeLoad(n) - limit[n] <= 1e-9 ? snapped : lo
                    }
                }
                if new > 0, new < model.devices[d].minStableKW { new = 0 }
                sp[d] = new
                excess = creditHere ? nodeLoad(n) - limit[n] : excess - (old - new)
                guard old - new > 1e-9 else { continue }
                changed = true
                let value = values.map { " (\(fmtUSD($0[d])) $/MWh\(contract[d] ? ", contract" : ""))" } ?? ""
                shedNames.append("\(model.devices[d].id)\(value) \(fmtKW(old))→\(fmtKW(new))")
            }
            let how = values != nil ? "shed least valuable first: " : "shed "
            if !shedNames.isEmpty, !capBinding.contains(capLabel + " − margin \(fmtKW(model.marginKW))") {
                capBinding.append(capLabel + " − margin \(fmtKW(model.marginKW))")
            }
            // Starting: budgets at the maximum of devices not read yet are not an overload to report; with nothing shed, no note.
            if (pass == 0 && !input.startingUp) || !shedNames.isEmpty { notes.append("\(model.nodes[n].id): predicted \(fmtKW(before))\(measuredNote) > \(capLabel) − margin \(fmtKW(model.marginKW)); \(how)"
                         + shedNames.prefix(6).joined(separator: ", ") + (shedNames.count > 6 ? " and \(shedNames.count - 6) more" : "")) }
            excess = nodeLoad(n) - limit[n]
            // Starting, with a device or meter under this node not read yet: an excess is a gap in the data.
            let unread = (model.nodes[n].metered && input.nodeMeasuredKW[n] == nil)
                || devicesUnder[n].contains { !input.reachable[$0] && input.measuredKW[$0] == nil }
            if excess > 1e-6, input.startingUp, unread {
                // Devices not read yet are budgeted at their maximum: that is a gap in the data, not an overload.
                if infeasibleNoted.insert(n).inserted { unreadOver.append(model.nodes[n].id) }
            } else if excess > 1e-6 {
                infeasible = true
                if !infeasibleNoted.insert(n).inserted { continue }
                notes.append("\(model.nodes[n].id): cannot get under the limit: \(fmtKW(excess)) of uncontrollable or unreachable load remains over it")
            }
          }
          if !changed { break }
        }
        if !unreadOver.isEmpty {
            notes.append("starting: \(unreadOver.joined(separator: ", ")) not checked yet: the devices not read yet are counted at their "
                         + "maximum until they answer")
        }
        // Predictions after all shedding (a deeper shed lowers its ancestors).
        let predicted = (0..<nN).map(nodeLoad)
        // The headroom each device was granted: its own, scaled by the share of it that mining covers
        // at its tightest node (so the grants under any node sum to at most what its mining covers).
        var cover = [Double](repeating: 1, count: nN)
        for n in 0..<nN {
            var credit = 0.0, mining = 0.0
            for d in devicesUnder[n] {
                credit += headroom(d)
                if model.devices[d].loadClass == .mining && input.reachable[d] { mining += sp[d] }
            }
            if credit > 0 { cover[n] = min(1, mining / credit) }
        }
        let grantedKW = (0..<nD).map { d in headroom(d) * (model.deviceAncestors[d].map { cover[$0] }.min() ?? 1) }
        let budgetKW = (0..<nD).map { d in draw(d) - grantedKW[d] }
        let granted = grantedKW.reduce(0, +)
        if granted > 0.5 {
            notes.append("inference headroom: \(fmtKW(granted)) of inference setpoints budgeted at measured draw + reserve, covered by mining that can be shed")
        }

        let mode: GovernorOutput.Mode = commLoss ? .commLoss : !overCap.isEmpty ? .overCap : input.startingUp ? .starting
            : shedding ? .shedding : .normal
        if commLoss, !binding.contains(where: { $0.hasPrefix("comm loss") }) {
            binding.append("comm loss: site meter silent \(fmtS(rootAge))")
        }
        return GovernorOutput(setpointsKW: sp, interventions: notes, predictedNodeKW: predicted, limitKW: limit,
                              mode: mode, infeasible: infeasible, overCapNodes: overCap, budgetKW: budgetKW, binding: capBinding + binding)
    }

    /// Worst case of uncontrolled load under `n`: its own configured worst case or, if larger, the children's.
    static func childWorst(_ model: SafetyModel, _ n: Int, _ uncontrolled: [Double]) -> Double {
        var children = 0.0
        for c in model.nodes.indices where model.nodes[c].parent == n { children += uncontrolled[c] }
        return max(model.nodes[n].uncontrolledMaxKW, children)
    }
}

package func fmtKW(_ kw: Double) -> String {
    if !kw.isFinite { return "∞" }
    if abs(kw) >= 1000 { return "\((kw / 100).rounded() / 10) MW" }
    return "\(Int(kw.rounded())) kW"
}

package func fmtUSD(_ v: Double) -> String { v.isFinite ? "\(Int(v.rounded()))" : "∞" }

package func fmtS(_ s: Double) -> String { s.isFinite ? "\(Int(s.rounded())) s" : "ever" }
