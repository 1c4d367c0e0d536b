// The safety governor: a pure function from proposed setpoints and telemetry
// to the setpoints that may be written. It is independent of the broker and
// the only path to hardware. It enforces, in order:
//   1. device limits (0…max, min-stable power as on/off);
//   2. ramp-up limits per device and a site-wide restore budget per tick (staggered restore);
//   3. every node cap in the capacity tree (import limit and DR caps at the root), with margin,
//      budgeting unreachable devices at their last known draw and stale meters at worst case;
//   4. feedback: a fresh meter over its cap forces more shedding, whatever the plan says;
//   5. comm loss: with the site meter lost, mining sheds to its safe level and nothing ramps up.
// Ramp-down is never limited: shedding is always allowed.

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

    public init(tickSeconds: Double, proposedKW: [Double?], overrideKW: [Double?], commandedKW: [Double],
                measuredKW: [Double?], deviceAgeS: [Double], reachable: [Bool], nodeMeasuredKW: [Double?],
                nodeAgeS: [Double], importCaps: [(label: String, capKW: Double)] = []) {
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
    }
}

public struct GovernorOutput: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable { case normal, shedding, commLoss = "comm-loss" }
    public var setpointsKW: [Double]
    public var interventions: [String]
    /// Predicted load per node with these setpoints (budgeted as the governor does).
    public var predictedNodeKW: [Double]
    /// The cap in force per node (the root includes import caps) minus margin.
    public var limitKW: [Double]
    public var mode: Mode
    /// True when uncontrollable and unreachable load alone exceed some limit.
    public var infeasible: Bool
}

