// Feeds for the daemon (`serve`): price series (ERCOT settlement-point CSV, generic CSV/JSON) and manual
// DR events, loaded with the Signals module and merged into the site's signals.

import Control
import Foundation
import Logging
import ServiceLifecycle
import Signals
import Site

/// Adds the price series, events and contracts of `--prices` / `--events` / `--contracts` to `signals`.
/// Errors are one line with file and line (from the Signals loaders). Returns the paid reductions of
/// `--events` that bring no baseline: they wait for a measured one (`CurtailmentLedger.watchBaseline`).
@discardableResult
func mergeFeeds(into signals: inout SiteSignals, prices: String?, settlementPoint: String?, events: String?,
                hashprice: String? = nil, contracts: String? = nil, site: Site? = nil) throws -> [Signals.DREvent] {
    if let hashprice {
        let series = try SeriesLoader.load(path: hashprice, options: SeriesOptions(quantity: .hashprice))
        signals.hashpriceSeries += series.points.map { .init(at: $0.start.timeIntervalSince1970, usdPerPHDay: $0.value) }
        signals.hashpriceSeries.sort { $0.at < $1.at }
    }
    if let prices {
        let series = try SeriesLoader.load(path: prices, options: SeriesOptions(quantity: .price, settlementPoint: settlementPoint))
        signals.energyPrices += series.points.map { .init(at: $0.start.timeIntervalSince1970, usdPerMWh: $0.value) }
        signals.energyPrices.sort { $0.at < $1.at }
    }
    if let contracts {
        // A contract calendar, as replay's --contracts: weekly windows in its time zone (DST aware), valued at spot.
        let calendar = try ContractCalendar.load(path: contracts)
        for c in calendar.contracts {
            for id in c.deviceIDs where site.map({ $0.device(id)?.deviceClass != .inference }) ?? false {
                throw DaemonError(.validation, "\(contracts): error: contract '\(c.id)' names device '\(id)', which is not an inference device in the site file")
            }
            var c = c
            c.timeZone = c.timeZone ?? calendar.timeZone
            signals.contracts.append(c)
        }
    }
    guard let events else { return [] }
    let loaded = try ManualEvents.load(path: events)
    let waiting = Set(appendEvents(loaded, to: &signals))
    return loaded.filter { waiting.contains($0.id) }
}

/// Puts the events (manual or OpenADR) that are broker inputs into the signals: import caps, and paid reductions
/// with a baseline: their own, else `baseline(event)` (serve's OpenADR events: the curtailment ledger's figure, the
/// one its report sends). With neither, a paid reduction is left out until one is known, never valued against 0 kW.
/// Returns the ids left out. (`SiteDispatch.resolve` maps the events to the broker's caps and paid reduction.)
@discardableResult
func appendEvents(_ events: [Signals.DREvent], to signals: inout SiteSignals,
                  baseline: (Signals.DREvent) -> Double? = { _ in nil }) -> [String] {
    var waiting: [String] = []
    for e in events {
        switch e.action {
        case .importCap:
            signals.drEvents.append(e)
        case .paidReduction(let usd, let own):
            guard let b = baseline(e) ?? own else { waiting.append(e.id); continue }
            var valued = e
            valued.action = .paidReduction(usdPerMWh: usd, baselineKW: b)
            signals.drEvents.append(valued)
        default:
            continue  // price and level events are not caps; the price feed carries prices
        }
    }
    return waiting
}

/// `--openadr FILE` (JSON): where the VTN is and how to authenticate.
struct OpenADRConfigFile: Decodable {
    var vtn_url: String
    var token_url: String
    var client_id: String
    var client_secret: String
    var client_auth: String?
    var ven_name: String?
    var programs: [String]?
    var poll_s: Double?
    /// Progress curtailment reports while an event interval is in force, seconds (0: final reports only).
    var report_s: Double?
    /// The window before an event whose mean measured import is its baseline (when the event has none), seconds.
    var baseline_window_s: Double?

