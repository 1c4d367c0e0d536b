// The Broker's own input and output model. It knows nothing about YAML, files or clocks:
// the Site target (or a test) builds a `DispatchProblem`, and `Broker.dispatch` turns it into
// a `DispatchPlan`. Times are plain seconds; prices are $/MWh; power is kW.

/// What a controllable device does with its power.
public enum DeviceClass: String, Sendable, Hashable, CaseIterable {
    case mining
    case inference
}

/// One node of the capacity tree (site interconnect, transformer, feeder, PDU...).
public struct NodeSpec: Sendable, Hashable {
    public var id: String
    /// `nil` for the root. Exactly one node has no parent.
    public var parentID: String?
    public var capKw: Double
    /// Auxiliary load (cooling, for example) attached at this node that follows the IT load of the
    /// whole subtree: every kW of controllable load below this node adds `auxFraction` kW here.
    public var auxFraction: Double

    public init(id: String, parentID: String?, capKw: Double, auxFraction: Double = 0) {
        self.id = id
        self.parentID = parentID
        self.capKw = capKw
        self.auxFraction = auxFraction
    }
}

/// A controllable device (a mining or inference container) and its static limits.
public struct DeviceSpec: Sendable, Hashable {
    public var id: String
    public var deviceClass: DeviceClass
    /// The id of the tree node this device hangs from.
    public var nodeID: String
    public var maxKw: Double
    /// Below this the device cannot run stably: it is either off (0 kW) or at least this.
    public var minStableKw: Double
    /// Upward ramp limit; 0 means unlimited. Downward moves are never ramp-limited (see docs/dispatch.md).
    public var rampKwPerS: Double
    public var minOnS: Double
    public var minOffS: Double
    /// ASIC efficiency, used to turn hashprice into $/MWh.
    public var efficiencyJPerTH: Double?
    /// kW per GPU, used to turn a $/GPU-hour spot value into $/MWh.
    public var kwPerGpu: Double?
    /// A value set directly for this device; wins over hashprice and spot.
    public var valueUsdPerMWh: Double?

    public init(
        id: String, deviceClass: DeviceClass, nodeID: String, maxKw: Double, minStableKw: Double = 0,
        rampKwPerS: Double = 0, minOnS: Double = 0, minOffS: Double = 0, efficiencyJPerTH: Double? = nil,
        kwPerGpu: Double? = nil, valueUsdPerMWh: Double? = nil
    ) {
        self.id = id
        self.deviceClass = deviceClass
        self.nodeID = nodeID
        self.maxKw = maxKw
        self.minStableKw = minStableKw
        self.rampKwPerS = rampKwPerS
        self.minOnS = minOnS
        self.minOffS = minOffS
        self.efficiencyJPerTH = efficiencyJPerTH
        self.kwPerGpu = kwPerGpu
        self.valueUsdPerMWh = valueUsdPerMWh
    }
}

/// A problem in the plant description (not a dispatch infeasibility).
public struct PlantError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The static part of a dispatch problem: the capacity tree and the devices, validated and
/// indexed once. Build it once per site configuration and reuse it every tick.
public struct Plant: Sendable {
    public let nodes: [NodeSpec]
    public let devices: [DeviceSpec]
    /// Site import limit and the safety margin kept below it; the root's effective cap is
    /// `min(root cap, importLimitKw - safetyMarginKw)`.
    public let importLimitKw: Double
    public let safetyMarginKw: Double
    /// Control tick length (ramp limits are per tick).
    public let tickSeconds: Double
    /// Site-wide limit on the sum of upward moves per tick (kW); `nil` means unlimited.
    public let restoreRateKwPerTick: Double?
    /// Device data older than this is stale: the device may be shed but not ramped up.
    public let staleAfterS: Double