public enum SafetyGovernor {
    public static func govern(_ model: SafetyModel, _ input: GovernorInput) -> GovernorOutput {
        let nD = model.devices.count, nN = model.nodes.count
        var notes: [String] = []
        var sp = [Double](repeating: 0, count: nD)

        // Comm loss: the site meter is silent.
        let rootAge = input.nodeAgeS[model.root]
        let commLoss = model.nodes[model.root].metered && (input.nodeMeasuredKW[model.root] == nil || rootAge > model.commLossAfterS)
        var anyStale = false
        for n in 0..<nN where model.nodes[n].metered && (input.nodeMeasuredKW[n] == nil || input.nodeAgeS[n] > model.staleAfterS) {
            anyStale = true
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

        // 2. Ramp-up per device and the site-wide restore budget; no ramp-up on stale data.
        var budget = model.restoreKWPerTick
        let order = (0..<nD).sorted { a, b in
            let pa = model.devices[a].loadClass == .inference ? 0 : 1, pb = model.devices[b].loadClass == .inference ? 0 : 1
            return (pa, a) < (pb, b)
        }
        var heldForStale = 0
        for d in order {
            let dev = model.devices[d]
            let from = input.commandedKW[d]
            guard sp[d] > from else { continue }
            if anyStale || commLoss || !input.reachable[d] {
                sp[d] = from < dev.minStableKW ? 0 : from
                heldForStale += 1
                continue
            }
            var up = min(sp[d] - from, dev.rampUpKWPerS * input.tickSeconds, budget)
            // A device below min-stable either jumps to min-stable or stays off.
            if from < dev.minStableKW, from + up < dev.minStableKW {
                up = dev.minStableKW - from <= min(budget, dev.rampUpKWPerS * input.tickSeconds) ? dev.minStableKW - from : 0
            }
            sp[d] = from + up
            if sp[d] > 0, sp[d] < dev.minStableKW { sp[d] = 0 }  // a device commanded inside its dead band
            budget -= up
        }
        if heldForStale > 0 {
            notes.append(commLoss ? "comm loss: site meter silent \(fmtS(rootAge)); no ramp-up for \(heldForStale) device(s)"
                         : "stale meter data: no ramp-up for \(heldForStale) device(s)")
        }
        if budget <= 0, model.restoreKWPerTick.isFinite {
            notes.append("restore staggered: \(fmtKW(model.restoreKWPerTick)) ramp-up per tick used")
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

        // 3 + 4. Caps, deepest node first; the root also carries the import caps.
        var limit = [Double](repeating: 0, count: nN)
        var predicted = [Double](repeating: 0, count: nN)
        var infeasible = false
        var shedding = false
        for n in model.nodesByDepth {
            // Which cap binds: the node's own, the import limit, or an import cap (by index).
            var cap = model.nodes[n].capKW
            var capSource = -2
            if n == model.root {
                if model.importLimitKW < cap { cap = model.importLimitKW; capSource = -1 }
                for (k, c) in input.importCaps.enumerated() where c.capKW < cap { cap = c.capKW; capSource = k }
            }
            limit[n] = cap - model.marginKW
            var load = uncontrolled[n] + devicesUnder[n].reduce(0) { $0 + draw($1) }
            var excess = load - limit[n]
            guard excess > 1e-9 else { predicted[n] = load; continue }
            // Words only for an intervention.
            let capLabel = switch capSource {
            case -2: "\(model.nodes[n].id) cap \(fmtKW(cap))"
            case -1: "import limit \(fmtKW(cap))"
            default: "\(input.importCaps[capSource].label) cap \(fmtKW(cap))"
            }
            var measuredNote = ""
            if model.nodes[n].metered, let m = input.nodeMeasuredKW[n], input.nodeAgeS[n] <= model.staleAfterS {
                measuredNote = " (measured \(fmtKW(m)))"
            }
            shedding = true
            let before = load
            let shedOrder = devicesUnder[n].filter { input.reachable[$0] && sp[$0] > 0 }.sorted { a, b in
                let ca = model.devices[a].loadClass == .mining ? 0 : 1, cb = model.devices[b].loadClass == .mining ? 0 : 1
                return (ca, -sp[a], a) < (cb, -sp[b], b)
            }
            var shedNames: [String] = []
            for d in shedOrder where excess > 1e-9 {
                let old = sp[d]
                var new = max(0, old - excess)
                if new > 0, new < model.devices[d].minStableKW { new = 0 }
                sp[d] = new
                excess -= old - new
                load -= old - new
                shedNames.append("\(model.devices[d].id) \(fmtKW(old))→\(fmtKW(new))")
            }
            notes.append("\(model.nodes[n].id): predicted \(fmtKW(before))\(measuredNote) > \(capLabel) − margin \(fmtKW(model.marginKW)); shed "
                         + shedNames.prefix(6).joined(separator: ", ") + (shedNames.count > 6 ? " and \(shedNames.count - 6) more" : ""))
            if excess > 1e-6 {
                infeasible = true
                notes.append("\(model.nodes[n].id): cannot get under the limit: \(fmtKW(excess)) of uncontrollable or unreachable load remains over it")
            }
            predicted[n] = load
        }
        // Recompute predictions after all shedding (a deeper shed lowers its ancestors).
        for n in 0..<nN { predicted[n] = uncontrolled[n] + devicesUnder[n].reduce(0) { $0 + draw($1) } }

        let mode: GovernorOutput.Mode = commLoss ? .commLoss : shedding ? .shedding : .normal
        return GovernorOutput(setpointsKW: sp, interventions: notes, predictedNodeKW: predicted, limitKW: limit,
                              mode: mode, infeasible: infeasible)
    }

    /// Worst case of uncontrolled load under `n`: its own configured worst case or, if larger, the children's.
    static func childWorst(_ model: SafetyModel, _ n: Int, _ uncontrolled: [Double]) -> Double {
        var children = 0.0
        for c in model.nodes.indices where model.nodes[c].parent == n { children += uncontrolled[c] }
        return max(model.nodes[n].uncontrolledMaxKW, children)
    }
}

func fmtKW(_ kw: Double) -> String {
    if !kw.isFinite { return "∞" }
    if abs(kw) >= 1000 { return "\((kw / 100).rounded() / 10) MW" }
    return "\(Int(kw.rounded())) kW"
}

func fmtS(_ s: Double) -> String { s.isFinite ? "\(Int(s.rounded())) s" : "ever" }