    /// What `serve` needs from the file.
    struct Loaded {
        var ven: VENConfig
        var pollS: Double
        var reports: CurtailmentLedger.Options
    }

    static func load(path: String) throws -> Loaded {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DaemonError(.validation, "\(path): error: cannot read the OpenADR config (\(error.localizedDescription))")
        }
        let c: OpenADRConfigFile
        do { c = try JSONDecoder().decode(OpenADRConfigFile.self, from: data) } catch {
            throw DaemonError(.validation, "\(path): error: not a valid OpenADR config: \(error)")
        }
        guard let vtn = URL(string: c.vtn_url), vtn.scheme != nil, let token = URL(string: c.token_url), token.scheme != nil else {
            throw DaemonError(.validation, "\(path): error: vtn_url and token_url must be absolute URLs")
        }
        guard let auth = OAuthClientAuth(rawValue: c.client_auth ?? "basic") else {
            throw DaemonError(.validation, "\(path): error: client_auth must be basic or body")
        }
        let poll = c.poll_s ?? 30
        guard poll >= 1 else { throw DaemonError(.validation, "\(path): error: poll_s must be at least 1") }
        let reports = CurtailmentLedger.Options(baselineWindowS: c.baseline_window_s ?? 900, reportEveryS: c.report_s ?? 300)
        guard reports.reportEveryS == 0 || reports.reportEveryS >= 1 else { throw DaemonError(.validation, "\(path): error: report_s must be 0 (final reports only) or at least 1") }
        guard reports.baselineWindowS >= 1, reports.baselineWindowS <= 86_400 else {
            throw DaemonError(.validation, "\(path): error: baseline_window_s must be 1…86400")
        }
        return Loaded(ven: VENConfig(vtnURL: vtn, tokenURL: token, clientID: c.client_id, clientSecret: c.client_secret, clientAuth: auth,
                                     venName: c.ven_name ?? "switchyard", programNames: c.programs.map(Set.init)),
                      pollS: poll, reports: reports)
    }
}

/// Polls the VTN, puts its events into the signals, runs the fast path when a new event is in force,
/// and reports the curtailment of each event interval back to the VTN (see `CurtailmentLedger`).
struct OpenADRService<C: Clock>: Service where C.Duration == Duration {
    let ven: OpenADRVEN
    let signals: LiveSignals
    let ledger: CurtailmentLedger
    let host: LoopHost
    let time: LoopTime<C>
    let period: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var announced: Set<String> = []
            while !Task.isCancelled {
                do {
                    let snapshot = try await ven.poll()
                    let now = time.now
                    let explicit = explicitBaselines(snapshot)
                    ledger.observe(snapshot.drEvents, explicitBaselines: explicit, now: now)
                    // Paid reductions are valued against the same baseline the curtailment report sends:
                    // the event's own, else the measured mean import before it (re-mapped once the ledger has it).
                    let events = snapshot.drEvents
                    signals.setOpenADREvents { [ledger] in
                        var mapped = SiteSignals()
                        appendEvents(events, to: &mapped) { ledger.baselineKW(for: $0, explicit: explicit) }
                        return mapped.drEvents
                    }
                    for e in snapshot.drEvents where e.isActive(at: Date(timeIntervalSince1970: now)) && !announced.contains(e.id) {
                        announced.insert(e.id)
                        logger.notice("OpenADR event in force", metadata: ["event.id": "\(e.id)", "event.reason": "\(e.reason)"])
                        await host.current.fastPath(now: now, reason: "OpenADR event \(e.id)")
                    }
                } catch {
                    logger.warning("OpenADR poll failed", metadata: ["error": "\(error)"])
                }
                // Reports are queued on loop time and sent (or retried) after every poll, even a failed one.
                for note in ledger.queueDue(now: time.now) {
                    logger.warning("OpenADR curtailment report skipped", metadata: ["report.note": "\(note)"])
                }
                await ven.flush(ledger, logger: logger)
                do { try await time.clock.sleep(for: period) } catch { break }
            }
        }
    }
}
