import Foundation
import HardwareProfiles
@testable import Replay
import Simulation
import struct Signals.DREvent
import Site
import Testing
import TestSupport

/// A site small enough to check by hand: one 1 MW ASIC container at 20 J/TH, one 500 kW GPU container
/// (spot $300/MWh), a 1.6 MW import limit, no auxiliary load, no margin, no strike rule.
let tinySiteYAML = """
site: {id: tiny, import_limit_kw: 1600, safety_margin_kw: 0, tick_s: 1, stale_after_s: 30}
tree: {id: site, cap_kw: 1600, meter: site-meter}
devices:
  - {id: site-meter, class: meter, profile: janitza-umg604, address: {tcp: "127.0.0.1:21001", unit: 1}}
  - id: asic-1
    class: mining
    profile: reference-asic-container
    node: site
    address: {tcp: "127.0.0.1:21002", unit: 1}
    limits: {max_kw: 1000}
    efficiency_j_per_th: 20
  - id: gpu-1
    class: inference
    profile: reference-gpu-container
    node: site
    address: {tcp: "127.0.0.1:21003", unit: 1}
    limits: {max_kw: 500}
    gpus: 500
    kw_per_gpu: 1.0
economics:
  hashprice_usd_per_ph_day: 50
  inference_spot: {usd_per_mwh: 300}
contracts:
  - id: acme
    devices: [gpu-1]
    committed_kw: 400
    rate_usd_per_mwh: 250
    penalty_usd_per_mwh: 200
    window: {start: "2025-01-06T03:00:00Z", end: "2025-01-06T04:00:00Z"}
"""

/// 2025-01-06T00:00:00Z
let day0 = 1_736_121_600.0

func tinyConfig() throws -> ReplayConfig {
    let site = try Site.parse(yaml: tinySiteYAML, file: "tiny.yaml")
    let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
    let profiles = try loadProfiles(for: site, registry: registry)
    // Four hours: cheap, expensive (with a paid reduction), cheap, very expensive (with the contract window).
    let prices = [20.0, 200, 50, 400].enumerated().map { k, p in
        TraceInterval(start: day0 + Double(k) * 3600, end: day0 + Double(k + 1) * 3600, value: p)
    }
    var c = ReplayConfig(site: site, profiles: profiles, prices: prices, tickS: 3600, physicsStepS: 3600, seed: 1,
                         noiseFraction: 0, inferenceDemand: [1.0], baselineStrikeUsdPerMWh: 180, staticMiningShare: 0.5)
    c.drEvents = [DREvent(id: "pay-1", origin: .manual, action: .paidReduction(usdPerMWh: 50, baselineKW: 1500),
                          start: Date(timeIntervalSince1970: day0 + 3600), end: Date(timeIntervalSince1970: day0 + 7200), reason: "test")]
    return c
}

func close(_ a: Double, _ b: Double, _ tol: Double = 1e-6) -> Bool { abs(a - b) <= tol * max(1, abs(b)) }

