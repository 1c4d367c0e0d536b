// Broker exactness sweep and exact-search timing, against an independent exact MILP
// (Benchmarks/exact/milp_dispatch.py, scipy/HiGHS).
//
//   SwitchyardBench broker-sweep [--per-class 2000] [--classes 2-9,10-40,100-300] [--seed 1]
//                                [--time-limit 60] [--keep FILE.jsonl]
//                                [--ids c2-17,c2-301] [--incomplete-only] [--from-class 2]
//     Random sites per size class (every rule of docs/dispatch.md in play; half of them
//     knapsack-like: tight 2–3 level trees, large min-stable blocks, values close together).
//     Each is dispatched by the Broker, then solved by the MILP, which also checks the Broker's
//     plan against the rules and prices it by its own accounting. Prints, per class, how many
//     plans are more than 0.1 % below the optimum, the worst gap, and the worst gap the Broker
//     itself proved (its bound minus its plan).
//     --ids: only those instances (the others are generated, to keep the stream, but not run);
//     --incomplete-only: only searches stopped at their work budget go to the MILP (the only
//     ones that can miss the optimum: a complete search proves its plan); --from-class k: skip
//     the classes before the k-th (0-based; each class keeps its own stream).
//
//   SwitchyardBench broker-300 [--instances 200] [--devices 300] [--runs 5] [--seed 1] [--no-exact]
//     Dispatch time with the exact search: each instance dispatched `runs` times (median kept),
//     p50 / p99 / max over the instances; then the MILP's solve time on the same instances.

import Broker
import Foundation
import TestSupport

/// A dispatch problem in plain terms for milp_dispatch.py (which applies the rules itself).
func rawInstanceJSON(_ p: DispatchProblem, id: String) -> [String: Any] {
    let plant = p.plant
    let snap = p.snapshot
    let sig = p.signals
    func num(_ x: Double?) -> Any { x.map { $0.isFinite ? $0 as Any : NSNull() } ?? NSNull() }
    var s: [String: Any] = [
        "price_usd_per_mwh": sig.energyPriceUsdPerMWh,
        "adders_usd_per_mwh": sig.priceAdders.map(\.usdPerMWh),
        "forecast": sig.priceForecast.map { [$0.offsetS, $0.usdPerMWh] },
        "hashprice_usd_per_ph_day": num(sig.hashpriceUsdPerPHDay),
        "mining_value_usd_per_mwh": num(sig.miningValueUsdPerMWh),
        "inference_usd_per_mwh": num(sig.inferenceSpotUsdPerMWh),
        "inference_usd_per_gpu_hour": num(sig.inferenceSpotUsdPerGpuHour),
        "import_caps_kw": sig.importCaps.map(\.capKw),
        "commitments": sig.commitments.map {
            [
                "device": plant.deviceIndex($0.deviceID)!, "committed_kw": $0.committedKw, "rate_usd_per_mwh": $0.rateUsdPerMWh,
                "penalty_usd_per_mwh": $0.penaltyUsdPerMWh,
            ] as [String: Any]
        },
    ]
    if let pr = sig.paidReduction { s["paid_reduction"] = ["baseline_kw": pr.baselineKw, "usd_per_mwh": pr.usdPerMWh] }
    if let st = sig.strike {
        s["strike"] = ["strike_usd_per_mwh": st.strikeUsdPerMWh, "hysteresis_usd_per_mwh": st.hysteresisUsdPerMWh, "min_off_s": st.minOffS]
    }
    return [
        "id": id,
        "tick_s": plant.tickSeconds,
        "margin_kw": plant.safetyMarginKw,
        "import_limit_kw": num(plant.importLimitKw),
        "restore_kw_per_tick": num(plant.restoreRateKwPerTick),
        "stale_after_s": num(plant.staleAfterS),
        "mining_curtailed": snap.miningCurtailed,
        "mining_curtailed_for_s": num(snap.miningCurtailedForS),
        "nodes": plant.nodes.enumerated().map { i, n in
            [
                "id": n.id, "parent": plant.parentIndex(ofNode: i), "cap_kw": n.capKw, "aux_fraction": n.auxFraction,
                "uncontrolled_kw": snap.uncontrolledKw[i], "measured_kw": num(snap.nodeMeasuredKw[i]),
            ] as [String: Any]
        },
        "devices": plant.devices.enumerated().map { d, spec in
            let st = snap.devices[d]
            return [
                "id": spec.id, "class": spec.deviceClass.rawValue, "node": plant.nodeIndex(ofDevice: d), "max_kw": spec.maxKw,
                "min_stable_kw": spec.minStableKw, "ramp_kw_per_s": spec.rampKwPerS, "min_on_s": spec.minOnS,
                "min_off_s": spec.minOffS, "efficiency_j_per_th": spec.efficiencyJPerTH ?? 0, "kw_per_gpu": spec.kwPerGpu ?? 0,
                "value_usd_per_mwh": num(spec.valueUsdPerMWh),
                "state": [
                    "measured_kw": num(st.measuredKw), "setpoint_kw": st.setpointKw, "available": st.available, "age_s": num(st.dataAgeS),
                    "on": st.isOn, "state_for_s": num(st.stateForS),
                ] as [String: Any],
            ] as [String: Any]
        },
        "signals": s,
    ]
}

