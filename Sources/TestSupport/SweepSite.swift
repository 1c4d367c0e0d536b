// The random sites of the Broker's exactness sweep and exact-search timing (`SwitchyardBench broker-sweep`,
// `broker-300`), and of the suite's regression tests that pin the hardest of them: one generator, so the
// suite's sites are the benchmark's, draw for draw. Every rule of docs/dispatch.md is in play; `knapsack`:
// tight 2–3 level trees, large min-stable blocks, values close together.

import Basics
import Broker

/// One generated site, as the parts a dispatch problem (or the suite's exact oracle) is made of.
public struct SweepSite: Sendable {
    public var nodes: [NodeSpec]
    public var devices: [DeviceSpec]
    public var states: [DeviceState]
    public var uncontrolled: [String: Double]
    public var measured: [String: Double]
    public var importLimit: Double
    public var margin: Double
    public var tick: Double
    public var restore: Double?
    public var signals: DispatchSignals
    public var miningCurtailed: Bool
    public var miningCurtailedFor: Double

    /// Site `c<classIndex>-<k>` of `broker-sweep --seed <seed>` (classes 2–9, 10–40, 100–300 are indices 0, 1, 2):
    /// every site before it in its class's stream is drawn too.
    public static func sweep(classIndex ci: Int, devices cls: ClosedRange<Int>, index k: Int, seed: UInt64 = 1) -> SweepSite {
        var rng = classStream(classIndex: ci, seed: seed)
        var out: SweepSite? = nil
        for i in 0...k {
            let n = sweepSize(&rng, cls)
            out = generate(&rng, devices: n, knapsack: i % 2 == 1)
        }
        return out!
    }

    /// The random stream of one size class of the sweep.
    public static func classStream(classIndex ci: Int, seed: UInt64) -> SeededRandom {
        SeededRandom(seed: seed &* 0x9E37_79B9 &+ UInt64(ci) &* 1_000_003)
    }

    /// The size of the next site of a class's stream.
    public static func sweepSize(_ rng: inout SeededRandom, _ cls: ClosedRange<Int>) -> Int {
        cls.lowerBound + Int(rng.next() % UInt64(cls.upperBound - cls.lowerBound + 1))
    }

    /// Site `t-<k>` of `broker-300 --devices <devices> --seed <seed>`.
    public static func exactTiming(index k: Int, devices: Int = 300, seed: UInt64 = 1) -> SweepSite {
        var rng = SeededRandom(seed: seed)
        var out: SweepSite? = nil
        for i in 0...k { out = generate(&rng, devices: devices, knapsack: i % 2 == 1) }
        return out!
    }