@Suite("Replay")
struct ReplayTests {
    /// Every figure below is worked out by hand from the rules in docs/replay.md.
    @Test func policyAndBaselinesMatchHandComputedFigures() async throws {
        let r = try await Backtest.run(try tinyConfig())
        // Mining at full power: 1000 kW / 20 J/TH = 50 PH/s; at $50/PH/day that is 50 × 50 / 24 $ per hour.
        let miningHour = 50.0 * 50 / 24
        // At 800 kW (static split) efficiency is 20 × (1 + 0.15 × 0.2²) J/TH.
        let mining800Hour = 800.0 / (20 * (1 + 0.15 * 0.04)) * 50 / 24
        let gpuHour = 0.5 * 300.0  // 500 kW at spot $300/MWh

        // Policy: h1 ($20) all on; h2 ($200, paid $50/MWh below 1.5 MW) mining off, GPU on;
        // h3 ($50) all on; h4 ($400) GPU at its 400 kW commitment only (rate 250 + penalty 200 > 400), mining off.
        let p = r.summary.policy
        #expect(close(p.miningRevenueUsd, 2 * miningHour))
        #expect(close(p.inferenceContractUsd, 0.4 * 250))
        #expect(close(p.inferenceSpotUsd, 3 * gpuHour))
        #expect(close(p.inferenceRevenueUsd, 3 * gpuHour + 100))
        #expect(close(p.energyCostUsd, 1.5 * 20 + 0.5 * 200 + 1.5 * 50 + 0.4 * 400))
        #expect(close(p.drCreditsUsd, (1500 - 500) / 1000 * 50))
        #expect(close(p.penaltiesUsd, 0))
        #expect(close(p.netUsd, 2 * miningHour + 3 * gpuHour + 100 - 365 + 50))
        #expect(close(p.miningUptime, 0.5))
        #expect(close(p.inferenceUptime, 1))
        #expect(close(p.curtailedMiningMWh, 2.0))
        #expect(p.capViolations == 0 && p.breakerTrips == 0)

        let byID = Dictionary(uniqueKeysWithValues: r.summary.baselines.map { ($0.id, $0) })
        // Always on: 1.5 MW every hour; in h4 the GPU's 500 kW are 400 contract + 100 spot.
        let on = try #require(byID["always-on"])
        #expect(close(on.miningRevenueUsd, 4 * miningHour))
        #expect(close(on.inferenceRevenueUsd, 3 * gpuHour + 0.4 * 250 + 0.1 * 300))
        #expect(close(on.energyCostUsd, 1.5 * (20 + 200 + 50 + 400)))
        #expect(close(on.drCreditsUsd, 0))
        #expect(close(on.netUsd, 4 * miningHour + 580 - 1005))
        // Fixed strike $180: mining on in h1 and h3 only; GPU always on.
        let fs = try #require(byID["fixed-strike"])
        #expect(close(fs.miningRevenueUsd, 2 * miningHour))
        #expect(close(fs.energyCostUsd, 1.5 * 20 + 0.5 * 200 + 1.5 * 50 + 0.5 * 400))
        #expect(close(fs.drCreditsUsd, 50))
        #expect(close(fs.netUsd, 2 * miningHour + 580 - 405 + 50))
        // Static 50/50 of 1.6 MW: mining 800 kW, GPU 500 kW (its max, under its 800 kW share), 1.3 MW always.
        let ss = try #require(byID["static-split"])
        #expect(close(ss.miningRevenueUsd, 4 * mining800Hour))
        #expect(close(ss.energyCostUsd, 1.3 * (20 + 200 + 50 + 400)))
        #expect(close(ss.drCreditsUsd, 0.2 * 50))
        #expect(close(ss.netUsd, 4 * mining800Hour + 580 - 871 + 10))
        // The policy beats every baseline here.
        #expect(r.summary.baselines.allSatisfy { $0.netUsd < p.netUsd })
    }

    @Test func theContractShortfallIsPenalised() async throws {
        // Without demand the GPU cannot serve its 400 kW commitment: the whole commitment is short.
        var c = try tinyConfig()
        c.inferenceDemand = [0.5]  // 250 kW of demand at most
        let r = try await Backtest.run(c, baselines: false)
        #expect(close(r.summary.policy.penaltiesUsd, (0.4 - 0.25) * 200))
        #expect(close(r.summary.policy.inferenceContractUsd, 0.25 * 250))
        #expect(close(r.summary.policy.curtailedInferenceMWh, 0))
    }