    // Derived, index-based topology (no string lookups in the hot loop).
    /// Parent node index, -1 for the root. Nodes are stored so that parent < child.
    let nodeParent: [Int]
    let deviceNode: [Int]
    /// Flattened ancestor paths: device d's path is pathNodes[pathStart[d]..<pathStart[d+1]],
    /// from its own node up to the root; pathMult holds the kW counted at that node per kW of device load.
    let pathStart: [Int]
    let pathNodes: [Int]
    let pathMult: [Double]
    /// kW of site import per kW of device load (the root entry of pathMult).
    let rootMult: [Double]
    /// Rank of each device when sorted by id: the deterministic tie-break.
    let idRank: [Int]
    /// Device indices in id order.
    let byRank: [Int]
    /// 1 / pathMult, so the hot loop multiplies instead of dividing.
    let pathInv: [Double]
    /// The same paths per node (every device under a node shares its path), packed for the hot
    /// loop: node n's path is nodePath[nodePathStart[n]..<nodePathStart[n+1]].
    let nodePath: [PathEntry]
    let nodePathStart: [Int]
    /// Every device below a node sees the same multiplier there (auxiliary fractions only at
    /// nodes whose devices all share them): greedy is then exact for the continuous relaxation.
    let uniformMultipliers: Bool
    let deviceIndexByID: [String: Int]
    let nodeIndexByID: [String: Int]
    // Device limits as plain arrays (no String-holding structs in the hot loops).
    let maxKw: [Double]
    let minStableKw: [Double]
    let rampKwPerS: [Double]
    let minOnS: [Double]
    let minOffS: [Double]
    let isMining: [Bool]
    /// 0 when unknown.
    let efficiencyJPerTH: [Double]
    let kwPerGpu: [Double]
    /// NaN when not set.
    let valueOverride: [Double]

    public init(
        nodes: [NodeSpec], devices: [DeviceSpec], importLimitKw: Double = .infinity, safetyMarginKw: Double = 0,
        tickSeconds: Double = 10, restoreRateKwPerTick: Double? = nil, staleAfterS: Double = .infinity
    ) throws(PlantError) {
        guard tickSeconds > 0 else { throw PlantError("tick must be longer than 0 s") }
        // Order nodes so that each parent comes before its children.
        var byID: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            if byID.updateValue(i, forKey: n.id) != nil { throw PlantError("node '\(n.id)' is defined twice") }
            guard n.capKw >= 0, n.capKw.isNaN == false else { throw PlantError("node '\(n.id)' has a negative cap") }
            guard n.auxFraction >= 0 else { throw PlantError("node '\(n.id)' has a negative auxiliary fraction") }
        }
        let roots = nodes.filter { $0.parentID == nil }
        guard roots.count == 1 else {
            throw PlantError("the capacity tree needs exactly one root node, found \(roots.count)")
        }
        var children: [[Int]] = Array(repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() {
            if let p = n.parentID {
                guard let pi = byID[p] else { throw PlantError("node '\(n.id)' names unknown parent '\(p)'") }
                children[pi].append(i)
            }
        }
        var order: [Int] = [byID[roots[0].id]!]
        var k = 0
        while k < order.count {
            order.append(contentsOf: children[order[k]])
            k += 1
        }
        guard order.count == nodes.count else { throw PlantError("the capacity tree has a cycle") }
        let sortedNodes = order.map { nodes[$0] }
        var nodeIndex: [String: Int] = [:]
        for (i, n) in sortedNodes.enumerated() { nodeIndex[n.id] = i }
        let parent = sortedNodes.map { n in n.parentID.map { nodeIndex[$0]! } ?? -1 }

        var devIndex: [String: Int] = [:]
        var devNode: [Int] = []
        devNode.reserveCapacity(devices.count)
        for (i, d) in devices.enumerated() {
            if devIndex.updateValue(i, forKey: d.id) != nil { throw PlantError("device '\(d.id)' is defined twice") }
            if nodeIndex[d.id] != nil { throw PlantError("'\(d.id)' is both a node and a device") }
            guard let ni = nodeIndex[d.nodeID] else {
                throw PlantError("device '\(d.id)' hangs from unknown node '\(d.nodeID)'")
            }
            guard d.maxKw >= 0, d.minStableKw >= 0, d.minStableKw <= d.maxKw else {
                throw PlantError("device '\(d.id)' needs 0 <= min_stable_kw <= max_kw")
            }
            guard d.rampKwPerS >= 0, d.minOnS >= 0, d.minOffS >= 0 else {
                throw PlantError("device '\(d.id)' has a negative ramp or dwell time")
            }
            devNode.append(ni)
        }
        var start: [Int] = [0]
        var pn: [Int] = []
        var pm: [Double] = []
        var rm: [Double] = []
        start.reserveCapacity(devices.count + 1)
        for d in devices.indices {
            var n = devNode[d]
            var mult = 1.0
            while n >= 0 {
                mult += sortedNodes[n].auxFraction
                pn.append(n)
                pm.append(mult)
                n = parent[n]
            }
            rm.append(mult)
            start.append(pn.count)
        }
        let sortedIdx = devices.indices.sorted { devices[$0].id < devices[$1].id }
        var rank = Array(repeating: 0, count: devices.count)
        for (r, i) in sortedIdx.enumerated() { rank[i] = r }

        self.nodes = sortedNodes
        self.devices = devices
        self.importLimitKw = importLimitKw
        self.safetyMarginKw = safetyMarginKw
        self.tickSeconds = tickSeconds
        self.restoreRateKwPerTick = restoreRateKwPerTick
        self.staleAfterS = staleAfterS
        self.nodeParent = parent
        self.deviceNode = devNode
        self.pathStart = start
        self.pathNodes = pn
        self.pathMult = pm
        self.rootMult = rm
        self.idRank = rank
        self.byRank = sortedIdx
        self.pathInv = pm.map { 1 / $0 }
        var np: [PathEntry] = []
        var nps: [Int] = [0]
        for n0 in sortedNodes.indices {
            var n = n0
            var mult = 1.0
            while n >= 0 {
                mult += sortedNodes[n].auxFraction
                np.append(PathEntry(node: Int32(n), inv: 1 / mult, mult: mult))
                n = parent[n]
            }
            nps.append(np.count)
        }
        self.nodePath = np
        self.nodePathStart = nps
        var mu = [Double](repeating: .infinity, count: sortedNodes.count)
        for e in np where e.mult < mu[Int(e.node)] { mu[Int(e.node)] = e.mult }
        self.uniformMultipliers = np.allSatisfy { abs(mu[Int($0.node)] - $0.mult) <= 1e-12 * $0.mult }
        self.deviceIndexByID = devIndex
        self.nodeIndexByID = nodeIndex
        self.maxKw = devices.map(\.maxKw)
        self.minStableKw = devices.map(\.minStableKw)
        self.rampKwPerS = devices.map(\.rampKwPerS)
        self.minOnS = devices.map(\.minOnS)
        self.minOffS = devices.map(\.minOffS)
        self.isMining = devices.map { $0.deviceClass == .mining }
        self.efficiencyJPerTH = devices.map { $0.efficiencyJPerTH ?? 0 }
        self.kwPerGpu = devices.map { $0.kwPerGpu ?? 0 }
        self.valueOverride = devices.map { $0.valueUsdPerMWh ?? .nan }
    }

