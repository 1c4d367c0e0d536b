// Broker benchmark: one dispatch for a 10,000-device site under a 4-level capacity tree
// (site -> transformers -> feeders -> PDUs -> devices), timed over many runs, then the same
// instance solved exactly by a MILP (Benchmarks/exact/milp_dispatch.py, scipy/HiGHS) for the
// time ratio and the optimality gap.
//
//   runBrokerBenchmark(arguments: ["--devices", "10000", "--iterations", "50",
//                                  "--scenario", "normal" | "restore", "--no-exact",
//                                  "--python", "python3", "--milp", "Benchmarks/exact/milp_dispatch.py"])

import Broker
import Foundation
import TestSupport

struct BrokerBenchOptions {
    var devices = 10_000
    var iterations = 50
    var scenario = "normal"
    var exact = true
    var python = "python3"
    var milp = "Benchmarks/exact/milp_dispatch.py"
    var seed: UInt64 = 42
    var timeLimit = 600.0

    init(_ args: [String]) throws {
        try parseBenchArgs(args) { flag, value in
            switch flag {
            case "--devices": devices = Int(try value()) ?? devices
            case "--iterations": iterations = max(1, Int(try value()) ?? iterations)
            case "--scenario": scenario = try value()
            case "--no-exact": exact = false
            case "--python": python = try value()
            case "--milp": milp = try value()
            case "--seed": seed = UInt64(try value()) ?? seed
            case "--time-limit": timeLimit = Double(try value()) ?? timeLimit
            default: return false
            }
            return true
        }
        guard ["normal", "restore"].contains(scenario) else { throw BenchError("scenario must be normal or restore") }
    }
}