/// The next random site of `rng`'s stream as the Broker's problem (TestSupport's `SweepSite`, which the suite's
/// regression tests draw from too).
func sweepInstance(_ rng: inout SeededRandom, devices nDev: Int, knapsack: Bool) -> DispatchProblem {
    try! SweepSite.generate(&rng, devices: nDev, knapsack: knapsack).problem()
}

struct SweepOptions {
    var perClass = 2000
    var classes: [ClosedRange<Int>] = [2...9, 10...40, 100...300]
    var seed: UInt64 = 1
    var timeLimit = 60.0
    var keep: String? = nil
    var python = "python3"
    var milp = "Benchmarks/exact/milp_dispatch.py"
    // broker-300
    var instances = 200
    var devices = 300
    var runs = 5
    var exact = true
    var only: Int? = nil
    var ids: Set<String>? = nil
    var incompleteOnly = false
    var fromClass = 0

    init(_ args: [String]) throws {
        try parseBenchArgs(args) { flag, value in
            switch flag {
            case "--per-class": perClass = Int(try value()) ?? perClass
            case "--classes":
                classes = try value().split(separator: ",").map { part in
                    let ab = part.split(separator: "-").compactMap { Int($0) }
                    guard ab.count == 2, ab[0] <= ab[1] else { throw BenchError("a class is like 10-40") }
                    return ab[0]...ab[1]
                }
            case "--seed": seed = UInt64(try value()) ?? seed
            case "--time-limit": timeLimit = Double(try value()) ?? timeLimit
            case "--keep": keep = try value()
            case "--python": python = try value()
            case "--milp": milp = try value()
            case "--instances": instances = Int(try value()) ?? instances
            case "--devices": devices = Int(try value()) ?? devices
            case "--runs": runs = max(1, Int(try value()) ?? runs)
            case "--no-exact": exact = false
            case "--only": only = Int(try value())
            case "--ids": ids = Set(try value().split(separator: ",").map(String.init))
            case "--incomplete-only": incompleteOnly = true
            case "--from-class": fromClass = Int(try value()) ?? 0
            default: return false
            }
            return true
        }
    }
}

/// Runs milp_dispatch.py --batch over `lines` (JSON objects), returns its result lines by id.
func runMILPBatch(_ lines: [[String: Any]], _ o: SweepOptions, tag: String) throws -> [String: [String: Any]] {
    let url = o.keep.map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(tag)-\(o.seed).jsonl")
    var data = Data()
    for l in lines {
        data.append(try JSONSerialization.data(withJSONObject: l, options: [.sortedKeys]))
        data.append(0x0A)
    }
    try data.write(to: url)
    let proc = Process()
    proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    proc.arguments = [o.python, o.milp, "--batch", url.path, "--time-limit", String(o.timeLimit)]
    let pipe = Pipe()
    proc.standardOutput = pipe
    try proc.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    proc.waitUntilExit()
    if o.keep == nil { try? FileManager.default.removeItem(at: url) }
    guard proc.terminationStatus == 0 else { throw BenchError("milp_dispatch.py failed (exit \(proc.terminationStatus))") }
    var results: [String: [String: Any]] = [:]
    for line in out.split(separator: 0x0A) {
        // HiGHS sometimes writes a line of its own to stdout: only JSON lines are results.
        guard line.first == UInt8(ascii: "{"), let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            let id = obj["id"] as? String
        else { continue }
        results[id] = obj
    }
    return results
}

