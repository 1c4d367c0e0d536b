// The controller daemon (`switchyard serve`): the store and the configuration to start with,
// the signals (files and live feeds), the control loop and everything that runs beside it,
// composed as one swift-service-lifecycle `ServiceGroup`. `serve` parses its options into a
// `DaemonConfig` and runs a `SiteDaemon`; tests run one in-process.

import API
import Basics
import Control
import FleetEdge
import Foundation
import I2C
import Logging
import Modbus
import ServiceLifecycle
import Signals
import Site
import Sparkplug
import Store

/// What the daemon runs: plain values (`serve` builds them from its options).
public struct DaemonConfig: Sendable {
    /// Where state is persisted: the store, the loop state, the OpenADR report journal.
    public var stateDir = "./state"
    /// `--site`: runs, and is stored as a new version if it differs from the stored one.
    public var siteFile: String?
    /// `--initial-site`: used only while the state directory holds no configuration.
    public var initialSite: String?
    public var profilesDir: String?

    /// The API: HOST:PORT (port 0: any free port), TLS, plain HTTP off loopback, decision-log retention.
    public var listen = "127.0.0.1:8443"
    public var tlsCert: String?
    public var tlsKey: String?
    public var insecure = false
    public var decisionRetentionDays = 7.0

    /// Signals file (JSON), price series file, ERCOT settlement point, hashprice series, manual DR events.
    public var signalsFile: String?
    public var prices: String?
    public var settlementPoint: String?
    public var hashprice: String?
    public var events: String?
    /// Contract calendar (weekly windows in a time zone, DST aware), as replay's `--contracts`.
    public var contracts: String?
    /// Polled HTTP(S) series, and their poll periods in seconds.
    public var pricesURL: URL?
    public var pricesPollS = 60.0
    public var hashpriceURL: URL?
    public var hashpricePollS = 300.0
    /// OpenADR 3 VEN config file (JSON).
    public var openadr: String?

    /// Loop time at start, seconds since 1970 (nil: now).
    public var startAt: Double?
    /// Tick period in milliseconds (nil: the site's tick_s).
    public var tickMs: Int?
    /// Comm watchdog written to every container on start, seconds (0: leave as is).
    public var watchdogS = 30.0
    /// I2C config file (JSON); nil: I2C disabled.
    public var i2c: String?
    /// Between two attempts to reach the fleet broker (the site file's `fleet:` section).
    public var fleetRetryDelay = Duration.seconds(2)
    /// The fleet store-and-forward buffer's bound in samples (7 days of 1 s ticks) when the site file's `fleet.buffer_samples`
    /// does not give one, and the backfill's pace.
    public var fleetBufferCapacity = StoreAndForwardOptions.defaultCapacity
    public var fleetBackfill = BackfillThrottle()
    /// Fleet commands waiting at most (past it the newest are dropped and logged), and how many may change the loop
    /// per tick (docs/fleet.md, "Commands").
    public var fleetCommandQueueCapacity = CommandQueueOptions.defaultCapacity
    public var fleetCommandsPerTick = CommandQueueOptions.defaultPerTick
    /// When the edge node takes a tick: this long after the tick instant on the loop's clock (nil: a quarter of the tick
    /// period, so the loop's tick is done and the hook resumes nothing). Tests on a manual clock use zero: their time
    /// moves only when they advance it, so the node takes each tick at the advance that made it (the hook wakes it then).
    public var fleetWakePhase: Duration?
    /// Where the fleet buffer is; nil (always, outside tests): the site's store.
    public var fleetBuffer: (any FleetBufferStorage)?

    /// What goes to stdout: a log line per pass (and the API's address), the live view, or nothing.
    public enum Output: Sendable { case logLines, view, silent }
    public var output = Output.logLines
    /// SIGTERM and SIGINT shut the daemon down gracefully (off for a daemon run inside a test process).
    public var handlesSignals = true
    /// The site's devices: nil (`serve`): Modbus over the wire, one client per gateway (`ModbusClientPool`).
    /// A simulated fleet (`sim --fleet`) passes the simulator's in-memory buses here.
    public var buses: (@Sendable (Site) -> [String: any RegisterBus])?

    public init() {}

    /// The file named in messages.
    var siteName: String { siteFile ?? initialSite ?? "the stored configuration" }
}