    public func deviceIndex(_ id: String) -> Int? { deviceIndexByID[id] }
    public func nodeIndex(_ id: String) -> Int? { nodeIndexByID[id] }
    /// Parent node index (-1 for the root) of node `i` in `nodes`.
    public func parentIndex(ofNode i: Int) -> Int { nodeParent[i] }
    /// Index in `nodes` of the node device `d` hangs from.
    public func nodeIndex(ofDevice d: Int) -> Int { deviceNode[d] }
    /// The nodes from device `d` up to the root, each with the kW it sees per kW of device load.
    public func path(ofDevice d: Int) -> [(node: Int, multiplier: Double)] {
        (pathStart[d]..<pathStart[d + 1]).map { (pathNodes[$0], pathMult[$0]) }
    }
}

struct PathEntry: Sendable {
    var node: Int32
    var inv: Double
    var mult: Double
}

/// What the controller knows about one device right now.
public struct DeviceState: Sendable, Hashable {
    /// Last measured draw; `nil` if never read.
    public var measuredKw: Double?
    /// The setpoint currently in force (the ramp base).
    public var setpointKw: Double
    /// `false` when the device does not answer: it cannot be commanded and its last known draw is
    /// held in the budget.
    public var available: Bool
    /// Age of the device's data.
    public var dataAgeS: Double
    public var isOn: Bool
    /// How long the device has been in its current on/off state.
    public var stateForS: Double
    /// `false` when the snapshot does not mention the device at all: it is then budgeted at its
    /// maximum (`setpointKw`), and its reason says so.
    public var inSnapshot: Bool

