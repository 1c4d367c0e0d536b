import ArgumentParser
import Daemon
import Foundation
import Logging

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

        /// The daemon's configuration, from the options (already validated).
        var daemonConfig: DaemonConfig {
            var c = DaemonConfig()
            c.stateDir = stateDir
            c.siteFile = siteOptions.siteFile
            c.initialSite = siteOptions.initialSite
            c.profilesDir = siteOptions.profilesDir
            c.listen = apiOptions.listen
            c.tlsCert = apiOptions.tlsCert
            c.tlsKey = apiOptions.tlsKey
            c.insecure = apiOptions.insecure
            c.decisionRetentionDays = apiOptions.decisionRetentionDays
            c.signalsFile = signals
            c.prices = prices
            c.settlementPoint = settlementPoint
            c.hashprice = hashprice
            c.events = events
            c.contracts = contracts
            c.pricesURL = pricesURL.flatMap { URL(string: $0) }
            c.pricesPollS = pricesPollS
            c.hashpriceURL = hashpriceURL.flatMap { URL(string: $0) }
            c.hashpricePollS = hashpricePollS
            c.openadr = openadr
            c.startAt = startAt.flatMap(parseISOTime)
            c.tickMs = tickMs
            c.watchdogS = watchdogS
            c.i2c = i2c
            c.output = view ? .view : .logLines
            return c
        }

        func run() async throws {
            var logger = Logger(label: "switchyard")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .notice
            do { try await SiteDaemon(config: daemonConfig, logger: logger).run() } catch let e as DaemonError {
                printError(e.message)
                switch e.kind {
                case .validation: throw ExitCode(ExitCodes.validation)
                case .usage: throw ExitCode(ExitCodes.usage)
                case .unreachable: throw ExitCode(ExitCodes.unreachable)
                }
            }
        }
    }
}
