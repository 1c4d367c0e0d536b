import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import I2C
import Signals
import Logging
import Modbus
import ServiceLifecycle
import Site
import Simulation
import API

extension Switchyard {
    /// `switchyard serve`: the controller daemon.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the controller: poll, dispatch, govern and write setpoints every tick, until SIGTERM."
        )

        @OptionGroup var siteOptions: ServeSiteOptions
        @OptionGroup var apiOptions: APIOptions

        @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where state is persisted (resumed on restart).", valueName: "DIR"))
        var stateDir: String = "./state"

        @Option(name: .long, help: ArgumentHelp("Signals file (JSON): prices, DR events, peak windows, contracts.", valueName: "FILE"))
        var signals: String?

        @Option(name: .long, help: ArgumentHelp("Price series: ERCOT settlement-point CSV (RT or DA), or a generic CSV/JSON series.", valueName: "FILE"))
        var prices: String?

        @Option(name: .customLong("settlement-point"), help: "ERCOT settlement point to keep when --prices holds several (e.g. HB_NORTH).")
        var settlementPoint: String?

        @Option(name: .customLong("prices-url"), help: ArgumentHelp("HTTP(S) price series (JSON, or CSV), polled; merged over --prices/--signals prices where it has points.", valueName: "URL"))
        var pricesURL: String?

        @Option(name: .customLong("prices-poll-s"), help: "Seconds between polls of --prices-url (default 60).")
        var pricesPollS: Double = 60

        @Option(name: .long, help: ArgumentHelp("Hashprice series ($/PH/day, generic CSV/JSON); wins over the site file's static hashprice.", valueName: "FILE"))
        var hashprice: String?

        @Option(name: .customLong("hashprice-url"), help: ArgumentHelp("HTTP(S) hashprice series ($/PH/day, JSON or CSV), polled; merged over --hashprice.", valueName: "URL"))
        var hashpriceURL: String?

        @Option(name: .customLong("hashprice-poll-s"), help: "Seconds between polls of --hashprice-url (default 300).")
        var hashpricePollS: Double = 300

        @Option(name: .long, help: ArgumentHelp("Manual demand-response events (YAML or JSON).", valueName: "FILE"))
        var events: String?

        @Option(name: .long, help: ArgumentHelp("Contract calendar (YAML or JSON, docs/signals.md): weekly windows in a time zone, DST aware.", valueName: "FILE"))
        var contracts: String?

        @Option(name: .long, help: ArgumentHelp("OpenADR 3 VEN config (JSON): vtn_url, token_url, client_id, client_secret, client_auth, programs, poll_s.", valueName: "FILE"))
        var openadr: String?

        @Option(name: .customLong("start-at"), help: ArgumentHelp("Loop time at start, ISO 8601 UTC (default: now). For replaying a day's signals live.", valueName: "TIME"))
        var startAt: String?

        @Option(name: .customLong("tick-ms"), help: "Tick period in milliseconds (default: the site's tick_s).")
        var tickMs: Int?

        @Option(name: .customLong("watchdog-s"), help: "Comm watchdog written to every container on start, seconds (0: leave as is).")
        var watchdogS: Double = 30

        @Option(name: .long, help: ArgumentHelp("I2C config (JSON): cabinet sensor and heartbeat relay. Absent: I2C disabled.", valueName: "FILE"))
        var i2c: String?

        @Flag(name: .long, help: "Show a compact live view each tick instead of log lines.")
        var view = false

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "notice"

        func validate() throws {
            if let startAt, parseISOTime(startAt) == nil { throw ValidationError("--start-at '\(startAt)' is not an ISO 8601 UTC time like 2026-07-15T13:59:00Z") }
            if let tickMs, !(50...60_000).contains(tickMs) { throw ValidationError("--tick-ms must be 50…60000") }
            try Self.validateFeed(pricesURL, pollS: pricesPollS, option: "prices")
            try Self.validateFeed(hashpriceURL, pollS: hashpricePollS, option: "hashprice")
            if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level '\(logLevel)' is not a swift-log level") }
        }

        /// `--NAME-url` must be an absolute http(s) URL, `--NAME-poll-s` 1…86400.
        static func validateFeed(_ url: String?, pollS: Double, option: String) throws {
            if let url {
                guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil else {
                    throw ValidationError("--\(option)-url '\(url)' is not an absolute http(s) URL")
                }
            }
            if !(pollS >= 1 && pollS <= 86_400) { throw ValidationError("--\(option)-poll-s must be 1…86400") }
        }

        func run() async throws {
            var logger = Logger(label: "switchyard")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .notice
            let prepared = try RemoteServe.prepare(stateDir: stateDir, siteOptions: siteOptions, logger: logger)
            let (site, profiles) = (prepared.site, prepared.profiles)
            var siteSignals = SiteSignals()
            if let signals {
                do { siteSignals = try SiteSignals.load(path: signals) } catch {
                    printError("\(error)")
                    throw ExitCode(ExitCodes.validation)
                }
            }
            let awaitingBaseline: [Signals.DREvent]
            do { awaitingBaseline = try mergeFeeds(into: &siteSignals, prices: prices, settlementPoint: settlementPoint, events: events, hashprice: hashprice,
                                                    contracts: contracts, site: site) } catch {
                printError("\(error)")
                throw ExitCode(ExitCodes.validation)
            }
            var venConfig: OpenADRConfigFile.Loaded?
            if let openadr {
                do { venConfig = try OpenADRConfigFile.load(path: openadr) } catch {
                    printError("\(error)")
                    throw ExitCode(ExitCodes.validation)
                }
            }
            let live = LiveSignals(base: siteSignals)
            let source = try live.makeSource(site: site)
            let pool = ModbusClientPool()
            let buses = pool.buses(for: site)
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
            let store = StateFile(directory: stateDir)
            let restored: LoopState?
            do { restored = try store.load() } catch {
                printError("\(store.path): error: cannot read saved state: \(error)")
                throw ExitCode(ExitCodes.validation)
            }
            let loop: ControlLoop
            do {
                loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source,
                                       options: ControlOptions(commWatchdogS: watchdogS), restoring: restored ?? LoopState())
            } catch {
                printError("\(siteOptions.site): error: \(error)")
                throw ExitCode(ExitCodes.validation)
            }
            if restored != nil { logger.notice("resumed from saved state", metadata: ["path": "\(store.path)"]) }
            var i2cHardware: I2CHardware?
            if let i2c {
                do {
                    let config = try JSONDecoder().decode(I2CConfig.self, from: Data(contentsOf: URL(fileURLWithPath: i2c)))
                    i2cHardware = try await I2CHardware.open(config)
                } catch {
                    printError("\(i2c): error: \(error)")
                    throw ExitCode(ExitCodes.validation)
                }
            } else {
                logger.notice("I2C disabled: no --i2c config given")
            }
            let clock = ContinuousClock()
            let time = LoopTime(clock: clock, startingAt: startAt.flatMap(parseISOTime) ?? Date().timeIntervalSince1970)
            let period = Duration.milliseconds(tickMs ?? Int(site.tickSeconds * 1000))
            let view = self.view
            let siteID = site.id
            let (profilesDir, watchdog, log) = (siteOptions.profilesDir, watchdogS, logger)
            // A loop built for a new configuration starts from the live signals (files plus the feeds' latest data).
            let host = LoopHost(loop: loop) { newSite, state in
                try ControlLoop(site: newSite, profiles: try loadProfiles(for: newSite, registry: .standard(profilesDir: profilesDir)),
                                buses: pool.buses(for: newSite), signals: try live.makeSource(site: newSite),
                                options: ControlOptions(commWatchdogS: watchdog), restoring: state)
            }
            live.attach(host)
            // Measured site import of every tick, when something needs it: the baselines of paid reductions that
            // bring none (OpenADR events and --events alike, one rule with replay's: MeasuredBaseline), and OpenADR
            // curtailment reports. Without either, the tick records nothing.
            let ledger = venConfig == nil && awaitingBaseline.isEmpty ? nil : CurtailmentLedger(
                options: venConfig?.reports ?? .init(),
                journal: venConfig.map { _ in URL(fileURLWithPath: stateDir).appendingPathComponent("openadr-reports.json") })
            if let ledger, !awaitingBaseline.isEmpty {
                let startedAt = time.now
                for e in awaitingBaseline { ledger.watchBaseline(fileEventID: e.id, start: e.start.timeIntervalSince1970, now: startedAt) }
                live.setMeasuredFileEvents { [ledger] in
                    var mapped = SiteSignals()
                    appendEvents(awaitingBaseline, to: &mapped) { ledger.measuredBaselineKW(fileEventID: $0.id) }
                    return mapped.drEvents
                }
            }
            let api: RemoteServe.APIStack
            do { api = try RemoteServe.services(options: apiOptions, store: prepared.store, host: host, now: { time.now }, logger: logger) } catch {
                printError("error: \(error)")
                throw ExitCode(ExitCodes.usage)
            }
            let recorder = api.recorder
            // Every pass that is not a tick (fast paths: API and OpenADR events, under-frequency trips) leaves
            // the same trace as a tick: a decision-log row, an event-log entry and a log line, with its
            // trigger, its duration and what it wrote. (Ticks are recorded below, with their poll time.)
            recorder.tracePasses(of: host, logger: logger) { if !view { LiveView.logLine($0) } }
            var services: [any Service] = [
                FollowingService(host: host) { PollerService(poller: $0.poller, time: time, period: period) },
                HostedControlLoopService(host: host, time: time, period: period, logger: logger, externalPolling: true) { report, took in
                    recorder.tick(report, duration: took, loop: host.current)
                    if ledger?.record(at: report.at, siteKW: report.siteKW) == true { live.refreshOpenADR() }
                    if view { LiveView.render(report, site: siteID) } else { LiveView.logLine(report) }
                },
                FollowingService(host: host) { FrequencyWatchService(loop: $0, time: time, logger: log) },
                FollowingService(host: host) { StateStoreService(loop: $0, store: store, clock: clock, logger: log) },
            ] + api.services
            if let venConfig, let ledger {
                services.append(OpenADRService(ven: OpenADRVEN(config: venConfig.ven), signals: live, ledger: ledger, host: host,
                                               time: time, period: .milliseconds(Int(venConfig.pollS * 1000)), logger: logger))
            }
            if let pricesURL, let url = URL(string: pricesURL) {
                services.append(PriceFeedService(url: url, pollS: pricesPollS, settlementPoint: settlementPoint, signals: live, logger: logger))
            }
            if let hashpriceURL, let url = URL(string: hashpriceURL) {
                services.append(PriceFeedService(.hashprice, url: url, pollS: hashpricePollS, settlementPoint: nil, signals: live, logger: logger))
            }
            if let i2cHardware {
                services.append(HeartbeatService(hardware: i2cHardware, loop: { host.current }, time: time,
                                                 maxTickAgeS: 3 * Double(period.components.seconds == 0 ? 1 : period.components.seconds), logger: logger))
            }
            let group = ServiceGroup(configuration: .init(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            try await group.run()
        }

    }
}

/// The compact terminal view of `make run` (rendered by `LiveFrame`, Sources/Control/LiveFrame.swift), and the one-line log form.
enum LiveView {
    static func render(_ r: TickReport, site: String) {
        print("\u{1B}[H\u{1B}[2J" + LiveFrame.render(r, site: site), terminator: "")
        fflushStdout()
    }

    static func price(_ r: TickReport) -> String { LiveFrame.price(r) }

    static func logLine(_ r: TickReport) {
        let siteKW = r.siteKW.map { mw($0) } ?? "   n/a"
        let fast = r.fastPath.map { " FAST[\($0)] \(String(format: "%.0f", r.durationMS)) ms, \(r.writesSummary);" } ?? ""
        print("\(isoTime(r.at))\(fast) site \(siteKW) cap \(mw(r.limitKW)) mining \(mw(r.miningKW)) inference \(mw(r.inferenceKW)) price \(price(r))\(r.hashpriceUsdPerPHDay.map { String(format: " hashprice $%.2f", $0) } ?? "") mode \(r.mode.rawValue) writes \(r.writes.count)"
              + (r.events.isEmpty ? "" : " events: " + r.events.joined(separator: "; ")))
        fflushStdout()
    }
}
