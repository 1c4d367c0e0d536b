// Pure dispatch: how many kW each container gets this tick.
//
// The method (see docs/dispatch.md for the long form):
//  1. Per device, turn limits, dwell, ramp, stale data and the strike rule into an allowed range
//     and an on/off status: pinned (unavailable), forced on (inside min-on dwell), forced off,
//     or free.
//  2. Split each device's allowed range into pieces of constant value in $/MWh (contract
//     commitment at rate + penalty, the rest at spot or hashprice value), net of the energy price
//     times the kW of site import each device kW causes (auxiliary load such as cooling included).
//     A free device with a min-stable power has a start block [0, min-stable]: all or nothing.
//  3. Relaxing the start blocks (they may be taken in part) leaves greedy by value under the
//     laminar caps, which is exact (the caps form a polymatroid); a Lagrange multiplier handles the
//     site restore rate. That relaxation bounds every plan from above.
//  4. Up to `exactSearchMaxDevices` devices: branch and bound over the start blocks (Search.swift),
//     bounded by the relaxation, until the plan is proven within `exactTargetGap` of the optimum or
//     the work budget is spent. Larger sites: greedy plus a budgeted local search over whole blocks.
//  5. A paid-reduction DR event makes the energy cost concave; both sides of the baseline are
//     solved and the better plan kept.
//  6. Every plan reports the gap its bound proves (bound minus plan), and reasons derived from the
//     plan itself (Explain.swift): which cap is full, which comparison of value and price decided.
// Ties are broken by device id, so the same problem always gives the same plan.
//
// Files: Broker.swift (the public entry point and the engine's state), Prepare.swift, Objective.swift,
// Run.swift, Greedy.swift, Improve.swift, Search.swift (the exact search), Output.swift, Explain.swift
// (reasons), PassWork.swift (the greedy pass's buffers), Model.swift (the public types), Format.swift (number formats).


public enum Broker {
    /// Sites with at most this many devices get the exact search.
    public static let exactSearchMaxDevices = 300
    /// The exact search stops when the best plan is proven within this fraction of the optimum.
    public static let exactTargetGap = 1e-7
    /// Work budget of the exact search, in item visits (each walks one device's path in the tree):
    /// about 10 ms on the benchmark machine.
    public static let exactWorkBudget = 1_000_000

    /// One-shot dispatch. Pure and deterministic.
    public static func dispatch(_ problem: DispatchProblem) -> DispatchPlan {
        var engine = Engine(problem)
        return engine.run()
    }

    /// Mining value in $/MWh from hashprice ($/PH/day) and efficiency (J/TH): 1 PH/s at e J/TH
    /// draws e kW, so a day of 1 PH/s takes 0.024·e MWh and earns the hashprice.
    public static func miningValue(hashpriceUsdPerPHDay: Double, efficiencyJPerTH: Double) -> Double {
        hashpriceUsdPerPHDay / (0.024 * efficiencyJPerTH)
    }

    /// The objective of given setpoints (same accounting as the plan's breakdown). Setpoints are
    /// parallel to `plant.devices`; unavailable devices should carry their held draw.
    public static func evaluate(_ problem: DispatchProblem, setpointsKw: [Double]) -> Objective {
        let engine = Engine(problem)
        return engine.objective(setpointsKw)
    }
}

enum Status: UInt8, Sendable {
    case pinned, forcedOn, forcedOff, free
}

enum OffWhy: UInt8, Sendable {
    case none
    case minOff
    case strike
    case stale
    case cannotReachMinStable
}

/// One side of a paid-reduction baseline (or the only regime without one).
struct Regime: Sendable {
    /// Energy price with adders, plus the DR payment forgone per MWh in the below-baseline regime.
    var price: Double
    var rootCap: Double
    /// True in the below-baseline regime of a paid reduction.
    var below = false
    /// The DR payment per MWh in the below-baseline regime (0 otherwise).
    var extra = 0.0
    /// $/h the regime adds whatever the plan: the payment on the whole baseline when below it.
    var constant = 0.0
}

enum StrikeState: UInt8, Sendable {
    case none
    /// Price at or above the strike.
    case atStrike
    /// Curtailed before, price below the strike but not below strike − hysteresis.
    case hysteresis
    /// Curtailed before, price below strike − hysteresis, minimum off time not over.
    case minOff
}

struct PassState: Sendable {
    var x: [Double]
    var residual: [Double]
    var restoreLeft: Double
    var restoreUsed: Double
    var admitted: [Bool]
    var saturated: [Bool]
    /// -1 none, >= 0 node index, -2 restore rate.
    var rejectedBy: [Int32]
    var limitedBy: [Int32]
    var nodeHits: [Int32]
    var restoreHit: Bool
    var total: Double
}

struct Items: Sendable {
    var device: [Int32] = []
    var a: [Double] = []
    var b: [Double] = []
    var key: [Double] = []
    /// Whether this item starts at 0 with a min-stable block that must fit whole.
    var first: [Bool] = []
    /// Per device, its items are start[d]..<end[d] (contiguous, in increasing kW).
    var start: [Int] = []
    var end: [Int] = []
    var order: [Int32] = []
    // The positive items again, in processing order (sequential reads in the hot loop).
    var sortedDev: [Int32] = []
    var sortedB: [Double] = []
    var sortedFirst: [Bool] = []
}

struct Engine: Sendable {
    let plant: Plant
    let snap: Snapshot
    let sig: DispatchSignals
    let nD: Int
    let nN: Int
    let eps = 1e-7

    var price = 0.0
    var value: [Double] = []
    var commitKw: [Double] = []
    var rate: [Double] = []
    var pen: [Double] = []
    var contractLabel: [String?] = []
    var spotOverContract: [Bool] = []
    var rampBase: [Double] = []
    var lo: [Double] = []
    var hi: [Double] = []
    var minStable: [Double] = []
    var status: [Status] = []
    var offWhy: [OffWhy] = []
    var startPrice: [Double] = []
    var held: [Double] = []
    var stale: [Bool] = []
    var rampLimited: [Bool] = []
    var fixedSub: [Double] = []
    var effCap: [Double] = []
    var rootCapLabel = ""
    /// Inference headroom lent at each node (kW; `Snapshot.headroomCreditKw`), empty when none.
    var headroomLent: [Double] = []
    var curtailNow = false
    var restoreRate = Double.infinity
    var strikeState = StrikeState.none
    /// Some device's start block is charged above the price now (the forecast start rule).
    var anyStartSurcharge = false
    var devConst: [DevConst] = []

    init(_ p: DispatchProblem) {
        plant = p.plant
        snap = p.snapshot
        sig = p.signals
        nD = plant.devices.count
        nN = plant.nodes.count
        prepare()
    }
}