    public init(
        measuredKw: Double? = nil, setpointKw: Double, available: Bool = true, dataAgeS: Double = 0,
        isOn: Bool? = nil, stateForS: Double = .infinity, inSnapshot: Bool = true
    ) {
        self.inSnapshot = inSnapshot
        self.measuredKw = measuredKw
        self.setpointKw = setpointKw
        self.available = available
        self.dataAgeS = dataAgeS
        self.isOn = isOn ?? (setpointKw > 0)
        self.stateForS = stateForS
    }
}

/// Measurements at one instant. Arrays are parallel to `plant.devices` and `plant.nodes`.
public struct Snapshot: Sendable {
    public var devices: [DeviceState]
    /// Metered node power, where a meter exists. Load the meter sees that the devices below it
    /// do not explain is held as uncontrollable load at that node.
    public var nodeMeasuredKw: [Double?]
    /// Uncontrollable load declared at each node (auxiliary loads, house load...).
    public var uncontrolledKw: [Double]
    /// Strike-price state carried from the previous tick.
    public var miningCurtailed: Bool
    public var miningCurtailedForS: Double
    /// Inference headroom the safety governor lends at each node (kW, parallel to `plant.nodes`):
    /// power inference containers are told but do not draw, that mining under the node could be shed
    /// to cover. The broker plans on `cap + credit` there. nil: none.
    public var headroomCreditKw: [Double]?

    public init(
        devices: [DeviceState], nodeMeasuredKw: [Double?], uncontrolledKw: [Double], miningCurtailed: Bool = false,
        miningCurtailedForS: Double = .infinity, headroomCreditKw: [Double]? = nil
    ) {
        self.headroomCreditKw = headroomCreditKw
        self.devices = devices
        self.nodeMeasuredKw = nodeMeasuredKw
        self.uncontrolledKw = uncontrolledKw
        self.miningCurtailed = miningCurtailed
        self.miningCurtailedForS = miningCurtailedForS
    }
}

/// A cap on site import (root) active now: a demand-response event or a peak window.
public struct ImportCap: Sendable, Hashable {
    public var label: String
    public var capKw: Double
    public init(label: String, capKw: Double) {
        self.label = label
        self.capKw = capKw
    }
}

/// A $/MWh adder on energy active now (a peak-avoidance window priced rather than capped).
public struct PriceAdder: Sendable, Hashable {
    public var label: String
    public var usdPerMWh: Double
    public init(label: String, usdPerMWh: Double) {
        self.label = label
        self.usdPerMWh = usdPerMWh
    }
}

/// A demand-response event that pays for each MWh the site imports below a baseline.
public struct PaidReduction: Sendable, Hashable {
    public var label: String
    public var baselineKw: Double
    public var usdPerMWh: Double
    public init(label: String, baselineKw: Double, usdPerMWh: Double) {
        self.label = label
        self.baselineKw = baselineKw
        self.usdPerMWh = usdPerMWh
    }
}

/// A contract commitment on one device, active now.
public struct Commitment: Sendable, Hashable {
    public var contractID: String
    public var deviceID: String
    public var committedKw: Double
    /// What the contract pays per MWh delivered (the device's value while the contract runs).
    public var rateUsdPerMWh: Double
    /// What each MWh short of the commitment costs.
    public var penaltyUsdPerMWh: Double
    public init(contractID: String, deviceID: String, committedKw: Double, rateUsdPerMWh: Double, penaltyUsdPerMWh: Double) {
        self.contractID = contractID
        self.deviceID = deviceID
        self.committedKw = committedKw
        self.rateUsdPerMWh = rateUsdPerMWh
        self.penaltyUsdPerMWh = penaltyUsdPerMWh
    }
}

/// Mining strike price with hysteresis: once curtailed on price, mining stays off until the
/// price drops below `strike - hysteresis` and `minOffS` has elapsed.
public struct StrikePolicy: Sendable, Hashable {
    public var strikeUsdPerMWh: Double
    public var hysteresisUsdPerMWh: Double
    public var minOffS: Double
    public init(strikeUsdPerMWh: Double, hysteresisUsdPerMWh: Double = 0, minOffS: Double = 0) {
        self.strikeUsdPerMWh = strikeUsdPerMWh
        self.hysteresisUsdPerMWh = hysteresisUsdPerMWh
        self.minOffS = minOffS
    }
}

