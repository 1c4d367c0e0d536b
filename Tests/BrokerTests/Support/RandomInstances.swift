import Broker
import TestSupport

/// Random dispatch problems for property tests and the exact-solver comparison.
struct InstanceOptions {
    var devices: ClosedRange<Int> = 2...7
    var restore = 0.3
    var dr = 0.2
    var paidReduction = 0.15
    var adder = 0.1
    var strike = 0.2
    var contracts = 0.2
    var unavailable = 0.08
    var stale = 0.08
    var aux = 0.3
    var minStable = 0.7
    var forecast = 0.0
    /// Knapsack-like: tight caps on 2–3 level trees, large min-stable blocks (half of max or more,
    /// often all of it) and values close together, where greedy by value fails most.
    var knapsack = false

    /// 10–40 devices, knapsack-like, every feature at moderate rates.
    static let knapsack = InstanceOptions(
        devices: 10...40, restore: 0.25, dr: 0.15, paidReduction: 0.1, unavailable: 0.03, stale: 0.03, forecast: 0.15, knapsack: true)
}

struct Instance {
    var nodes: [NodeSpec]
    var devices: [DeviceSpec]
    var states: [DeviceState]
    var uncontrolled: [String: Double]
    var measured: [String: Double]
    var importLimit: Double
    var margin: Double
    var tick: Double
    var restore: Double?
    var staleAfter: Double
    var signals: DispatchSignals
    var miningCurtailed: Bool
    var miningCurtailedFor: Double

    func problem(deviceOrder: [Int]? = nil) -> DispatchProblem {
        let order = deviceOrder ?? Array(devices.indices)
        let plant = try! Plant(
            nodes: nodes, devices: order.map { devices[$0] }, importLimitKw: importLimit, safetyMarginKw: margin,
            tickSeconds: tick, restoreRateKwPerTick: restore, staleAfterS: staleAfter)
        let snap = Snapshot(
            devices: order.map { states[$0] },
            nodeMeasuredKw: plant.nodes.map { measured[$0.id] },
            uncontrolledKw: plant.nodes.map { uncontrolled[$0.id] ?? 0 },
            miningCurtailed: miningCurtailed, miningCurtailedForS: miningCurtailedFor)
        return DispatchProblem(plant: plant, snapshot: snap, signals: signals)
    }