/// Walks `--flag [value]` arguments: `handle` gets each flag and a function that takes its value, and returns
/// false for a flag it does not know (an error, as is a missing value).
func parseBenchArgs(_ args: [String], _ handle: (String, () throws -> String) throws -> Bool) throws {
    var i = 0
    while i < args.count {
        let flag = args[i]
        let value = { () throws -> String in
            i += 1
            guard i < args.count else { throw BenchError("\(flag) needs a value") }
            return args[i]
        }
        guard try handle(flag, value) else { throw BenchError("unknown argument '\(flag)'") }
        i += 1
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct BenchInstance {
    var problem: DispatchProblem
    var json: [String: Any]
}

func makeBenchInstance(_ o: BrokerBenchOptions) throws -> BenchInstance {
    var rng = SeededRandom(seed: o.seed)
    let xfmrs = 4
    let feeders = 10
    let pdus = 10
    let perPDU = max(1, o.devices / (xfmrs * feeders * pdus))
    var nodes = [NodeSpec(id: "site", parentID: nil, capKw: 0)]
    var devices: [DeviceSpec] = []
    var states: [DeviceState] = []
    var uncontrolled: [String: Double] = [:]
    var sub: [String: Double] = [:]
    var parentOf: [String: String] = [:]
    for x in 0..<xfmrs {
        let xid = "xfmr-\(x)"
        nodes.append(NodeSpec(id: xid, parentID: "site", capKw: 0))
        parentOf[xid] = "site"
        for f in 0..<feeders {
            let fid = "\(xid)-f\(f)"
            nodes.append(NodeSpec(id: fid, parentID: xid, capKw: 0))
            parentOf[fid] = xid
            for p in 0..<pdus {
                let pid = "\(fid)-p\(p)"
                nodes.append(NodeSpec(id: pid, parentID: fid, capKw: 0))
                parentOf[pid] = fid
                for k in 0..<perPDU where devices.count < o.devices {
                    let mining = rng.unit() < 0.7
                    let maxKw = (rng.range(60, 140) * 10).rounded() / 10
                    let ms = rng.unit() < 0.8 ? (maxKw * rng.range(0.25, 0.5) * 10).rounded() / 10 : 0
                    let id = "\(mining ? "asic" : "gpu")-\(x)-\(f)-\(p)-\(k)"
                    devices.append(
                        DeviceSpec(
                            id: id, deviceClass: mining ? .mining : .inference, nodeID: pid, maxKw: maxKw,
                            minStableKw: ms, rampKwPerS: rng.unit() < 0.5 ? rng.range(1, 10) : 0,
                            minOnS: rng.unit() < 0.5 ? 300 : 0, minOffS: rng.unit() < 0.5 ? 300 : 0,
                            efficiencyJPerTH: mining ? rng.range(15, 32) : nil, kwPerGpu: mining ? nil : rng.range(0.8, 1.3)))
                    let on = rng.unit() < 0.7
                    let sp = on ? (ms > 0 ? rng.range(ms, maxKw) : rng.range(1, maxKw)) : 0
                    states.append(
                        DeviceState(
                            measuredKw: sp, setpointKw: sp, available: true, dataAgeS: 1, isOn: on,
                            stateForS: rng.range(0, 900)))
                    var n: String? = pid
                    while let c = n {
                        sub[c, default: 0] += maxKw
                        n = parentOf[c]
                    }
                }
                if rng.unit() < 0.2 { uncontrolled[pid] = (rng.range(5, 40) * 10).rounded() / 10 }
            }
        }
    }
    for i in nodes.indices {
        nodes[i].capKw = ((sub[nodes[i].id] ?? 0) * rng.range(0.6, 1.05)).rounded()
    }
    let restore: Double? = o.scenario == "restore" ? ((sub["site"] ?? 0) * 0.02).rounded() : nil
    let plant = try Plant(
        nodes: nodes, devices: devices, importLimitKw: .infinity, safetyMarginKw: 0, tickSeconds: 10,
        restoreRateKwPerTick: restore, staleAfterS: 30)
    var sig = DispatchSignals(energyPriceUsdPerMWh: 95, hashpriceUsdPerPHDay: 52, inferenceSpotUsdPerGpuHour: 0.16)
    // A few inference contracts.
    var k = 0
    for d in devices where d.deviceClass == .inference {
        k += 1
        if k % 7 == 0 {
            sig.commitments.append(
                Commitment(
                    contractID: "c\(k)", deviceID: d.id, committedKw: (d.maxKw * 0.6).rounded(), rateUsdPerMWh: 180,
                    penaltyUsdPerMWh: 120))
        }
    }
    if o.scenario == "restore" {
        sig.importCaps = [ImportCap(label: "DR event bench", capKw: ((sub["site"] ?? 0) * 0.45).rounded())]
    }
    let snap = Snapshot(
        devices: states, nodeMeasuredKw: plant.nodes.map { _ in nil },
        uncontrolledKw: plant.nodes.map { uncontrolled[$0.id] ?? 0 })
    let problem = DispatchProblem(plant: plant, snapshot: snap, signals: sig)

    // The same instance for the MILP, in plain terms (milp_dispatch.py applies the rules itself).
    let json = rawInstanceJSON(problem, id: "bench-\(o.seed)")
    return BenchInstance(problem: problem, json: json)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let idx = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[idx]
}

func runBrokerBenchmark(arguments: [String]) throws {
    let o = try BrokerBenchOptions(arguments)
    let clock = ContinuousClock()
    let buildStart = clock.now
    let inst = try makeBenchInstance(o)
    let buildTime = clock.now - buildStart
    let plant = inst.problem.plant
    print("broker bench: \(plant.devices.count) devices, \(plant.nodes.count) nodes (4 levels), scenario \(o.scenario)")
    print("  instance + plant build: \(fmtMs(buildTime)) ms (once per site configuration, not per tick)")

    // Warm up, then time.
    var plan = Broker.dispatch(inst.problem)
    var times: [Double] = []
    for _ in 0..<o.iterations {
        let t0 = clock.now
        plan = Broker.dispatch(inst.problem)
        times.append(ms(clock.now - t0))
    }
    times.sort()
    let median = percentile(times, 0.5)
    print("  dispatch: median \(fmt3(median)) ms, p99 \(fmt3(percentile(times, 0.99))) ms, min \(fmt3(times[0])) ms over \(o.iterations) runs")
    let on = plan.setpointsKw.filter { $0 > 0 }.count
    print("  plan: feasible \(plan.feasible), \(on) devices running, \(fmt3(plan.setpointsKw.reduce(0, +) / 1000)) MW, objective \(fmt3(plan.objective.total)) $/h, \(plan.binding.count) binding constraints")
    print("  optimality: \(plan.optimality)")

    guard o.exact else { return }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-broker-bench-\(o.seed).json")
    let data = try JSONSerialization.data(withJSONObject: inst.json, options: [.sortedKeys])
    try data.write(to: url)
    let proc = Process()
    proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    proc.arguments = [o.python, o.milp, url.path, "--time-limit", String(o.timeLimit)]
    let pipe = Pipe()
    proc.standardOutput = pipe
    let t0 = clock.now
    try proc.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    proc.waitUntilExit()
    let exactWall = ms(clock.now - t0)
    try? FileManager.default.removeItem(at: url)
    guard proc.terminationStatus == 0,
        let obj = try JSONSerialization.jsonObject(with: out) as? [String: Any],
        let exactObjective = obj["objective_usd_per_h"] as? Double
    else {
        throw BenchError("the exact solver failed (exit \(proc.terminationStatus)): \(String(decoding: out, as: UTF8.self))")
    }
    let solveMs = (obj["solve_seconds"] as? Double ?? .nan) * 1000
    let status = obj["status"] as? String ?? "?"
    let gap = (exactObjective - plan.objective.total) / max(1, abs(exactObjective))
    print("  exact MILP (scipy/HiGHS): \(status), objective \(fmt3(exactObjective)) $/h, solve \(fmt3(solveMs)) ms, wall incl. python start \(fmt3(exactWall)) ms")
    print("  ratio exact solve / broker median: \(fmt1(solveMs / median))x; broker objective gap \(fmt3(gap * 100))%")
}

private func ms(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}
private func fmtMs(_ d: Duration) -> String { fmt3(ms(d)) }
private func fmt3(_ x: Double) -> String { String(format: "%.3f", x) }
private func fmt1(_ x: Double) -> String { String(format: "%.1f", x) }
