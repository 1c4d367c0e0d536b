// replay PRICES [SITE]: a backtest of the site over a price file, the controller and the three
// baselines (what `switchyard replay` runs), timed; then the controller alone, for the split.

import Foundation
import Replay

func runReplayBenchmark(arguments: [String]) async throws {
    guard let prices = arguments.first else { throw BenchError("usage: SwitchyardBench replay PRICES [SITE]") }
    let path = arguments.count > 1 ? arguments[1] : "examples/demo-site.yaml"
    let (site, profiles) = try loadSite(path)
    let config = try ReplayInputs.load(site: site, profiles: profiles, files: ReplayFiles(prices: prices))
    let days = (config.to - config.from) / 86_400
    let ticks = Int(((config.to - config.from) / config.tickS).rounded())
    let clock = ContinuousClock()
    let cpu0 = cpuSeconds()
    var start = clock.now
    let all = try await Backtest.run(config)
    let wallAll = seconds(clock.now - start)
    let cpuAll = cpuSeconds() - cpu0
    start = clock.now
    let alone = try await Backtest.run(config, baselines: false)
    let wallAlone = seconds(clock.now - start)
    let same = alone.summary.policy == all.summary.policy
    print(String(format: "replay: %@, %.0f days of prices, %d ticks of %.0f s per run", path, days, ticks, config.tickS))
    print(String(format: "  controller + 3 baselines (4 runs): %.1f s wall, %.1f s CPU (goal ≤ 60 s wall for a year)", wallAll, cpuAll))
    print(String(format: "  controller alone: %.1f s wall, %.0f µs per tick; same summary as in the 4-run backtest: %@",
                 wallAlone, wallAlone / Double(max(ticks, 1)) * 1e6, same ? "yes" : "NO"))
    let runs = [all.summary.policy] + all.summary.baselines
    print("  net: " + runs.map { String(format: "%@ $%.2fM", $0.id, $0.netUsd / 1e6) }.joined(separator: ", ")
          + "; cap violations \(runs.map(\.capViolations).reduce(0, +)), breaker trips \(runs.map(\.breakerTrips).reduce(0, +))")
}