    @Test func sameInputsGiveAnIdenticalSummary() async throws {
        let site = try Site.load(path: packageRoot.appendingPathComponent("examples/demo-site.yaml").path)
        let profiles = try loadProfiles(for: site, registry: ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")]))
        let files = ReplayFiles(prices: packageRoot.appendingPathComponent("examples/replay/two-days.csv").path)
        func once() async throws -> BacktestResult {
            let c = try ReplayInputs.load(site: site, profiles: profiles, files: files, from: 1_755_129_600, to: 1_755_129_600 + 4 * 3600, seed: 7)
            return try await Backtest.run(c)
        }
        let a = try await once(), b = try await once()
        #expect(a.summary == b.summary)
        #expect(a.summary.json() == b.summary.json())
        #expect(a.policy.samples == b.policy.samples)
        #expect(a.summary.ticks == 48)
        #expect(a.summary.policy.capViolations == 0 && a.summary.policy.breakerTrips == 0)
        #expect(a.summary.baselines.allSatisfy { $0.capViolations == 0 && $0.breakerTrips == 0 })
        #expect(a.summary.policy.miningRevenueUsd > 0)
    }

    @Test func theReportHasTheChartsAndTheSummaryNumbers() async throws {
        let r = try await Backtest.run(try tinyConfig())
        let html = ReplayReport.html(r)
        for id in ["chart-power", "chart-daily", "chart-value"] {
            #expect(html.contains("<svg class=\"chart\" id=\"\(id)\""), "missing chart \(id)")
        }
        #expect(html.contains("id=\"top-hours\""))
        for run in [r.summary.policy] + r.summary.baselines {
            #expect(html.contains(run.label))
            #expect(html.contains(">\(SummaryTable.usd(run.netUsd))<"), "net of \(run.id) missing")
            #expect(html.contains(">\(SummaryTable.usd(run.miningRevenueUsd))<"))
            #expect(html.contains(">\(SummaryTable.usd(-run.energyCostUsd))<"))
        }
        // The most expensive hour ($400) comes first, with what the controller did.
        let top = try #require(r.policy.topHours.first)
        #expect(top.averagePriceUsdPerMWh == 400)
        #expect(top.actions.first?.hasPrefix("mining: 0/1 on") == true, "\(top.actions)")
        #expect(html.contains("2025-01-06T03:00:00Z"))
        #expect(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"))  // self-contained
    }

    @Test func theReportComparesEveryPolicy() async throws {
        let r = try await Backtest.run(try tinyConfig())
        let html = ReplayReport.html(r)
        let runs = [r.policy] + r.baselines
        #expect(runs.count == 4)
        for run in runs {
            // One cumulative line per policy, ending at that policy's net.
            let total = run.samples.reduce(0) { $0 + $1.netUsd }
            #expect(close(total, run.summary.netUsd, 1e-9))
            #expect(html.contains("class=\"cumulative\" data-run=\"\(run.summary.id)\" data-final=\"\(String(format: "%.2f", total))\""), "\(run.summary.id)")
            // One bar per policy per day (the trace is one day).
            #expect(html.components(separatedBy: "class=\"day-net\" data-run=\"\(run.summary.id)\"").count - 1 == 1)
            // A power chart per policy, behind the switch.
            #expect(html.contains("<button type=\"button\" data-run=\"\(run.summary.id)\""))
        }
        #expect(html.contains("<svg class=\"chart\" id=\"chart-power\""))
        for b in r.baselines { #expect(html.contains("<svg class=\"chart\" id=\"chart-power-\(b.summary.id)\"")) }
        // The policies differ, so the lines do not all end at the same place.
        #expect(Set(runs.map { String(format: "%.2f", $0.summary.netUsd) }).count > 1)
    }

    @Test func aFlatPriceHasNoMostExpensiveHours() async throws {
        var c = try tinyConfig()
        c.prices = c.prices.map { TraceInterval(start: $0.start, end: $0.end, value: 20) }
        let html = ReplayReport.html(try await Backtest.run(c))
        #expect(html.contains("id=\"top-hours-flat\""))
        #expect(html.contains("no spread"))
        #expect(!html.contains("id=\"top-hours\""))
    }

    /// Hours at the same average price are ranked by their energy cost, not by which came first.
    @Test func tiedHoursAreRankedByCostImpact() {
        var tracker = HourTracker(keep: 2)
        func sample(_ hour: Double, price: Double, kw: Double) -> TickSample {
            TickSample(at: day0 + hour * 3600, seconds: 3600, priceUsdPerMWh: price, miningValueUsdPerMWh: 0, siteKW: kw, miningKW: kw,
                       inferenceKW: 0, auxiliaryKW: 0, miningUsd: 0, inferenceUsd: 0, energyUsd: kw / 1000 * price, drCreditUsd: 0, penaltyUsd: 0)
        }
        tracker.add(sample(0, price: 20, kw: 100), actions: nil)
        tracker.add(sample(1, price: 20, kw: 900), actions: nil)
        tracker.add(sample(2, price: 20, kw: 500), actions: nil)
        tracker.add(sample(3, price: 10, kw: 5000), actions: nil)
        let top = tracker.finish()
        #expect(top.map(\.hourStart) == [day0 + 3600, day0 + 7200], "\(top.map { ($0.hourStart - day0) / 3600 })")
    }
}

/// Headless Chromium renders the report; the page's own script counts the charts it laid out.
let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

@Suite("Replay report in Chromium")
struct ReplayBrowserTests {
    // Skipped (and listed as skipped) when no chromium binary is installed: `apt-get install chromium`.
    @Test(.enabled(if: chromium != nil, "needs headless Chromium (Debian package chromium)"))
    func chromiumRendersTheCharts() async throws {
        let r = try await Backtest.run(try tinyConfig())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let page = dir.appendingPathComponent("report.html")
        try ReplayReport.html(r).write(to: page, atomically: true, encoding: .utf8)
        let dom = try runChromium(["--dump-dom", page.absoluteString], home: dir)
        // Cumulative net (all policies), net per day (all policies), power (the shown policy), daily by class, value.
        #expect(dom.contains("data-charts-rendered=\"5\""), "Chromium did not lay out 5 charts")
        #expect(dom.contains("data-power-shown=\"policy\""))
        func rendered(_ dom: String, _ id: String) -> (Int, Int, Int)? {
            guard let m = dom.firstMatch(of: try! Regex("id=\"\(id)\"[^>]*data-rendered=\"(\\d+)x(\\d+) marks=(\\d+)\"", as: (Substring, Substring, Substring, Substring).self)) else { return nil }
            return (Int(m.1)!, Int(m.2)!, Int(m.3)!)
        }
        for id in ["chart-cumulative", "chart-daily-policies", "chart-power", "chart-daily", "chart-value"] {
            let size = try #require(rendered(dom, id), "\(id) not in the DOM")
            #expect(size.0 > 500 && size.1 > 200 && size.2 > 0, "\(id): \(size)")
        }
        // The baselines' power charts are there but hidden until chosen.
        for b in r.baselines { #expect(rendered(dom, "chart-power-\(b.summary.id)")?.0 == 0, "\(b.summary.id) shown by default") }
        // Chosen through the page's switch (the URL fragment selects as a click does): only that run's chart is laid out.
        let chosen = URL(string: page.absoluteString + "#power=always-on")!
        let dom2 = try runChromium(["--dump-dom", chosen.absoluteString], home: dir)
        #expect(dom2.contains("data-power-shown=\"always-on\""))
        #expect((rendered(dom2, "chart-power-always-on")?.0 ?? 0) > 500)
        #expect(rendered(dom2, "chart-power")?.0 == 0)
        #expect(dom2.contains("data-charts-rendered=\"5\""))
        let shot = dir.appendingPathComponent("shot.png")
        _ = try runChromium(["--screenshot=\(shot.path)", "--window-size=1200,2600", page.absoluteString], home: dir)
        let png = try Data(contentsOf: shot)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000)
        if let keep = ProcessInfo.processInfo.environment["SWITCHYARD_KEEP_REPORT_SHOT"] { try? png.write(to: URL(fileURLWithPath: keep)) }
    }

    func runChromium(_ args: [String], home: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium!)
        p.arguments = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--user-data-dir=\(home.appendingPathComponent("profile").path)"] + args
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home.path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite("Replay input errors")
struct ReplayInputErrorTests {
    func write(_ name: String, _ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-replay-in-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func loadError(_ files: ReplayFiles) throws -> String {
        let c = try tinyConfig()
        do {
            _ = try ReplayInputs.load(site: c.site, profiles: c.profiles, files: files)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test(arguments: [
        ("missing.csv", "timestamp,cost\n2025-01-06T00:00:00Z,20\n", 1, "price_usd_per_mwh"),
        ("unsorted.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00Z,20\n2025-01-06T01:00:00Z,21\n2025-01-06T00:30:00Z,22\n", 4, "sorted"),
        ("gap.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00Z,20\n2025-01-06T01:00:00Z,21\n2025-01-06T03:00:00Z,22\n", 4, "gap"),
        ("no-offset.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00,20\n2025-01-06T01:00:00,21\n", 2, "offset"),
        ("dst.csv", "Delivery Date,Hour Ending,Settlement Point,Settlement Point Price\n11/02/2025,01:00,HB_NORTH,21.40\n11/02/2025,02:00,HB_NORTH,20.10\n11/02/2025,02:00,HB_NORTH,19.75\n", 3, "happens twice"),
    ])
    func badPricesNameTheFileAndLine(name: String, text: String, line: Int, words: String) throws {
        let path = try write(name, text)
        let msg = try loadError(ReplayFiles(prices: path))
        #expect(msg.hasPrefix("\(path):\(line): error: "), "\(msg)")
        #expect(msg.lowercased().contains(words), "\(msg)")
        #expect(!msg.contains("\n"))
    }

    @Test func aHashpriceSeriesThatDoesNotCoverTheRangeIsAnError() throws {
        let prices = try write("p.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00Z,20\n2025-01-06T01:00:00Z,21\n")
        let hp = try write("hp.csv", "timestamp,hashprice_usd_per_ph_day\n2025-01-06T01:00:00Z,50\n2025-01-06T02:00:00Z,51\n")
        let msg = try loadError(ReplayFiles(prices: prices, hashprice: hp))
        #expect(msg.hasPrefix("\(hp): error: the hashprice series covers"), "\(msg)")
    }

    @Test func aContractForAnUnknownDeviceIsAnError() throws {
        let prices = try write("p2.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00Z,20\n2025-01-06T01:00:00Z,21\n")
        let cal = try write("c.yaml", "contracts:\n  - id: x\n    devices: [gpu-9]\n    committed_kw: 10\n    penalty_usd_per_mwh_short: 5\n    weekly: [{days: [mon], from: \"08:00\", until: \"09:00\"}]\n")
        let msg = try loadError(ReplayFiles(prices: prices, contracts: cal))
        #expect(msg == "\(cal): error: contract 'x' names device 'gpu-9', which is not an inference device in tiny.yaml")
    }

    @Test func aRangeOutsideThePricesIsAnError() throws {
        let prices = try write("p3.csv", "timestamp,price_usd_per_mwh\n2025-01-06T00:00:00Z,20\n2025-01-06T01:00:00Z,21\n")
        let c = try tinyConfig()
        #expect(throws: ReplayError.self) { try ReplayInputs.load(site: c.site, profiles: c.profiles, files: ReplayFiles(prices: prices), to: day0 + 3 * 86_400) }
    }
}

/// Issue 12 §7: a paid reduction without a baseline is valued in replay as serve values it: against the mean
/// measured import over the baseline window before it (`MeasuredBaseline`, the rule of serve's ledger).
@Suite("Replay: measured baselines")
struct ReplayMeasuredBaselineTests {
    @Test func measuredBaselineIsTheMeanImportBeforeTheEventAndValuesItLikeAnExplicitOne() async throws {
        let explicit = try tinyConfig()
        var measured = explicit
        measured.drEvents = []
        measured.measuredPaidReductions = [MeasuredPaidReduction(id: "pay-1", start: day0 + 3600, end: day0 + 7200, usdPerMWh: 50)]
        measured.baselineWindowS = 3600
        let m = try await ReplayEngine.run(measured, policy: .controller)
        let settled = try #require(m.measuredBaselines["pay-1"])
        // Independently: the replay's own hourly samples in [start − 1 h, start) — hour 1, all on, 1.5 MW.
        let window = m.samples.filter { $0.at >= day0 && $0.at < day0 + 3600 }
        #expect(window.count == 1)
        #expect(close(settled.kw, window.map(\.siteKW).reduce(0, +) / Double(window.count)))
        #expect(close(settled.kw, 1500), "the hand figure: ASIC 1000 kW + GPU 500 kW in hour 1")
        // Valued as the same event with that baseline given explicitly: the same run to the cent.
        let e = try await ReplayEngine.run(explicit, policy: .controller)
        #expect(close(m.summary.drCreditsUsd, e.summary.drCreditsUsd))
        #expect(m.summary.drCreditsUsd > 0)
        #expect(close(m.summary.netUsd, e.summary.netUsd))
    }

    @Test func anEventAtTheStartWaitsForItsFirstMeasurement() async throws {
        var c = try tinyConfig()
        c.drEvents = []
        c.measuredPaidReductions = [MeasuredPaidReduction(id: "pay-0", start: day0, end: day0 + 7200, usdPerMWh: 50)]
        let r = try await ReplayEngine.run(c, policy: .controller)
        // Nothing was measured before it: the first tick's import is its baseline (never 0 kW), settled after that tick.
        let b = try #require(r.measuredBaselines["pay-0"])
        #expect(close(b.kw, r.samples[0].siteKW))
        #expect(b.how.hasPrefix("first measured import"))
        #expect(r.samples[0].drCreditUsd == 0, "not valued before its baseline is known")
    }
}