    static func random(_ rng: inout SeededRandom, _ o: InstanceOptions = InstanceOptions()) -> Instance {
        let nDev = rng.int(o.devices.lowerBound, o.devices.upperBound)
        // Tree: root -> 1..3 transformers -> 0..2 PDUs each (up to 3 levels of caps above devices).
        var nodes = [NodeSpec(id: "site", parentID: nil, capKw: 0)]
        var leaves: [String] = ["site"]
        let nx = o.knapsack ? rng.int(2, 4) : rng.int(1, 3)
        leaves = []
        for t in 0..<nx {
            let xid = "xfmr-\(t)"
            nodes.append(NodeSpec(id: xid, parentID: "site", capKw: 0))
            let np = o.knapsack ? rng.int(0, 3) : rng.int(0, 2)
            if np == 0 { leaves.append(xid) }
            for q in 0..<np {
                let pid = "pdu-\(t)-\(q)"
                nodes.append(NodeSpec(id: pid, parentID: xid, capKw: 0))
                leaves.append(pid)
            }
        }
        var devices: [DeviceSpec] = []
        var states: [DeviceState] = []
        var sumUnder: [String: Double] = [:]
        let tick = 10.0
        for i in 0..<nDev {
            let mining = rng.chance(0.6)
            let leaf = leaves[rng.int(0, leaves.count - 1)]
            let maxKw = (rng.range(200, 1500)).rounded()
            var ms = rng.chance(o.minStable) ? (maxKw * rng.range(0.2, 0.6)).rounded() : 0
            if o.knapsack { ms = rng.chance(0.85) ? (rng.chance(0.3) ? maxKw : (maxKw * rng.range(0.5, 1.0)).rounded()) : 0 }
            let ramp = rng.chance(0.5) ? rng.range(5, 100).rounded() : 0
            let minOn = rng.chance(0.5) ? 300.0 : 0
            let minOff = rng.chance(0.5) ? 300.0 : 0
            let id = (mining ? "asic-" : "gpu-") + String(i)
            devices.append(
                DeviceSpec(
                    id: id, deviceClass: mining ? .mining : .inference, nodeID: leaf, maxKw: maxKw, minStableKw: ms,
                    rampKwPerS: ramp, minOnS: minOn, minOffS: minOff,
                    efficiencyJPerTH: mining ? (o.knapsack ? rng.range(18, 22) : rng.range(15, 35)) : nil,
                    kwPerGpu: mining ? nil : (o.knapsack ? rng.range(0.9, 1.1) : rng.range(0.7, 1.4))))
            let on = rng.chance(0.6)
            let sp = on ? (ms > 0 ? rng.range(ms, maxKw) : rng.range(1, maxKw)).rounded() : 0
            let available = !rng.chance(o.unavailable)
            let age = rng.chance(o.stale) ? rng.range(31, 120) : rng.range(0, 5)
            states.append(
                DeviceState(
                    measuredKw: rng.chance(0.9) ? sp * rng.range(0.9, 1.02) : nil, setpointKw: sp, available: available,
                    dataAgeS: age, isOn: on, stateForS: rng.range(0, 1000)))
            var n: String? = leaf
            while let cur = n {
                sumUnder[cur, default: 0] += maxKw
                n = nodes.first { $0.id == cur }!.parentID
            }
        }
        var uncontrolled: [String: Double] = [:]
        for n in nodes where rng.chance(o.knapsack ? 0.15 : 0.3) { uncontrolled[n.id] = rng.range(0, o.knapsack ? 100 : 300).rounded() }
        for i in nodes.indices {
            let sum = sumUnder[nodes[i].id] ?? 0
            nodes[i].capKw = o.knapsack ? (sum * rng.range(0.3, 0.75) + 300).rounded() : (sum * rng.range(0.3, 1.2) + 300).rounded()
        }
        if rng.chance(o.aux) { nodes[0].auxFraction = rng.range(0.03, 0.2) }
        var measured: [String: Double] = [:]
        if rng.chance(0.3) {
            // A meter that sees a bit more than the devices explain.
            let explained = states.reduce(0) { $0 + ($1.measuredKw ?? 0) } + uncontrolled.values.reduce(0, +)
            measured["site"] = explained + rng.range(0, 200)
        }
        var sig = DispatchSignals(energyPriceUsdPerMWh: (o.knapsack ? rng.range(-10, 80) : rng.range(-20, 300)).rounded())
        sig.hashpriceUsdPerPHDay = o.knapsack ? 50 : rng.range(30, 80)
        if o.knapsack {
            sig.inferenceSpotUsdPerGpuHour = 0.11
        } else if rng.chance(0.5) {
            sig.inferenceSpotUsdPerMWh = rng.range(40, 260)
        } else {
            sig.inferenceSpotUsdPerGpuHour = rng.range(0.05, 0.3)
        }
        for d in devices where d.deviceClass == .inference && rng.chance(o.contracts) {
            sig.commitments.append(
                Commitment(
                    contractID: "c-\(d.id)", deviceID: d.id, committedKw: (d.maxKw * rng.range(0.3, 1.0)).rounded(),
                    rateUsdPerMWh: rng.range(100, 300), penaltyUsdPerMWh: rng.range(50, 500)))
        }
        let total = sumUnder["site"] ?? 0
        if rng.chance(o.dr) {
            sig.importCaps.append(ImportCap(label: "DR event dr-x", capKw: (total * rng.range(0.1, 0.9)).rounded()))
        }
        if rng.chance(o.adder) { sig.priceAdders.append(PriceAdder(label: "4CP", usdPerMWh: rng.range(20, 300))) }
        if rng.chance(o.paidReduction) {
            sig.paidReduction = PaidReduction(
                label: "DR event dr-p", baselineKw: (total * rng.range(0.2, 1.0)).rounded(), usdPerMWh: rng.range(50, 500))
        }
        if rng.chance(o.strike) {
            sig.strike = StrikePolicy(strikeUsdPerMWh: rng.range(50, 250), hysteresisUsdPerMWh: rng.range(0, 40), minOffS: 600)
        }
        if rng.chance(o.forecast) {
            sig.priceForecast = [(300, rng.range(-20, 300)), (900, rng.range(-20, 300))]
        }
        return Instance(
            nodes: nodes, devices: devices, states: states, uncontrolled: uncontrolled, measured: measured,
            importLimit: rng.chance(0.3) ? (total * rng.range(0.3, 1.0)).rounded() + 500 : .infinity,
            margin: rng.chance(0.3) ? 100 : 0, tick: tick,
            restore: rng.chance(o.restore) ? rng.range(100, 2000).rounded() : nil, staleAfter: 30,
            signals: sig, miningCurtailed: rng.chance(0.3), miningCurtailedFor: rng.range(0, 1200))
    }
}