/// A start-up failure, as the one line `serve` prints, and the kind of exit it means.
public struct DaemonError: Error, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Bad input: a file that does not load, a configuration that does not build.
        case validation
        /// Nothing to run, or a bad API address.
        case usage
        /// The state directory cannot be opened.
        case unreachable
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// What a caller may watch while the daemon runs.
public struct DaemonHooks: Sendable {
    /// The API is bound: its URL and port.
    public var apiListening: @Sendable (_ url: String, _ port: Int) -> Void
    /// After every tick (not fast paths), with its report.
    public var tick: @Sendable (TickReport) -> Void
    /// The edge node's runner events and store-and-forward (with a `fleet:` section).
    public var fleet: @Sendable (EdgeNodeEvent) -> Void = { _ in }
    public var storeAndForward: @Sendable (StoreAndForwardEvent) -> Void = { _ in }
    public var fleetCommands: @Sendable (FleetCommandQueueEvent) -> Void = { _ in }

    public init(apiListening: @escaping @Sendable (_ url: String, _ port: Int) -> Void = { _, _ in },
                tick: @escaping @Sendable (TickReport) -> Void = { _ in }) {
        self.apiListening = apiListening
        self.tick = tick
    }
}

/// The controller: poll, dispatch, govern and write setpoints every tick until a graceful shutdown (SIGTERM,
/// or the enclosing `ServiceGroup`'s), which leaves the devices safe (mining at 0, inference to its comm
/// watchdog's fallback) and saves the loop state. A `Service`: run it alone or inside a group. Cancelling the task
/// that runs it also ends it, but without that last safe pass (its writes are cancelled too): stop it gracefully.
public struct SiteDaemon<C: Clock>: Service where C.Duration == Duration {
    public let config: DaemonConfig
    /// The loop's clock (ticks, polls, state saves, OpenADR polls). Production: `ContinuousClock`.
    public let clock: C
    public let logger: Logger
    public let hooks: DaemonHooks

    public init(config: DaemonConfig, clock: C, logger: Logger, hooks: DaemonHooks = .init()) {
        self.config = config
        self.clock = clock
        self.logger = logger
        self.hooks = hooks
    }

