import ArgumentParser
import Foundation
import Replay
import Site
import Synchronization

extension Switchyard {
    /// `switchyard replay`: what would this site have earned? The real control loop (broker and
    /// governor) on virtual time against the simulated site, over a historical price trace, next to
    /// three baselines. See docs/replay.md.
    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Backtest the controller and three baselines over a historical price trace on the simulated site."
        )

        @OptionGroup var siteOptions: SiteOptions

        @Option(name: .long, help: ArgumentHelp("Energy prices: ERCOT RT/DA CSV, generic CSV or JSON (docs/signals.md).", valueName: "FILE"))
        var prices: String

        @Option(name: .long, help: ArgumentHelp("Hashprice series ($/PH/day); default: the site file's economics.", valueName: "FILE"))
        var hashprice: String?

        @Option(name: .long, help: ArgumentHelp("DR events: manual events, or a signals file's dr_events and peak_windows.", valueName: "FILE"))
        var events: String?

        @Option(name: .long, help: ArgumentHelp("Contract calendar (docs/signals.md).", valueName: "FILE"))
        var contracts: String?

        @Option(name: .long, help: ArgumentHelp("Start (ISO 8601 with offset); default: the first price.", valueName: "T"))
        var from: String?

        @Option(name: .long, help: ArgumentHelp("End (ISO 8601 with offset); default: the end of the last price interval.", valueName: "T"))
        var to: String?

        @Option(name: .long, help: ArgumentHelp("Write summary.json and report.html here.", valueName: "DIR"))
        var out: String?

        @Flag(name: .long, help: "Print the summary as JSON.")
        var json = false

        @Option(name: .customLong("settlement-point"), help: "ERCOT settlement point to keep (e.g. HB_NORTH).")
        var settlementPoint: String?

        @Option(name: .customLong("time-zone"), help: "IANA zone of ERCOT local times and contract calendars (default America/Chicago).")
        var timeZone: String?

        @Option(name: .long, help: "Control tick in simulated seconds (ticks also fall on every price change).")
        var tick: Double = 300

        @Option(name: .customLong("physics-step"), help: "Physics step in simulated seconds (default: one step per tick).")
        var physicsStep: Double?

        @Option(name: .long, help: "Seed of the simulator's measurement noise.")
        var seed: UInt64 = 1

        @Option(name: .long, help: "Strike of the fixed-strike baseline in $/MWh (default: the site file's strike).")
        var strike: Double?

        @Option(name: .customLong("mining-share"), help: "Mining's share of the budget in the static-split baseline (0…1).")
        var miningShare: Double = 0.5

        @Option(name: .customLong("baseline-window"), help: ArgumentHelp(
            "Seconds before a paid reduction without a baseline_kw whose mean measured import is its baseline (serve's baseline_window_s).",
            valueName: "S"))
        var baselineWindow: Double = 900

        @Flag(name: .customLong("no-baselines"), help: "Run the controller only.")
        var noBaselines = false

        @Flag(inversion: .prefixedNo, help: "Show a progress bar on stderr (default: when stderr is a terminal).")
        var progress: Bool?

        func validate() throws {
            guard tick > 0, tick <= 86_400 else { throw ValidationError("--tick must be in (0, 86400] seconds") }
            if let p = physicsStep, !(p > 0) { throw ValidationError("--physics-step must be > 0") }
            guard baselineWindow >= 1, baselineWindow <= 86_400 else { throw ValidationError("--baseline-window must be 1…86400 seconds") }
            guard (0...1).contains(miningShare) else { throw ValidationError("--mining-share must be within 0…1") }
            if let f = from, parseISOTime(f) == nil { throw ValidationError("--from: '\(f)' is not an ISO 8601 time (2025-08-14T00:00:00-05:00)") }
            if let t = to, parseISOTime(t) == nil { throw ValidationError("--to: '\(t)' is not an ISO 8601 time (2025-08-15T00:00:00-05:00)") }
        }

        func run() async throws {
            let (site, profiles) = try siteOptions.load()
            var config: ReplayConfig
            do {
                config = try ReplayInputs.load(
                    site: site, profiles: profiles,
                    files: ReplayFiles(prices: prices, hashprice: hashprice, events: events, contracts: contracts,
                                       settlementPoint: settlementPoint, timeZone: timeZone),
                    from: from.flatMap(parseISOTime), to: to.flatMap(parseISOTime), tickS: tick, physicsStepS: physicsStep, seed: seed)
            } catch {
                printError(error.description)
                throw ExitCode(ExitCodes.validation)
            }
            config.baselineStrikeUsdPerMWh = strike
            config.staticMiningShare = miningShare
            config.baselineWindowS = baselineWindow

            let showProgress = progress ?? (isatty(2) == 1)
            let bar = ProgressBar(from: config.from, to: config.to, enabled: showProgress)
            let started = ContinuousClock.now
            let result: BacktestResult
            do {
                result = try await Backtest.run(config, baselines: !noBaselines) { t in bar.update(t) }
            } catch {
                bar.finish()
                printError(error.description)
                throw ExitCode(ExitCodes.validation)
            }
            bar.finish()
            let wall = ContinuousClock.now - started
            let wallS = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18

            if let out {
                do {
                    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                    try result.summary.json().write(toFile: out + "/summary.json", atomically: true, encoding: .utf8)
                    try ReplayReport.html(result).write(toFile: out + "/report.html", atomically: true, encoding: .utf8)
                } catch {
                    printError("\(out): error: cannot write the report: \(error.localizedDescription)")
                    throw ExitCode(ExitCodes.validation)
                }
            }
            if json {
                print(result.summary.json())
            } else {
                print(SummaryTable.text(result.summary))
                let simDays = (config.to - config.from) / 86_400
                print(String(format: "\n%.1f simulated days in %.1f s of wall time (%.0f× real time)", simDays, wallS,
                             (config.to - config.from) / max(wallS, 1e-9)))
                if let out { print("wrote \(out)/summary.json and \(out)/report.html") }
            }
            let runs = [result.policy] + result.baselines
            let bad = runs.filter { $0.summary.capViolations > 0 || $0.summary.breakerTrips > 0 }
            if !bad.isEmpty {
                for r in bad {
                    printError("error: \(r.summary.label): \(r.summary.capViolations) cap violation(s), \(r.summary.breakerTrips) breaker trip(s)")
                    for line in r.incidents.prefix(5) { printError("  \(line)") }
                }
                throw ExitCode(2)
            }
        }
    }
}

/// A one-line progress bar on stderr: simulated time reached, share done, and the rate.
final class ProgressBar: Sendable {
    struct State {
        var lastDraw: ContinuousClock.Instant?
        var drawn = false
    }
    let from: Double
    let to: Double
    let enabled: Bool
    let started = ContinuousClock.now
    let state = Mutex(State())

    init(from: Double, to: Double, enabled: Bool) {
        self.from = from
        self.to = to
        self.enabled = enabled
    }

    func update(_ t: Double) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let draw = state.withLock { s -> Bool in
            if let last = s.lastDraw, now - last < .milliseconds(100), t < to { return false }
            s.lastDraw = now
            s.drawn = true
            return true
        }
        guard draw else { return }
        let frac = max(0, min(1, (t - from) / max(to - from, 1)))
        let width = 30
        let filled = Int((frac * Double(width)).rounded(.down))
        let el = now - started
        let wall = max(Double(el.components.seconds) + Double(el.components.attoseconds) / 1e18, 1e-3)
        let rate = (t - from) / 86_400 / wall
        let line = "\r[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "] "
            + isoTime(t) + String(format: "  %3.0f%%  %.1f sim-days/s ", frac * 100, rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled, state.withLock({ $0.drawn }) else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
