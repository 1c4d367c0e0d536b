import Basics
import ArgumentParser
import Broker
import Foundation
import Site

extension Switchyard {
    /// One-shot dispatch: read a site file, a snapshot and signals, print the Broker's plan.
    struct Dispatch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dispatch",
            abstract: "Decide each device's power for one instant (one-shot, no devices contacted).",
            discussion: """
                Reads the site file (YAML), a snapshot (JSON: measured power, setpoints, on/off \
                times) and signals (JSON: energy prices, DR events, peak windows, contracts), and \
                prints a setpoint and a reason for every mining and inference device, the objective \
                in $/h and the binding constraints. DispatchSignals may be embedded in the snapshot under \
                "signals". The formats are in docs/dispatch.md and docs/site-file.md.
                """)

        @Option(name: .long, help: "The site file (YAML).")
        var site: String

        @Option(name: .long, help: "The snapshot file (JSON).")
        var snapshot: String

        @Option(name: .long, help: "A signals file (JSON); default: the snapshot's \"signals\" section.")
        var signals: String?

        @Option(name: .long, help: "Dispatch time, ISO 8601 (e.g. 2026-07-15T14:00:00Z); default: the snapshot's \"at\".")
        var at: String?

        @Flag(name: .long, help: "Print JSON instead of a table.")
        var json = false

        func validate() throws {
            if let at, ISO8601.parse(at) == nil {
                throw ValidationError("--at '\(at)' is not an ISO 8601 time like 2026-07-15T14:00:00Z")
            }
            if site.isEmpty || snapshot.isEmpty { throw ValidationError("--site and --snapshot need a file path") }
        }

        func run() async throws {
            let site: Site
            let problem: DispatchProblem
            do {
                site = try Site.load(path: self.site)
                let snap = try SiteSnapshot.load(path: snapshot)
                let sig = try signals.map { p throws(LocatedError) in try SiteSignals.load(path: p) }
                problem = try SiteDispatch.problem(
                    site: site, snapshot: snap, signals: sig, at: at.flatMap(ISO8601.parse))
            } catch {
                printError("error: \(error)")
                throw ExitCode(65)  // EX_DATAERR
            }
            let plan = Broker.dispatch(problem)
            if json {
                print(Self.json(plan, problem))
            } else {
                print(Self.table(plan, problem, site: site))
            }
            if !plan.feasible { throw ExitCode(2) }
        }

        static func json(_ plan: DispatchPlan, _ p: DispatchProblem) -> String {
            let devices = p.plant.devices
            var setpoints: [String: Double] = [:]
            var reasons: [String: String] = [:]
            for (i, d) in devices.enumerated() {
                setpoints[d.id] = (plan.setpointsKw[i] * 1000).rounded() / 1000
                reasons[d.id] = plan.reason(i)
            }
            let o = plan.objective
            func r(_ x: Double) -> Double { (x * 100).rounded() / 100 }
            var out: [String: Any] = [
                "setpoints_kw": setpoints,
                "reasons": reasons,
                "objective_usd_per_h": [
                    "mining": r(o.mining), "inference": r(o.inference), "energy": r(o.energy), "dr_credit": r(o.drCredit),
                    "penalty": r(o.penalty), "total": r(o.total),
                ],
                "binding": plan.binding,
                "feasible": plan.feasible,
                "mining_curtailed": plan.miningCurtailed,
            ]
            if let why = plan.infeasibleReason { out["infeasible_reason"] = why }
            if plan.feasible {
                // The proven gap: the optimum lies between the plan's objective and the bound.
                out["optimality"] = [
                    "search": plan.exactSearch ? "exact" : "budgeted", "complete": plan.searchComplete,
                    "bound_usd_per_h": r(plan.boundUsdPerH), "gap_bound_usd_per_h": (plan.gapBoundUsdPerH * 1e4).rounded() / 1e4,
                    "gap_bound_pct": (plan.gapBoundFraction * 100 * 1e4).rounded() / 1e4, "text": plan.optimality,
                ] as [String: Any]
            }
            let data = try! JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }

        /// A table grouped by tree node: each node with its cap and planned load, then its devices.
        static func table(_ plan: DispatchPlan, _ p: DispatchProblem, site: Site) -> String {
            let plant = p.plant
            var lines: [String] = []
            let sig = p.signals
            var price = "energy \(num(sig.energyPriceUsdPerMWh)) $/MWh"
            for a in sig.priceAdders { price += " + \(num(a.usdPerMWh)) (\(a.label))" }
            lines.append("site \(site.id): \(price); \(plan.feasible ? "feasible" : "INFEASIBLE")")
            if let why = plan.infeasibleReason { lines.append("  \(why)") }
            var children: [[Int]] = Array(repeating: [], count: plant.nodes.count)
            for n in plant.nodes.indices where plant.parentIndex(ofNode: n) >= 0 {
                children[plant.parentIndex(ofNode: n)].append(n)
            }
            var devicesAt: [[Int]] = Array(repeating: [], count: plant.nodes.count)
            for d in plant.devices.indices { devicesAt[plant.nodeIndex(ofDevice: d)].append(d) }
            let idWidth = max(12, (plant.devices.map(\.id.count) + plant.nodes.map { $0.id.count + 2 }).max() ?? 12)
            func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
            func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
            func visit(_ n: Int, _ depth: Int) {
                let indent = String(repeating: "  ", count: depth)
                let node = plant.nodes[n]
                lines.append(
                    "\(indent)\(node.id)  cap \(mw(plan.nodeCapKw[n]))  load \(mw(plan.nodeLoadKw[n]))"
                        + (node.auxFraction > 0 ? "  (incl. auxiliary \(num(node.auxFraction * 100))% of IT)" : ""))
                for d in devicesAt[n].sorted(by: { plant.devices[$0].id < plant.devices[$1].id }) {
                    let dev = plant.devices[d]
                    let kw = plan.setpointsKw[d]
                    lines.append(
                        "\(indent)  \(pad(dev.id, idWidth)) \(pad(dev.deviceClass.rawValue, 9)) \(lpad(num(kw), 8)) / \(lpad(num(dev.maxKw), 6)) kW  \(plan.reason(d))"
                    )
                }
                for c in children[n] { visit(c, depth + 1) }
            }
            visit(0, 0)
            let o = plan.objective
            lines.append("")
            lines.append(
                "objective $/h: mining \(num(o.mining)), inference \(num(o.inference)), energy \(num(o.energy)), DR credit \(num(o.drCredit)), penalty \(num(o.penalty)), total \(num(o.total))"
            )
            lines.append(plan.binding.isEmpty ? "binding: none" : "binding:")
            for b in plan.binding { lines.append("  \(b)") }
            if plan.feasible { lines.append("optimality: \(plan.optimality)") }
            if plan.miningCurtailed { lines.append("mining strike state: curtailed") }
            return lines.joined(separator: "\n")
        }

        static func num(_ x: Double) -> String {
            abs(x - x.rounded()) < 0.05 ? String(format: "%.0f", x) : String(format: "%.1f", x)
        }
        static func mw(_ kw: Double) -> String { kw.isFinite ? String(format: "%.2f MW", kw / 1000) : "none" }
    }
}