/// Why the strike rule holds mining off.
public enum StrikeHold: String, Sendable, Hashable {
    /// The price is at or above the strike.
    case atStrike = "at-strike"
    /// Curtailed before; the price is below the strike but not below strike − hysteresis.
    case hysteresis
    /// Curtailed before; the price is below strike − hysteresis, the strike's minimum off time not over.
    case minOffTime = "min-off-time"
}

/// The strike rule's state in one dispatch: mining is off, why, and how long at least it stays off.
public struct StrikeStatus: Sendable, Hashable {
    public var hold: StrikeHold
    /// The energy price the rule compared (with adders), $/MWh.
    public var priceUsdPerMWh: Double
    public var policy: StrikePolicy
    /// Seconds of the strike's minimum off time left, counted from the start of the curtailment (a
    /// curtailment that starts in this dispatch has all of it left). Mining restarts no earlier than
    /// this from now, and then only once the price is below strike − hysteresis.
    public var minOffLeftS: Double
    /// The broker's words, as in the mining devices' reasons ("curtailed: price 950 ≥ strike 180").
    public var reason: String

    public init(hold: StrikeHold, priceUsdPerMWh: Double, policy: StrikePolicy, minOffLeftS: Double, reason: String) {
        self.hold = hold
        self.priceUsdPerMWh = priceUsdPerMWh
        self.policy = policy
        self.minOffLeftS = minOffLeftS
        self.reason = reason
    }
}

/// A device held by its dwell time in one dispatch.
public struct DwellHold: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// Held on (at least at min-stable) until its minimum on time is over.
        case minOn = "min-on"
        /// Held off until its minimum off time is over.
        case minOff = "min-off"
    }
    /// Index into `plant.devices`.
    public var device: Int
    public var kind: Kind
    /// Seconds of the dwell left.
    public var leftS: Double

    public init(device: Int, kind: Kind, leftS: Double) {
        self.device = device
        self.kind = kind
        self.leftS = leftS
    }
}

/// Prices and events, already resolved to the dispatch instant.
public struct DispatchSignals: Sendable {
    public var energyPriceUsdPerMWh: Double
    /// Future prices, as (seconds from now, $/MWh), ascending. Used only to decide whether to
    /// start a device that would then be held on for its minimum on time.
    public var priceForecast: [(offsetS: Double, usdPerMWh: Double)]
    public var hashpriceUsdPerPHDay: Double?
    /// Wins over hashprice when set.
    public var miningValueUsdPerMWh: Double?
    public var inferenceSpotUsdPerMWh: Double?
    /// Used with each device's kW per GPU when no $/MWh spot value is given.
    public var inferenceSpotUsdPerGpuHour: Double?
    public var commitments: [Commitment]
    public var importCaps: [ImportCap]
    public var priceAdders: [PriceAdder]
    public var paidReduction: PaidReduction?
    public var strike: StrikePolicy?

    public init(
        energyPriceUsdPerMWh: Double, priceForecast: [(offsetS: Double, usdPerMWh: Double)] = [],
        hashpriceUsdPerPHDay: Double? = nil, miningValueUsdPerMWh: Double? = nil, inferenceSpotUsdPerMWh: Double? = nil,
        inferenceSpotUsdPerGpuHour: Double? = nil, commitments: [Commitment] = [], importCaps: [ImportCap] = [],
        priceAdders: [PriceAdder] = [], paidReduction: PaidReduction? = nil, strike: StrikePolicy? = nil
    ) {
        self.energyPriceUsdPerMWh = energyPriceUsdPerMWh
        self.priceForecast = priceForecast
        self.hashpriceUsdPerPHDay = hashpriceUsdPerPHDay
        self.miningValueUsdPerMWh = miningValueUsdPerMWh
        self.inferenceSpotUsdPerMWh = inferenceSpotUsdPerMWh
        self.inferenceSpotUsdPerGpuHour = inferenceSpotUsdPerGpuHour
        self.commitments = commitments
        self.importCaps = importCaps
        self.priceAdders = priceAdders
        self.paidReduction = paidReduction
        self.strike = strike
    }
}