func runBrokerSweep(arguments: [String]) throws {
    let o = try SweepOptions(arguments)
    let clock = ContinuousClock()
    print("broker sweep: \(o.perClass) instances per class, classes \(o.classes.map { "\($0.lowerBound)–\($0.upperBound)" }.joined(separator: ", ")), seed \(o.seed)")
    print("| size | instances | feasible (both) | > 0.1 % below the optimum | worst gap | worst proven gap (Broker's bound) | incomplete searches | plan rule violations | feasibility disagreements | Broker p50 / p99 / max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (ci, cls) in o.classes.enumerated() where ci >= o.fromClass {
        var rng = SweepSite.classStream(classIndex: ci, seed: o.seed)
        var lines: [[String: Any]] = []
        var provenGap: [String: Double] = [:]
        var complete: [String: Bool] = [:]
        var brokerFeasible: [String: Bool] = [:]
        var about: [String: String] = [:]
        var times: [Double] = []
        for k in 0..<o.perClass {
            let n = SweepSite.sweepSize(&rng, cls)
            let p = sweepInstance(&rng, devices: n, knapsack: k % 2 == 1)
            let id = "c\(ci)-\(k)"
            if let ids = o.ids, !ids.contains(id) { continue }
            if let only = o.only {
                // One instance, timed, with its MILP.
                guard k == only else { continue }
                let t0 = clock.now
                let plan = Broker.dispatch(p)
                print("\(id): \(clock.now - t0), \(plan.optimality), nodes \(plan.searchNodes)")
                var line = rawInstanceJSON(p, id: id)
                var sp: [String: Double] = [:]
                for (i, dv) in p.plant.devices.enumerated() { sp[dv.id] = plan.setpointsKw[i] }
                line["broker_setpoints_kw"] = sp
                line["broker_feasible"] = plan.feasible
                if o.exact, let r = try runMILPBatch([line], o, tag: "only")[id] {
                    print("  MILP \(r["objective_usd_per_h"] ?? "-"), Broker \(r["broker_objective_usd_per_h"] ?? "-"), gap \(r["gap"] ?? "-")")
                }
                return
            }
            let t0 = clock.now
            let plan = Broker.dispatch(p)
            let d = clock.now - t0
            times.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
            var line = rawInstanceJSON(p, id: id)
            line["broker_feasible"] = plan.feasible
            if plan.feasible {
                var sp: [String: Double] = [:]
                for (i, dv) in p.plant.devices.enumerated() { sp[dv.id] = plan.setpointsKw[i] }
                line["broker_setpoints_kw"] = sp
                provenGap[id] = plan.gapBoundFraction
                complete[id] = plan.searchComplete || !plan.exactSearch
            } else {
                line["broker_setpoints_kw"] = [String: Double]()
            }
            brokerFeasible[id] = plan.feasible
            about[id] =
                "\(n) devices\(k % 2 == 1 ? ", knapsack-like" : "")\(p.plant.restoreRateKwPerTick != nil ? ", restore rate" : "")\(p.signals.paidReduction != nil ? ", paid DR" : "")\(p.signals.priceForecast.isEmpty ? "" : ", forecast"); \(plan.optimality)"
            if o.incompleteOnly && plan.feasible && (plan.searchComplete || !plan.exactSearch) { continue }
            if o.ids != nil {
                print("  \(id): \(String(format: "%.3f", times.last!)) ms, proven gap \(String(format: "%.4f", plan.gapBoundFraction * 100)) %, nodes \(plan.searchNodes), \(about[id] ?? "")")
            }
            lines.append(line)
        }
        if lines.isEmpty { continue }
        let results = try runMILPBatch(lines, o, tag: "sweep-\(ci)")
        var feasibleBoth = 0
        var over = 0
        var worst = 0.0
        var worstID = ""
        var worstProven = 0.0
        var violations = 0
        var disagreements = 0
        var incomplete = 0
        for (id, r) in results {
            let milpFeasible = r["objective_usd_per_h"] != nil
            let bf = brokerFeasible[id] ?? false
            if milpFeasible != bf {
                disagreements += 1
                print("  feasibility disagreement on \(id): MILP \(milpFeasible), Broker \(bf) (\(r["status"] ?? "?"))")
                continue
            }
            guard bf else { continue }
            feasibleBoth += 1
            if let v = r["broker_violations"] as? [String], !v.isEmpty {
                violations += 1
                print("  rule violation on \(id): \(v.prefix(3))")
            }
            if complete[id] == false { incomplete += 1 }
            worstProven = max(worstProven, provenGap[id] ?? 0)
            if let g = r["gap"] as? Double {
                if o.ids != nil { print("  \(id): gap to the MILP \(String(format: "%.4f", g * 100)) %") }
                if g > 0.001 {
                    over += 1
                    print("  above 0.1 %: \(id) \(String(format: "%.4f", g * 100)) % (\(about[id] ?? ""))")
                }
                if g > worst {
                    worst = g
                    worstID = id
                }
            }
        }
        times.sort()
        print(
            "| \(cls.lowerBound)–\(cls.upperBound) devices | \(o.perClass) | \(feasibleBoth) | \(over) | \(String(format: "%.4f", worst * 100)) % (\(worstID)) | \(String(format: "%.4f", worstProven * 100)) % | \(incomplete) | \(violations) | \(disagreements) | \(String(format: "%.3f / %.3f / %.3f", percentile(times, 0.5), percentile(times, 0.99), times.last ?? .nan)) |"
        )
    }
}

