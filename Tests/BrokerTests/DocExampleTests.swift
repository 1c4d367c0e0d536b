import Broker
import Foundation
import Site
import Testing

/// The example outputs in docs/dispatch.md are generated from the binary
/// (`python3 docs/gen-dispatch-examples.py`); this keeps them equal to what the Broker gives now,
/// so a change in the dispatch that makes them stale fails here.
@Suite("docs/dispatch.md examples")
struct DocExampleTests {
    static let doc = SiteFileTests.examples.deletingLastPathComponent().appendingPathComponent("docs/dispatch.md")

    static func block(_ name: String) throws -> String {
        let text = try String(contentsOf: doc, encoding: .utf8)
        let open = "<!-- generated: \(name) -->\n"
        let start = try #require(text.range(of: open), "docs/dispatch.md has no generated block '\(name)'")
        let end = try #require(text.range(of: "\n<!-- end generated -->", range: start.upperBound..<text.endIndex))
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// What `switchyard dispatch --json` prints for these values (DispatchCommand rounds so).
    static func kw3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
    static func usd2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

    @Test("the cheap-hour JSON example is what the Broker gives")
    func cheapHour() throws {
        var body = try Self.block("cheap-hour")
        body = body.replacingOccurrences(of: "```json\n", with: "").replacingOccurrences(of: "\n```", with: "")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "the example is not JSON")
        let (plan, p) = try SiteFileTests.run("cheap-hour.json")
        let setpoints = try #require(json["setpoints_kw"] as? [String: Double])
        let reasons = try #require(json["reasons"] as? [String: String])
        #expect(!setpoints.isEmpty)
        for (id, kw) in setpoints {
            let d = try #require(p.plant.deviceIndex(id))
            #expect(abs(Self.kw3(plan.setpointsKw[d]) - kw) < 1e-9, "\(id)")
            #expect(reasons[id] == plan.reason(d), "\(id)")
        }
        let o = try #require(json["objective_usd_per_h"] as? [String: Double])
        let parts: [String: Double] = [
            "mining": plan.objective.mining, "inference": plan.objective.inference, "energy": plan.objective.energy,
            "dr_credit": plan.objective.drCredit, "penalty": plan.objective.penalty, "total": plan.objective.total,
        ]
        for (k, v) in parts { #expect(abs((o[k] ?? .nan) - Self.usd2(v)) < 1e-9, "objective \(k): doc \(o[k] ?? .nan), Broker \(Self.usd2(v))") }
        #expect(json["binding"] as? [String] == plan.binding)
        #expect(json["feasible"] as? Bool == plan.feasible)
        #expect(json["mining_curtailed"] as? Bool == plan.miningCurtailed)
        let opt = try #require(json["optimality"] as? [String: Any])
        #expect(opt["text"] as? String == plan.optimality)
        #expect(opt["search"] as? String == (plan.exactSearch ? "exact" : "budgeted"))
    }

    @Test("the reasons table is what the Broker gives")
    func reasonsTable() throws {
        let rows = try Self.block("reasons").split(separator: "\n").dropFirst(2)
        #expect(rows.count >= 4)
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else {
                Issue.record("bad row: \(row)")
                continue
            }
            let (plan, p) = try SiteFileTests.run(cells[0] + ".json")
            let d = try #require(p.plant.deviceIndex(cells[1]))
            #expect(plan.reason(d) == cells[2...].joined(separator: "|"), "\(cells[0]) \(cells[1])")
        }
    }
}