/// Everything the Broker needs for one decision.
public struct DispatchProblem: Sendable {
    public var plant: Plant
    public var snapshot: Snapshot
    public var signals: DispatchSignals

    public init(plant: Plant, snapshot: Snapshot, signals: DispatchSignals) {
        self.plant = plant
        self.snapshot = snapshot
        self.signals = signals
    }
}

/// The objective in $/h. Costs are negative, so `total` is the plain sum of the parts.
public struct Objective: Sendable, Hashable {
    public var mining: Double
    public var inference: Double
    /// Energy cost of the whole site import (including uncontrollable load and adders), negative.
    public var energy: Double
    public var drCredit: Double
    /// Contract shortfall penalties, negative.
    public var penalty: Double
    public var total: Double { mining + inference + energy + drCredit + penalty }

    public init(mining: Double = 0, inference: Double = 0, energy: Double = 0, drCredit: Double = 0, penalty: Double = 0) {
        self.mining = mining
        self.inference = inference
        self.energy = energy
        self.drCredit = drCredit
        self.penalty = penalty
    }
}

/// The Broker's answer.
public struct DispatchPlan: Sendable {
    /// Parallel to `plant.devices`. For an unavailable device this is the draw held in the budget.
    public var setpointsKw: [Double]
    /// Whether each device was commanded (false for unavailable devices).
    public var commanded: [Bool]
    public var objective: Objective
    /// Constraints that bind, in words ("xfmr-2 cap 24.5 MW binding (load 24.5 MW)").
    public var binding: [String]
    public var feasible: Bool
    /// Why no feasible plan exists; `nil` when feasible.
    public var infeasibleReason: String?
    /// Planned load at each node (parallel to `plant.nodes`), including uncontrollable and auxiliary load.
    public var nodeLoadKw: [Double]
    /// Effective cap at each node (the root's includes import limit, DR and peak caps).
    public var nodeCapKw: [Double]
    /// Strike state to carry into the next tick's snapshot.
    public var miningCurtailed: Bool
    /// Value of each device in $/MWh as used (contract rate, spot, or hashprice-derived).
    public var valueUsdPerMWh: [Double]
    /// A proven upper bound ($/h) on the objective of any plan that keeps the rules: the
    /// relaxation with start blocks allowed in part, tightened by the exact search when it ran.
    /// With a price forecast the objective here charges each start block at its start price.
    public var boundUsdPerH: Double
    /// `boundUsdPerH` minus this plan's objective: how far below the optimum it can be, at most.
    /// Not an estimate: the optimum lies between the plan and the bound. NaN when infeasible.
    public var gapBoundUsdPerH: Double
    /// Whether the exact search (branch and bound) ran: sites up to `Broker.exactSearchMaxDevices`.
    public var exactSearch: Bool
    /// The exact search finished (proved its target gap) rather than stopping at its work budget.
    public var searchComplete: Bool
    /// The gap bound in words, for explain output.
    public var optimality: String
    /// Nodes the exact search evaluated (0 when it did not run).
    public var searchNodes: Int
    /// Mining off on price (the strike rule), as this dispatch found it; nil when the rule does not curtail.
    public var strike: StrikeStatus? = nil
    /// Devices this dispatch held by their dwell: on for their minimum on time, off for their minimum off time.
    public var dwell: [DwellHold] = []

    /// The gap bound as a fraction of the bound.
    public var gapBoundFraction: Double { gapBoundUsdPerH / max(1, abs(boundUsdPerH)) }

    let explainer: Explainer
    /// The large search's last state, released with the plan rather than mid-dispatch: at 10,000
    /// devices freeing it early let glibc trim the heap every dispatch and fault the pages back
    /// in (+40 % time).
    let kept: Kept?

    /// Why device `d` got its setpoint, in words: the binding constraint or the price comparison.
    public func reason(_ d: Int) -> String { explainer.reason(d, setpointsKw[d]) }

    /// Every device's reason, parallel to `setpointsKw`. Rendered on demand: the decision keeps the
    /// facts (which limit bound, which price comparison), and turning 10,000 of them into text
    /// costs more than the dispatch itself.
    public var reasons: [String] { setpointsKw.indices.map { reason($0) } }
}