func runBrokerExactTiming(arguments: [String]) throws {
    let o = try SweepOptions(arguments)
    let clock = ContinuousClock()
    var rng = SeededRandom(seed: o.seed)
    var medians: [Double] = []
    var lines: [[String: Any]] = []
    var gaps: [Double] = []
    var incomplete = 0
    var worst = (ms: 0.0, id: "")
    for k in 0..<o.instances {
        let p = sweepInstance(&rng, devices: o.devices, knapsack: k % 2 == 1)
        if let only = o.only {
            // Profiling: one instance, many times.
            guard k == only else { continue }
            let t0 = clock.now
            var plan = Broker.dispatch(p)
            for _ in 0..<o.runs { plan = Broker.dispatch(p) }
            print("instance \(k): \(clock.now - t0) for \(o.runs) runs; \(plan.optimality); nodes \(plan.searchNodes)")
            return
        }
        var ts: [Double] = []
        var plan = Broker.dispatch(p)
        for _ in 0..<o.runs {
            let t0 = clock.now
            plan = Broker.dispatch(p)
            let d = clock.now - t0
            ts.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        ts.sort()
        let med = ts[ts.count / 2]
        if ProcessInfo.processInfo.environment["BROKER_DEBUG"] != nil {
            print(k, String(format: "%.3f ms", med), "complete", plan.searchComplete, "nodes", plan.searchNodes, String(format: "gap %.2e", plan.gapBoundFraction),
                  "restore", p.plant.restoreRateKwPerTick as Any, "pr", p.signals.paidReduction != nil, "forecast", !p.signals.priceForecast.isEmpty, "knap", k % 2 == 1)
        }
        medians.append(med)
        let id = "t-\(k)"
        if med > worst.ms { worst = (med, id) }
        if plan.feasible {
            gaps.append(plan.gapBoundFraction)
            if !plan.searchComplete { incomplete += 1 }
        }
        var line = rawInstanceJSON(p, id: id)
        line["broker_feasible"] = plan.feasible
        var sp: [String: Double] = [:]
        for (i, dv) in p.plant.devices.enumerated() { sp[dv.id] = plan.setpointsKw[i] }
        line["broker_setpoints_kw"] = sp
        line["broker_ms"] = med
        lines.append(line)
    }
    let sorted = medians.sorted()
    print("broker exact search: \(o.instances) instances of \(o.devices) devices (half knapsack-like), median of \(o.runs) runs each")
    print(
        "  dispatch: p50 \(String(format: "%.3f", percentile(sorted, 0.5))) ms, p99 \(String(format: "%.3f", percentile(sorted, 0.99))) ms, max \(String(format: "%.3f", sorted.last ?? .nan)) ms (\(worst.id))"
    )
    print("  proven gap: worst \(String(format: "%.2e", gaps.max() ?? 0)), \(incomplete) searches stopped at the work budget")
    guard o.exact else { return }
    let results = try runMILPBatch(lines, o, tag: "exact-timing")
    var solve: [Double] = []
    var worstGap = 0.0
    var over = 0
    for (id, r) in results.sorted(by: { $0.key < $1.key }) {
        if let s = r["solve_seconds"] as? Double { solve.append(s * 1000) }
        if let g = r["gap"] as? Double {
            worstGap = max(worstGap, g)
            if g > 0.001 {
                over += 1
                print("  above 0.1 %: \(id) gap \(String(format: "%.4f", g * 100)) %")
            }
        }
    }
    solve.sort()
    let w = results[worst.id]?["solve_seconds"] as? Double
    print(
        "  exact MILP (scipy/HiGHS) solve on the same instances: p50 \(String(format: "%.1f", percentile(solve, 0.5))) ms, p99 \(String(format: "%.1f", percentile(solve, 0.99))) ms; on the slowest Broker instance \(w.map { String(format: "%.1f", $0 * 1000) } ?? "-") ms"
    )
    print("  Broker vs MILP: worst gap \(String(format: "%.2e", worstGap)), \(over) above 0.1 %")
}