    /// Starts (throws `DaemonError` if it cannot), then runs until shut down.
    public func run() async throws {
        let config = self.config
        let logger = self.logger
        let hooks = self.hooks
        let prepared = try Startup.prepare(config, logger: logger)
        let (site, profiles) = (prepared.site, prepared.profiles)
        var siteSignals = SiteSignals()
        if let signals = config.signalsFile {
            do { siteSignals = try SiteSignals.load(path: signals) } catch { throw DaemonError(.validation, "\(error)") }
        }
        let awaitingBaseline: [Signals.DREvent]
        do {
            awaitingBaseline = try mergeFeeds(into: &siteSignals, prices: config.prices, settlementPoint: config.settlementPoint,
                                              events: config.events, hashprice: config.hashprice,
                                              contracts: config.contracts, site: site)
        } catch {
            throw DaemonError(.validation, "\(error)")
        }
        var venConfig: OpenADRConfigFile.Loaded?
        if let openadr = config.openadr {
            do { venConfig = try OpenADRConfigFile.load(path: openadr) } catch { throw DaemonError(.validation, "\(error)") }
        }
        let live = LiveSignals(base: siteSignals)
        let source = try live.makeSource(site: site)
        let pool = ModbusClientPool()
        let makeBuses: @Sendable (Site) -> [String: any RegisterBus] = config.buses ?? { pool.buses(for: $0) }
        let buses = makeBuses(site)
        try FileManager.default.createDirectory(atPath: config.stateDir, withIntermediateDirectories: true)
        let store = StateFile(directory: config.stateDir)
        let restored: LoopState?
        do { restored = try store.load() } catch {
            throw DaemonError(.validation, "\(store.path): error: cannot read saved state: \(error)")
        }
        let loop: ControlLoop
        do {
            loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source,
                                   options: ControlOptions(commWatchdogS: config.watchdogS), restoring: restored ?? LoopState())
        } catch {
            throw DaemonError(.validation, "\(config.siteName): error: \(error)")
        }
        if restored != nil { logger.notice("resumed from saved state", metadata: ["path": "\(store.path)"]) }
        var i2cHardware: I2CHardware?
        if let i2c = config.i2c {
            do {
                let i2cConfig = try JSONDecoder().decode(I2CConfig.self, from: Data(contentsOf: URL(fileURLWithPath: i2c)))
                i2cHardware = try await I2CHardware.open(i2cConfig)
            } catch {
                throw DaemonError(.validation, "\(i2c): error: \(error)")
            }
        } else {
            logger.notice("I2C disabled: no --i2c config given")
        }
        let clock = self.clock
        let time = LoopTime(clock: clock, startingAt: config.startAt ?? Date().timeIntervalSince1970)
        let period = Duration.milliseconds(config.tickMs ?? Int(site.tickSeconds * 1000))
        let output = config.output
        let siteID = site.id
        let (profilesDir, watchdog, log) = (config.profilesDir, config.watchdogS, logger)
        // A loop built for a new configuration starts from the live signals (files plus the feeds' latest data).
        let host = LoopHost(loop: loop) { newSite, state in
            try ControlLoop(site: newSite, profiles: try Startup.profiles(for: newSite, profilesDir: profilesDir),
                            buses: makeBuses(newSite), signals: try live.makeSource(site: newSite),
                            options: ControlOptions(commWatchdogS: watchdog), restoring: state)
        }
        live.attach(host)
        // Measured site import of every tick, when something needs it: the baselines of paid reductions that
        // bring none (OpenADR events and --events alike, one rule with replay's: MeasuredBaseline), and OpenADR
        // curtailment reports. Without either, the tick records nothing.
        let ledger = venConfig == nil && awaitingBaseline.isEmpty ? nil : CurtailmentLedger(
            options: venConfig?.reports ?? .init(),
            journal: venConfig.map { _ in URL(fileURLWithPath: config.stateDir).appendingPathComponent("openadr-reports.json") })
        if let ledger, !awaitingBaseline.isEmpty {
            let startedAt = time.now
            for e in awaitingBaseline { ledger.watchBaseline(fileEventID: e.id, start: e.start.timeIntervalSince1970, now: startedAt) }
            live.setMeasuredFileEvents { [ledger] in
                var mapped = SiteSignals()
                appendEvents(awaitingBaseline, to: &mapped) { ledger.measuredBaselineKW(fileEventID: $0.id) }
                return mapped.drEvents
            }
        }
        let api: Startup.APIStack
        do {
            api = try Startup.services(config, store: prepared.store, host: host, now: { time.now }, logger: logger) { url, port in
                if output != .silent {
                    print("switchyard API listening on \(url)")
                    fflushStdout()
                }
                hooks.apiListening(url, port)
            }
        } catch {
            throw DaemonError(.usage, "error: \(error)")
        }
        let recorder = api.recorder
        // The site as a Sparkplug B edge node when the site file has a `fleet:` section (docs/fleet.md). The tick
        // hook only hands the report over (`offer` never waits); the service publishes on its own task.
        let edge = site.fleet.map { fleet in
            EdgeNodeService(fleet: fleet, bdSeqPath: URL(fileURLWithPath: config.stateDir).appendingPathComponent("sparkplug-bdseq").path,
                            logger: logger, config: { [store = prepared.store] in (try? store.latestConfig()).map { ConfigStamp(version: Int64($0.version), sha256: $0.sha256) } },
                            retryDelay: config.fleetRetryDelay,
                            commands: FleetCommandProcessor.forDaemon(fleet: fleet, stateDir: config.stateDir, store: prepared.store,
                                                                      runtime: HostedRuntime(host: host, now: { time.now }), logger: logger),
                            // Woken on the loop's clock a quarter period after each tick: the tick hook resumes nothing.
                            pacing: .clock(clock, period: period, phase: config.fleetWakePhase ?? period / 4),
                            observe: hooks.fleet)
        }
        // Store-and-forward: the buffer in the site's store (docs/fleet.md).
        let fleetEdge = edge.map { service in
            var service = service
            // The bound: the site file's `fleet.buffer_samples`, else the daemon's (7 days of 1 s ticks).
            service.storeAndForward = StoreAndForwardOptions(buffer: config.fleetBuffer ?? StoreFleetBuffer(store: prepared.store),
                                                             capacity: service.fleet.bufferSamples ?? config.fleetBufferCapacity,
                                                             throttle: config.fleetBackfill, observe: hooks.storeAndForward)
            service.commandQueue = CommandQueueOptions(capacity: config.fleetCommandQueueCapacity, perTick: config.fleetCommandsPerTick,
                                                       observe: hooks.fleetCommands)
            return service
        }
        // Every pass that is not a tick (fast paths: API and OpenADR events, under-frequency trips) leaves
        // the same trace as a tick: a decision-log row, an event-log entry and a log line, with its
        // trigger, its duration and what it wrote. (Ticks are recorded below, with their poll time.)
        recorder.tracePasses(of: host, logger: logger) { if output == .logLines { LiveView.logLine($0) } }
        // A ServiceGroup shuts its services down in reverse order: the state service is listed first so that it
        // stops last, after the loop's last (safe) pass, and saves the setpoints that pass wrote.
        var services: [any Service] = [
            FollowingService(host: host) { StateStoreService(loop: $0, store: store, clock: clock, logger: log) },
            FollowingService(host: host) { PollerService(poller: $0.poller, time: time, period: period) },
            HostedControlLoopService(host: host, time: time, period: period, logger: logger, externalPolling: true) { report, took in
                recorder.tick(report, duration: took, loop: host.current)
                if ledger?.record(at: report.at, siteKW: report.siteKW) == true { live.refreshOpenADR() }
                switch output {
                case .view: LiveView.render(report, site: siteID)
                case .logLines: LiveView.logLine(report)
                case .silent: break
                }
                fleetEdge?.offer(report, loop: host.current)
                hooks.tick(report)
            },
            FollowingService(host: host) { FrequencyWatchService(loop: $0, time: time, logger: log) },
        ] + api.services
        if let fleetEdge { services.append(fleetEdge) }
        do {
            // One HTTP client for the feeds and the VEN, shut down when the group has stopped.
            try await withHTTPClient { httpClient in
                let http = HTTPClientTransport(client: httpClient)
                var services = services
                if let venConfig, let ledger {
                    services.append(OpenADRService(ven: OpenADRVEN(config: venConfig.ven, transport: http), signals: live, ledger: ledger,
                                                   host: host, time: time, period: .milliseconds(Int(venConfig.pollS * 1000)), logger: logger))
                }
                if let url = config.pricesURL {
                    services.append(PriceFeedService(url: url, pollS: config.pricesPollS, settlementPoint: config.settlementPoint,
                                                     transport: http, signals: live, logger: logger))
                }
                if let url = config.hashpriceURL {
                    services.append(PriceFeedService(.hashprice, url: url, pollS: config.hashpricePollS, settlementPoint: nil,
                                                     transport: http, signals: live, logger: logger))
                }
                if let i2cHardware {
                    services.append(HeartbeatService(hardware: i2cHardware, loop: { host.current }, time: time,
                                                     maxTickAgeS: 3 * Double(period.components.seconds == 0 ? 1 : period.components.seconds), logger: logger))
                }
                let group = ServiceGroup(configuration: .init(
                    services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                    gracefulShutdownSignals: config.handlesSignals ? [.sigterm, .sigint] : [],
                    logger: logger))
                try await group.run()
            }
        } catch {
            await pool.closeAll()
            throw error
        }
        await pool.closeAll()
    }
}

extension SiteDaemon where C == ContinuousClock {
    /// The daemon on the wall clock (production).
    public init(config: DaemonConfig, logger: Logger, hooks: DaemonHooks = .init()) {
        self.init(config: config, clock: ContinuousClock(), logger: logger, hooks: hooks)
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
        let siteKW = r.siteKW.map { LiveFrame.mw($0) } ?? "   n/a"
        let fast = r.fastPath.map { " FAST[\($0)] \(String(format: "%.0f", r.durationMS)) ms, \(r.writesSummary);" } ?? ""
        print("\(ISO8601.format(r.at))\(fast) site \(siteKW) cap \(LiveFrame.mw(r.limitKW)) mining \(LiveFrame.mw(r.miningKW)) inference \(LiveFrame.mw(r.inferenceKW)) price \(price(r))\(r.hashpriceUsdPerPHDay.map { String(format: " hashprice $%.2f", $0) } ?? "") mode \(r.mode.rawValue) writes \(r.writes.count)"
              + (r.events.isEmpty ? "" : " events: " + r.events.joined(separator: "; ")))
        fflushStdout()
    }
}
