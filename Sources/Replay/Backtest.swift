// A backtest: the controller's run and the baselines' runs over the same inputs, side by side.
// The runs are independent (each has its own simulator and loop), so they run concurrently;
// each is deterministic, so the summary is the same whatever the scheduling.

import Basics
import Foundation
import Site
import Synchronization

public struct ReplaySummary: Sendable, Equatable, Codable {
    public var site: String
    public var from: String
    public var to: String
    public var tickS: Double
    public var physicsStepS: Double
    public var seed: UInt64
    public var ticks: Int
    public var inputs: [String]
    public var policy: RunSummary
    public var baselines: [RunSummary]

    /// Pretty JSON with sorted keys (stable for scripts and diffs).
    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }
}

public struct BacktestResult: Sendable {
    public var summary: ReplaySummary
    public var policy: RunResult
    public var baselines: [RunResult]
    public var config: ReplayConfig
}

public enum Backtest {
    /// The baselines for a config: always-on, fixed strike, static split.
    public static func baselines(for config: ReplayConfig) -> [ReplayPolicy] {
        let strike = config.baselineStrikeUsdPerMWh ?? config.site.economics.strike?.priceUsdPerMWh ?? defaultStrike(config)
        return [.alwaysOn, .fixedStrike(usdPerMWh: strike), .staticSplit(miningShare: config.staticMiningShare)]
    }

    /// Without a strike in the site file: the fleet's mining value at the first hashprice.
    static func defaultStrike(_ config: ReplayConfig) -> Double {
        let e = config.site.economics
        if let v = e.miningValueUsdPerMWh { return v }
        let hp = config.hashprice?.first?.value ?? e.hashpriceUsdPerPHDay ?? 0
        let miners = config.site.devices.filter { $0.deviceClass == .mining }
        let total = miners.reduce(0) { $0 + ($1.limits?.maxKw ?? 0) }
        let eff = total > 0 ? miners.reduce(0) { $0 + ($1.efficiencyJPerTH ?? 20) * ($1.limits?.maxKw ?? 0) } / total : 20
        return hp / (0.024 * eff)
    }

    static func runOne(_ config: ReplayConfig, policy: ReplayPolicy, progress: @escaping @Sendable (Double) -> Void) async -> Result<RunResult, ReplayError> {
        do {
            return .success(try await ReplayEngine.run(config, policy: policy, recordActions: policy == .controller, progress: progress))
        } catch {
            return .failure(error)
        }
    }

    /// Runs the controller and (optionally) the baselines. `progress` gets, every few hundred ticks,
    /// the simulated time reached by the slowest run.
    public static func run(_ config: ReplayConfig, baselines withBaselines: Bool = true,
                           progress: (@Sendable (Double) -> Void)? = nil) async throws(ReplayError) -> BacktestResult {
        try config.validate(pricesFile: config.sources.first ?? "<prices>")
        let policies: [ReplayPolicy] = [.controller] + (withBaselines ? baselines(for: config) : [])
        let reached = Reached([Double](repeating: config.from, count: policies.count))
        let results: [Result<RunResult, ReplayError>] = await withTaskGroup(of: (Int, Result<RunResult, ReplayError>).self) { group in
            for (k, p) in policies.enumerated() {
                group.addTask {
                    let report: @Sendable (Double) -> Void = { t in
                        let slowest = reached.times.withLock { r -> Double in r[k] = t; return r.min() ?? t }
                        progress?(slowest)
                    }
                    return (k, await runOne(config, policy: p, progress: report))
                }
            }
            var out = [Result<RunResult, ReplayError>?](repeating: nil, count: policies.count)
            for await (k, r) in group { out[k] = r }
            return out.map { $0! }
        }
        var runs: [RunResult] = []
        for r in results {
            switch r {
            case .success(let run): runs.append(run)
            case .failure(let e): throw e
            }
        }
        let summary = ReplaySummary(
            site: config.site.id, from: ISO8601.format(config.from), to: ISO8601.format(config.to), tickS: config.tickS,
            physicsStepS: config.physicsStepS, seed: config.seed, ticks: runs[0].samples.count, inputs: config.sources,
            policy: runs[0].summary, baselines: runs.dropFirst().map(\.summary))
        return BacktestResult(summary: summary, policy: runs[0], baselines: Array(runs.dropFirst()), config: config)
    }
}

/// Simulated time reached by each run (shared by the runs' progress callbacks).
final class Reached: Sendable {
    let times: Mutex<[Double]>
    init(_ t: [Double]) { times = Mutex(t) }
}

// MARK: The summary table

public enum SummaryTable {
    /// One metric row: a label and how to render it from a run.
    struct Row: Sendable {
        var label: String
        var value: @Sendable (RunSummary) -> String
    }

    static let rows: [Row] = [
        Row(label: "Mining revenue") { usd($0.miningRevenueUsd) },
        Row(label: "Inference revenue") { usd($0.inferenceRevenueUsd) },
        Row(label: "  of which contract") { usd($0.inferenceContractUsd) },
        Row(label: "  of which spot") { usd($0.inferenceSpotUsd) },
        Row(label: "Energy cost") { usd(-$0.energyCostUsd) },
        Row(label: "DR credits") { usd($0.drCreditsUsd) },
        Row(label: "Contract penalties") { usd(-$0.penaltiesUsd) },
        Row(label: "Net") { usd($0.netUsd) },
        Row(label: "Import") { mwh($0.importMWh) },
        Row(label: "Average price paid") { "$" + String(format: "%.2f", $0.averagePriceUsdPerMWh) + "/MWh" },
        Row(label: "Mining uptime") { pct($0.miningUptime) },
        Row(label: "Inference uptime") { pct($0.inferenceUptime) },
        Row(label: "Curtailed mining") { mwh($0.curtailedMiningMWh) },
        Row(label: "Curtailed inference") { mwh($0.curtailedInferenceMWh) },
        Row(label: "Peak import") { String(format: "%.2f MW", $0.peakSiteKW / 1000) },
        Row(label: "Cap violations") { "\($0.capViolations)" },
        Row(label: "Breaker trips") { "\($0.breakerTrips)" },
    ]

    /// The labelled cells: header row (run labels), then one row per metric.
    public static func cells(_ s: ReplaySummary) -> [[String]] {
        let runs = [s.policy] + s.baselines
        return [[""] + runs.map(\.label)] + rows.map { r in [r.label] + runs.map(r.value) }
    }

    /// Plain-text table for the terminal.
    public static func text(_ s: ReplaySummary) -> String {
        let cells = cells(s)
        let widths = cells[0].indices.map { c in cells.map { $0[c].count }.max() ?? 0 }
        var lines = ["Replay of \(s.site), \(s.from) … \(s.to) (\(s.ticks) ticks of \(Int(s.tickS)) s)"]
        for (i, row) in cells.enumerated() {
            let line = row.enumerated().map { c, v in
                c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - v.count) + v
            }.joined(separator: "   ")
            lines.append(line)
            if i == 0 { lines.append(String(repeating: "─", count: line.count)) }
        }
        return lines.joined(separator: "\n")
    }

    public static func usd(_ v: Double) -> String {
        let r = v.rounded()
        let neg = r < 0
        var digits = String(Int64(abs(r)))
        var groups: [String] = []
        while digits.count > 3 { groups.insert(String(digits.suffix(3)), at: 0); digits.removeLast(3) }
        groups.insert(digits, at: 0)
        return (neg ? "−$" : "$") + groups.joined(separator: ",")
    }

    public static func mwh(_ v: Double) -> String { String(format: "%.1f MWh", v) }
    public static func pct(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
}