    /// The next site of `rng`'s stream.
    public static func generate(_ rng: inout SeededRandom, devices nDev: Int, knapsack: Bool) -> SweepSite {
    func chance(_ p: Double) -> Bool { rng.unit() < p }
    func int(_ a: Int, _ b: Int) -> Int { a + Int(rng.next() % UInt64(b - a + 1)) }
    var nodes = [NodeSpec(id: "site", parentID: nil, capKw: 0)]
    var leaves: [String] = []
    let scale = max(1, nDev / 40)
    let nx = knapsack ? int(2, 3 + scale) : int(1, 2 + scale)
    for t in 0..<nx {
        let xid = "xfmr-\(t)"
        nodes.append(NodeSpec(id: xid, parentID: "site", capKw: 0))
        let np = knapsack ? int(0, 2 + scale) : int(0, 1 + scale)
        if np == 0 { leaves.append(xid) }
        for q in 0..<np {
            let pid = "pdu-\(t)-\(q)"
            nodes.append(NodeSpec(id: pid, parentID: xid, capKw: 0))
            leaves.append(pid)
        }
    }
    var parentOf: [String: String] = [:]
    for n in nodes { if let p = n.parentID { parentOf[n.id] = p } }
    var devices: [DeviceSpec] = []
    var states: [DeviceState] = []
    var sumUnder: [String: Double] = [:]
    let tick = 10.0
    for i in 0..<nDev {
        let mining = chance(0.6)
        let leaf = leaves[int(0, leaves.count - 1)]
        let maxKw = rng.range(200, 1500).rounded()
        var ms = chance(0.7) ? (maxKw * rng.range(0.2, 0.6)).rounded() : 0
        if knapsack { ms = chance(0.85) ? (chance(0.3) ? maxKw : (maxKw * rng.range(0.5, 1.0)).rounded()) : 0 }
        let ramp = chance(0.5) ? rng.range(5, 100).rounded() : 0
        let id = (mining ? "asic-" : "gpu-") + String(i)
        let minOn = chance(0.5) ? 300.0 : 0
        let minOff = chance(0.5) ? 300.0 : 0
        let eff = mining ? (knapsack ? rng.range(18, 22) : rng.range(15, 35)) : nil
        let kwPerGpu = mining ? nil : (knapsack ? rng.range(0.9, 1.1) : rng.range(0.7, 1.4))
        devices.append(
            DeviceSpec(
                id: id, deviceClass: mining ? .mining : .inference, nodeID: leaf, maxKw: maxKw, minStableKw: ms,
                rampKwPerS: ramp, minOnS: minOn, minOffS: minOff, efficiencyJPerTH: eff, kwPerGpu: kwPerGpu))
        let on = chance(0.6)
        let sp = on ? (ms > 0 ? rng.range(ms, maxKw) : rng.range(1, maxKw)).rounded() : 0
        let available = !chance(knapsack ? 0.03 : 0.08)
        let age = chance(knapsack ? 0.03 : 0.08) ? rng.range(31, 120) : rng.range(0, 5)
        let measuredKw = chance(0.9) ? sp * rng.range(0.9, 1.02) : nil
        let stateFor = rng.range(0, 1000)
        states.append(
            DeviceState(
                measuredKw: measuredKw, setpointKw: sp, available: available, dataAgeS: age, isOn: on, stateForS: stateFor))
        var n: String? = leaf
        while let c = n {
            sumUnder[c, default: 0] += maxKw
            n = parentOf[c]
        }
    }
    var uncontrolled: [String: Double] = [:]
    for n in nodes where chance(knapsack ? 0.15 : 0.3) { uncontrolled[n.id] = rng.range(0, knapsack ? 100 : 300).rounded() }
    for i in nodes.indices {
        let sum = sumUnder[nodes[i].id] ?? 0
        nodes[i].capKw = (sum * (knapsack ? rng.range(0.3, 0.75) : rng.range(0.3, 1.2)) + 300).rounded()
    }
    if chance(0.3) { nodes[0].auxFraction = rng.range(0.03, 0.2) }
    var measured: [String: Double] = [:]
    if chance(0.3) {
        let explained = states.reduce(0) { $0 + ($1.measuredKw ?? 0) } + uncontrolled.values.reduce(0, +)
        measured["site"] = explained + rng.range(0, 200)
    }
    var sig = DispatchSignals(energyPriceUsdPerMWh: (knapsack ? rng.range(-10, 80) : rng.range(-20, 300)).rounded())
    sig.hashpriceUsdPerPHDay = knapsack ? 50 : rng.range(30, 80)
    if knapsack {
        sig.inferenceSpotUsdPerGpuHour = 0.11
    } else if chance(0.5) {
        sig.inferenceSpotUsdPerMWh = rng.range(40, 260)
    } else {
        sig.inferenceSpotUsdPerGpuHour = rng.range(0.05, 0.3)
    }
    for d in devices where d.deviceClass == .inference && chance(0.2) {
        sig.commitments.append(
            Commitment(
                contractID: "c-\(d.id)", deviceID: d.id, committedKw: (d.maxKw * rng.range(0.3, 1.0)).rounded(),
                rateUsdPerMWh: rng.range(100, 300), penaltyUsdPerMWh: rng.range(50, 500)))
    }
    let total = sumUnder["site"] ?? 0
    if chance(knapsack ? 0.15 : 0.2) { sig.importCaps.append(ImportCap(label: "DR event dr-x", capKw: (total * rng.range(0.1, 0.9)).rounded())) }
    if chance(0.1) { sig.priceAdders.append(PriceAdder(label: "4CP", usdPerMWh: rng.range(20, 300))) }
    if chance(knapsack ? 0.1 : 0.15) {
        sig.paidReduction = PaidReduction(label: "DR event dr-p", baselineKw: (total * rng.range(0.2, 1.0)).rounded(), usdPerMWh: rng.range(50, 500))
    }
    if chance(0.2) { sig.strike = StrikePolicy(strikeUsdPerMWh: rng.range(50, 250), hysteresisUsdPerMWh: rng.range(0, 40), minOffS: 600) }
    if chance(0.15) { sig.priceForecast = [(300, rng.range(-20, 300)), (900, rng.range(-20, 300))] }
    let importLimit = chance(0.3) ? (total * rng.range(0.3, 1.0)).rounded() + 500 : Double.infinity
    let margin = chance(0.3) ? 100.0 : 0
    let restore: Double? = chance(knapsack ? 0.25 : 0.3) ? rng.range(100, 2000 * Double(scale)).rounded() : nil
    let curtailed = chance(0.3)
    let curtailedFor = rng.range(0, 1200)
        return SweepSite(
            nodes: nodes, devices: devices, states: states, uncontrolled: uncontrolled, measured: measured, importLimit: importLimit,
            margin: margin, tick: tick, restore: restore, signals: sig, miningCurtailed: curtailed, miningCurtailedFor: curtailedFor)
    }

    /// The site as the Broker's problem.
    public func problem() throws -> DispatchProblem {
        let plant = try Plant(nodes: nodes, devices: devices, importLimitKw: importLimit, safetyMarginKw: margin, tickSeconds: tick,
                              restoreRateKwPerTick: restore, staleAfterS: 30)
        let snap = Snapshot(
            devices: states, nodeMeasuredKw: plant.nodes.map { measured[$0.id] }, uncontrolledKw: plant.nodes.map { uncontrolled[$0.id] ?? 0 },
            miningCurtailed: miningCurtailed, miningCurtailedForS: miningCurtailedFor)
        return DispatchProblem(plant: plant, snapshot: snap, signals: signals)
    }
}
