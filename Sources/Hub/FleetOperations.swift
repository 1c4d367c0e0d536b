// The hub's fleet operations (issue 18): the fleet sheds and configuration rollouts in progress, driven on a clock.
// The rules live in the pure values (FleetShed, Rollout); this actor feeds them what the host's model knows, sends
// the commands they return through the host (HostCommands.swift), and keeps what the API reports.
//
// - A shed starts from the region's online sites with an offer and a metered import (`shedInputs`): each share
//   goes out as a DR cap (NCMD) until the shed's end, so a partitioned site drops it at expiry by itself. Every
//   `pollInterval` each site's latest metered import is fed to the shed (an offline or stale site as dropped); once
//   per `allocationPeriod` the shed re-allocates what dropped or short sites did not deliver, and the cancels and
//   new caps it returns are sent.
// - A rollout sends the canary's apply command (with the YAML), then each batch once the one before has passed;
//   every poll it is fed each site's answer, its reported configuration SHA-256 and governor mode, and whether it is
//   offline. A command that cannot be sent counts as the site going offline: the rollout stops.
// - With a journal (the hub's store), every shed and rollout is saved whenever its state changes (off the poll:
//   JournalWriter.swift, so a poll never waits on PostgreSQL), and a hub started
//   again carries on with the ones not finished (`restore`). Until their sites are born again to the new hub, or
//   one allocation period has passed, a restored operation waits: a site not yet reborn is not taken for gone.

import Basics
import Foundation
import ServiceLifecycle

public enum FleetOperationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request is wrong (its message says how); nothing was sent.
    case invalid(String)
    /// No such shed or rollout.
    case notFound(String)

    public var description: String {
        switch self { case .invalid(let m), .notFound(let m): m }
    }
}

/// A fleet shed as the API reports it.
public struct FleetShedReport: Sendable, Codable, Equatable {
    public struct Share: Sendable, Codable, Equatable {
        public var site: String
        public var shareMw: Double
        /// The DR cap sent (kW); nil when none is in force (not sent, or refused by the site's rules).
        public var capKw: Double?
        public var usdPerHourLost: Double
        public var baselineKw: Double
        public var latestImportKw: Double
        /// baseline − latest import, from the site's own meter (MW).
        public var meteredMw: Double
        public var offline: Bool
        /// The last command sent to this site for the shed, and the site's answer to it.
        public var commandId: String?
        public var answer: String?
        public var accepted: Bool?
    }
    public struct LeftOut: Sendable, Codable, Equatable {
        public var site: String
        public var reason: String
    }
    public var id: String
    public var region: String
    public var targetMw: Double
    public var from: String
    public var until: String
    public var reason: String
    public var shares: [Share]
    public var leftOut: [LeftOut]
    public var allocatedMw: Double
    public var meteredMw: Double
    public var shortfallMw: Double
    public var usdPerHourLost: Double
    public var ended: Bool
    /// When an operator cancelled it (ISO 8601), if one did.
    public var cancelledAt: String?
    /// scheduled (its start is still to come), active, ended, cancelled, or failed (a scheduled shed that could not
    /// start: `problem` says why). Absent from hubs before scheduled sheds: read it as active or ended.
    public var state: String?
    /// Why a scheduled shed did not start.
    public var problem: String?
}

/// A rollout as the API reports it.
public struct FleetRolloutReport: Sendable, Codable, Equatable {
    public struct Site: Sendable, Codable, Equatable {
        public var site: String
        public var region: String
        public var canary: Bool
        /// waiting, sent, accepted, passed or failed.
        public var state: String
        public var detail: String?
        public var commandId: String?
    }
    public var id: String
    public var sha256: String
    public var comment: String?
    public var batchSize: Int
    /// running, done or stopped.
    public var phase: String
    public var stoppedAt: String?
    public var stopReason: String?
    public var batchesSent: Int
    public var batchCount: Int
    public var sites: [Site]
}

public actor FleetOperations {
    public struct Configuration: Sendable {
        /// How often shares are checked against the meters and re-allocated.
        public var allocationPeriod: Duration
        /// How often the sheds and rollouts are fed what the model knows.
        public var pollInterval: Duration
        /// A rollout site that has not passed this long after its command fails the rollout.
        public var rolloutTimeout: Duration
        /// A site is short when it delivers less than its share minus this (MW).
        public var toleranceMW: Double

        public init(allocationPeriod: Duration = .seconds(30), pollInterval: Duration = .seconds(1),
                    rolloutTimeout: Duration = .seconds(120), toleranceMW: Double = 0.1) {
            self.allocationPeriod = allocationPeriod
            self.pollInterval = pollInterval
            self.rolloutTimeout = rolloutTimeout
            self.toleranceMW = toleranceMW
        }
    }

    struct ShedEntry: Codable {
        var shed: FleetShed
        var from: Double
        var leftOut: [SiteKey: String]
        /// Why a cap for a site was not sent (offline, not connected, …).
        var sendProblems: [SiteKey: String] = [:]
        var caps: [SiteKey: Double] = [:]
        var commands: [SiteKey: String] = [:]
    }

    /// A shed whose start is still to come: nothing is allocated or sent until `from`.
    struct ScheduledEntry: Codable {
        var id: String
        var region: String
        var targetMW: Double
        var from: Double
        var until: Double
        var reason: String
        var cancelledAt: Double?
        /// Set when the start came and no site could take part (the shed is then over).
        var problem: String?
        var finished: Bool { cancelledAt != nil || problem != nil }
    }

    struct RolloutEntry: Codable {
        var rollout: Rollout
        var yaml: String
        var comment: String?
        var regions: [SiteKey: String]
    }

    public let configuration: Configuration
    let host: any FleetCommandHost
    let clock: any Clock<Duration>
    let now: @Sendable () -> Double
    var sheds: [String: ShedEntry] = [:]
    /// Sheds not started yet (and those that never will: cancelled or failed); in `shedOrder` too.
    var scheduled: [String: ScheduledEntry] = [:]
    var shedOrder: [String] = []
    var rollouts: [String: RolloutEntry] = [:]
    var rolloutOrder: [String] = []
    var counter = 0
    let journal: (any FleetOperationsJournal)?
    /// Writes the journal off the poll (JournalWriter.swift).
    let journalWriter: JournalWriter?
    /// What was last handed to the journal for each operation (its JSON), so that only changes are written.
    var saved: [String: Data] = [:]
    /// Operations the journal holds as finished: their state no longer changes, so they are not encoded again.
    var finishedInJournal: Set<String> = []
    /// Restored operations wait until this time (or until all their sites are online again).
    var resumeAt: [String: Double] = [:]
    /// The last failure to write the journal (retried at the next poll), for the hub's log and tests.
    public var journalProblem: String? {
        get async { await journalWriter?.problem }
    }

    /// Finished operations read back at a restart (for the API's lists): those that ended within this long.
    public static let keptFinishedS = 7 * 86_400.0

    /// `now`: seconds since 1970 (the hub's clock; virtual in tests); `clock`: what the poll sleeps on; `journal`:
    /// where the operations are kept across a restart (nil: in memory only).
    public init(host: any FleetCommandHost, configuration: Configuration = .init(), clock: any Clock<Duration> = ContinuousClock(),
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                journal: (any FleetOperationsJournal)? = nil) {
        self.journal = journal
        journalWriter = journal.map { JournalWriter(journal: $0) }
        self.host = host
        self.configuration = configuration
        self.clock = clock
        self.now = now
    }

    /// Polls every `pollInterval` until cancelled (HubService cancels it once the host and the API have stopped).
    public nonisolated func run() async throws {
        let clock = self.clock, interval = configuration.pollInterval
        while !Task.isCancelled {
            do { try await clock.sleep(for: interval) } catch { return }
            await step()
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func nextID(_ prefix: String) -> String {
        counter += 1
        let stamp = Int(now())
        let random = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return "\(prefix)\(stamp)-\(random)-\(counter)"
    }

    // MARK: - Sheds

    /// A shed starting within this long of now starts now.
    static let startsNowS = 1.0

    /// Starts a shed of `targetMW` in `region` at `from` (default: now), until `until` (seconds since 1970). Refused
    /// (nothing sent) when no site is known in the region, or, starting now, none of its sites can take part. A
    /// shed whose `from` is later waits (`state` scheduled): at its start it is allocated over the region's sites
    /// as they are then, or fails with the reason if none can take part.
    public func startShed(region: String, targetMW: Double, from: Double? = nil, until: Double, reason: String) async throws(FleetOperationError) -> FleetShedReport {
        let t = now()
        let start = max(from ?? t, t)
        guard targetMW.isFinite, targetMW > 0 else { throw .invalid("the shed must be a positive, finite number of MW, not \(targetMW)") }
        guard until > start else { throw .invalid("the shed must end after its start (\(ISO8601.format(start))), not at \(ISO8601.format(until))") }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalid("the reason must not be empty") }
        let known = await host.status().filter { $0.region == region }
        guard !known.isEmpty else {
            let regions = Set(await host.status().map(\.region)).sorted()
            throw .invalid("no site is known in region '\(region)' (regions: \(regions.isEmpty ? "none yet" : regions.joined(separator: ", ")))")
        }
        let id = nextID("fs")
        if start > t + Self.startsNowS {
            let entry = ScheduledEntry(id: id, region: region, targetMW: targetMW, from: start, until: until, reason: trimmed)
            scheduled[id] = entry
            shedOrder.append(id)
            await persist()
            return scheduledReport(entry)
        }
        let entry = try await begin(id: id, region: region, targetMW: targetMW, from: t, until: until, reason: trimmed)
        shedOrder.append(id)
        await persist()
        return await report(entry)
    }

    /// Allocates a shed over the region's sites as they are now and sends the caps.
    func begin(id: String, region: String, targetMW: Double, from t: Double, until: Double, reason: String) async throws(FleetOperationError) -> ShedEntry {
        let inputs = host.shedInputs(region: region)
        guard !inputs.sites.isEmpty else {
            let why = inputs.missing.sorted { $0.key.edge < $1.key.edge }.map { "\($0.key.edge): \($0.value)" }.joined(separator: "; ")
            throw .invalid("no site of region '\(region)' can take part in a shed (\(why))")
        }
        var shed = FleetShed(id: id, region: region, targetMW: targetMW, until: until, reason: reason,
                             periodS: Self.seconds(configuration.allocationPeriod), toleranceMW: configuration.toleranceMW)
        let actions = shed.start(now: t, sites: inputs.sites)
        sheds[id] = ShedEntry(shed: shed, from: t, leftOut: inputs.missing)
        await perform(actions, shed: id)
        return sheds[id]!
    }

    /// A scheduled shed whose start has come: begun, or failed with the reason.
    func startScheduled(at t: Double, rows: [SiteStatus]) async {
        for id in shedOrder {
            guard let e = scheduled[id], !e.finished, e.from <= t else { continue }
            // Restored by a hub that just started: wait (at most one allocation period) for the region's sites to be
            // born again, so that sites not yet reborn are not left out.
            if let r = resumeAt[id] {
                if t < r && !rows.filter({ $0.region == e.region }).allSatisfy({ $0.liveness == .online }) { continue }
                resumeAt[id] = nil
            }
            guard t < e.until else {
                scheduled[id]?.problem = "its start (\(ISO8601.format(e.from))) passed while the hub was down, and so did its end"
                continue
            }
            do {
                _ = try await begin(id: id, region: e.region, targetMW: e.targetMW, from: t, until: e.until, reason: e.reason)
                scheduled[id] = nil
            } catch {
                scheduled[id]?.problem = "at its start: \(error)"
            }
        }
    }

    func scheduledReport(_ e: ScheduledEntry) -> FleetShedReport {
        let t = now()
        let state = e.cancelledAt != nil ? "cancelled" : e.problem != nil ? "failed" : "scheduled"
        return FleetShedReport(id: e.id, region: e.region, targetMw: e.targetMW, from: ISO8601.format(e.from), until: ISO8601.format(e.until),
                               reason: e.reason, shares: [], leftOut: [], allocatedMw: 0, meteredMw: 0, shortfallMw: 0, usdPerHourLost: 0,
                               ended: e.finished || t >= e.until, cancelledAt: e.cancelledAt.map { ISO8601.format($0) }, state: state, problem: e.problem)
    }

    /// Sends a shed's actions; a cap that cannot be sent marks the site as dropped (the next period re-allocates).
    func perform(_ actions: [FleetShedAction], shed id: String) async {
        for action in actions {
            switch action {
            case let .cap(site, eventID, capKW, until, reason):
                let r = await host.send(.createEvent(eventID: eventID, capKW: capKW, end: until, reason: reason), to: site, commandID: nil)
                switch r {
                case .sent(let cid):
                    sheds[id]?.caps[site] = capKW
                    sheds[id]?.commands[site] = cid
                    sheds[id]?.sendProblems[site] = nil
                case let .notSent(cid, why):
                    sheds[id]?.caps[site] = nil
                    sheds[id]?.commands[site] = cid
                    sheds[id]?.sendProblems[site] = why
                    sheds[id]?.shed.dropped(site: site)
                }
            case let .cancel(site, eventID):
                let r = await host.send(.cancelEvent(eventID: eventID), to: site, commandID: nil)
                sheds[id]?.caps[site] = nil
                switch r {
                case .sent(let cid): sheds[id]?.commands[site] = cid
                case .notSent: sheds[id]?.shed.cancelNotDelivered(site: site, eventID: eventID)
                }
            }
        }
    }

    /// One poll: every shed and rollout is fed what the model knows, and what they ask for is sent.
    public func step() async {
        let rows = await host.status()
        let byKey = Dictionary(rows.map { ($0.site, $0) }, uniquingKeysWith: { a, _ in a })
        let t = now()
        await startScheduled(at: t, rows: rows)
        for id in shedOrder {
            guard var entry = sheds[id], t < entry.shed.until || !entry.shed.isFinished(now: t) else { continue }
            guard resumed(id, sites: entry.shed.baselineKW.keys, byKey, t) else { continue }
            for site in entry.shed.baselineKW.keys {
                if let row = byKey[site], row.liveness == .online {
                    if let kw = row.importKW, kw.isFinite, entry.sendProblems[site] == nil { entry.shed.observe(site: site, importKW: kw) }
                } else {
                    entry.shed.dropped(site: site)
                }
            }
            let actions = entry.shed.tick(now: t)
            sheds[id] = entry
            if !actions.isEmpty { await perform(actions, shed: id) }
        }
        for id in rolloutOrder {
            guard var entry = rollouts[id], entry.rollout.phase == .running else { continue }
            guard resumed(id, sites: entry.rollout.sites, byKey, t) else { continue }
            var actions: [RolloutAction] = []
            for site in entry.rollout.sites {
                if let cid = entry.rollout.commandIDs[site], let reply = host.reply(commandID: cid) {
                    actions += entry.rollout.observe(.answered(site, commandID: cid, accepted: reply.accepted, result: reply.result), now: t)
                }
                if let row = byKey[site], row.liveness == .online {
                    actions += entry.rollout.observe(.reported(site, configSHA256: row.configSHA256, mode: row.governorMode ?? ""), now: t)
                } else {
                    actions += entry.rollout.observe(.offline(site), now: t)
                }
            }
            actions += entry.rollout.tick(now: t)
            rollouts[id] = entry
            await perform(actions, rollout: id)
        }
        await persist()
    }

    /// Whether a restored operation may go on: its sites are all online again, or its wait is over.
    func resumed(_ id: String, sites: some Sequence<SiteKey>, _ byKey: [SiteKey: SiteStatus], _ t: Double) -> Bool {
        guard let until = resumeAt[id] else { return true }
        if t < until && !sites.allSatisfy({ byKey[$0]?.liveness == .online }) { return false }
        resumeAt[id] = nil
        return true
    }

    // MARK: - Journal

    static let journalEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    /// Hands every operation whose state changed since it was last handed over to the journal's writer, which writes
    /// it off the poll (JournalWriter.swift). A failed write is kept as `journalProblem` and tried again at the next
    /// poll (the state in memory stays the truth meanwhile).
    func persist() async {
        guard let journalWriter else { return }
        let t = now()
        var writes: [JournalWriter.Write] = []
        for id in shedOrder where !finishedInJournal.contains(id) {
            if let e = scheduled[id] {
                guard let data = try? Self.journalEncoder.encode(e), saved[id] != data else { continue }
                writes.append(.init(id: id, kind: "scheduled shed", finished: e.finished, data: data))
                continue
            }
            guard let e = sheds[id], let data = try? Self.journalEncoder.encode(e), saved[id] != data else { continue }
            writes.append(.init(id: id, kind: "shed", finished: e.shed.isFinished(now: t), data: data))
        }
        for id in rolloutOrder where !finishedInJournal.contains(id) {
            guard let e = rollouts[id], let data = try? Self.journalEncoder.encode(e), saved[id] != data else { continue }
            writes.append(.init(id: id, kind: "rollout", finished: e.rollout.phase != .running, data: data))
        }
        for w in writes {
            saved[w.id] = w.data
            if w.finished { finishedInJournal.insert(w.id) }
        }
        await journalWriter.submit(writes)
    }

    /// Waits until the journal's writer has written what it was handed (one round: a write that fails stays for the
    /// next poll). The hub's graceful shutdown, and tests.
    public func flushJournal() async {
        await journalWriter?.flush()
    }

    /// Reads the journal back (a hub starting again): the sheds and rollouts not finished carry on, those finished
    /// within `keptFinishedS` are listed again. Returns how many were restored that are still in progress.
    @discardableResult
    public func restore() async throws -> Int {
        guard let journal else { return 0 }
        let t = now()
        let grace = Self.seconds(configuration.allocationPeriod)
        var running = 0
        let decoder = JSONDecoder()
        for row in try await journal.operations(finishedWithin: Self.keptFinishedS) where sheds[row.id] == nil && scheduled[row.id] == nil && rollouts[row.id] == nil {
            switch row.kind {
            case "scheduled shed":
                // Started at the first poll once its time has come (as if it had been scheduled on this hub).
                let e = try decoder.decode(ScheduledEntry.self, from: row.state)
                scheduled[row.id] = e
                shedOrder.append(row.id)
                if !e.finished { resumeAt[row.id] = t + grace; running += 1 }
            case "shed":
                let e = try decoder.decode(ShedEntry.self, from: row.state)
                sheds[row.id] = e
                shedOrder.append(row.id)
                if !e.shed.isFinished(now: t) { resumeAt[row.id] = t + grace; running += 1 }
            case "rollout":
                let e = try decoder.decode(RolloutEntry.self, from: row.state)
                rollouts[row.id] = e
                rolloutOrder.append(row.id)
                if e.rollout.phase == .running { resumeAt[row.id] = t + grace; running += 1 }
            default:
                continue
            }
            saved[row.id] = row.state
        }
        return running
    }

    /// Cancels a shed: its caps are withdrawn now (from an offline site, when it is heard again before the end).
    public func cancelShed(id: String) async throws(FleetOperationError) -> FleetShedReport {
        let t = now()
        if let e = scheduled[id] {
            // Not started: nothing was sent, so nothing is withdrawn.
            guard !e.finished else {
                throw .invalid("fleet shed '\(id)' \(e.cancelledAt.map { "was cancelled at \(ISO8601.format($0))" } ?? "did not start"): nothing to cancel")
            }
            scheduled[id]?.cancelledAt = t
            await persist()
            return scheduledReport(scheduled[id]!)
        }
        guard var entry = sheds[id] else { throw .notFound("no fleet shed '\(id)'") }
        guard let actions = entry.shed.cancel(now: t) else {
            let when = entry.shed.cancelledAt.map { "was cancelled at \(ISO8601.format($0))" } ?? "ended at \(ISO8601.format(entry.shed.until))"
            throw .invalid("fleet shed '\(id)' \(when): nothing to cancel")
        }
        resumeAt[id] = nil
        sheds[id] = entry
        await perform(actions, shed: id)
        await persist()
        entry = sheds[id]!
        return await report(entry)
    }

    public func shedReports() async -> [FleetShedReport] {
        var out: [FleetShedReport] = []
        for id in shedOrder {
            if let e = scheduled[id] { out.append(scheduledReport(e)) } else if let e = sheds[id] { out.append(await report(e)) }
        }
        return out
    }

    public func shedReport(id: String) async throws(FleetOperationError) -> FleetShedReport {
        if let e = scheduled[id] { return scheduledReport(e) }
        guard let e = sheds[id] else { throw .notFound("no fleet shed '\(id)'") }
        return await report(e)
    }

    func report(_ e: ShedEntry) async -> FleetShedReport {
        let shed = e.shed
        let delivered = shed.deliveredMW
        let t = now()
        var shares: [FleetShedReport.Share] = []
        for s in (shed.allocation?.shares ?? []).sorted(by: { $0.site.edge < $1.site.edge }) {
            let cid = e.commands[s.site]
            let reply = cid.flatMap { host.reply(commandID: $0) }
            shares.append(.init(site: s.site.edge, shareMw: s.mw, capKw: e.caps[s.site], usdPerHourLost: s.dollarsPerHour,
                                baselineKw: shed.baselineKW[s.site] ?? 0, latestImportKw: shed.latestKW[s.site] ?? 0,
                                meteredMw: delivered[s.site] ?? 0, offline: shed.offline.contains(s.site), commandId: cid,
                                answer: reply?.result, accepted: reply?.accepted))
        }
        var leftOut = e.leftOut.map { FleetShedReport.LeftOut(site: $0.key.edge, reason: $0.value) }
        for (site, why) in shed.refused { leftOut.append(.init(site: site.edge, reason: "cap not sent: \(why)")) }
        for (site, why) in e.sendProblems { leftOut.append(.init(site: site.edge, reason: why)) }
        for s in shed.allocation?.shares ?? [] where s.mw <= 1e-9 && e.leftOut[s.site] == nil && e.sendProblems[s.site] == nil {
            leftOut.append(.init(site: s.site.edge, reason: shed.offline.contains(s.site) ? "offline: its share went to the others"
                                                                                          : "no share: the target is met by sites that lose less per MW"))
        }
        leftOut.sort { ($0.site, $0.reason) < ($1.site, $1.reason) }
        let allocated = shed.allocation?.allocatedMW ?? 0
        return FleetShedReport(id: shed.id, region: shed.region, targetMw: shed.targetMW, from: ISO8601.format(e.from),
                               until: ISO8601.format(shed.until), reason: shed.reason, shares: shares.filter { $0.shareMw > 1e-9 },
                               leftOut: leftOut, allocatedMw: allocated, meteredMw: delivered.values.reduce(0, +),
                               shortfallMw: max(0, shed.targetMW - allocated), usdPerHourLost: shed.allocation?.dollarsPerHour ?? 0,
                               ended: t >= shed.endsAt, cancelledAt: shed.cancelledAt.map { ISO8601.format($0) },
                               state: shed.cancelledAt != nil ? "cancelled" : t >= shed.endsAt ? "ended" : "active", problem: nil)
    }

    // MARK: - Rollouts

    /// Starts a rollout of `yaml` over `sites` (the first is the canary). Refused (nothing sent) when a site is not
    /// known or not online.
    public func startRollout(yaml: String, sites: [SiteKey], batchSize: Int, comment: String?) async throws(FleetOperationError) -> FleetRolloutReport {
        guard !yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw .invalid("the configuration is empty") }
        guard yaml.utf8.count <= 1 << 20 else { throw .invalid("the configuration is \(yaml.utf8.count) bytes; at most \(1 << 20) go in a command") }
        guard (1...1000).contains(batchSize) else { throw .invalid("the batch size must be 1…1000, not \(batchSize)") }
        guard !sites.isEmpty else { throw .invalid("a rollout needs at least one site") }
        let rows = Dictionary(await host.status().map { ($0.site, $0) }, uniquingKeysWith: { a, _ in a })
        for s in sites {
            guard let row = rows[s] else { throw .invalid("no site \(s) in the fleet") }
            guard row.liveness == .online else { throw .invalid("site \(s) is \(row.liveness): a rollout starts only with every site online") }
        }
        let sha = SHA256.hex(yaml)
        let id = nextID("ro")
        var rollout = Rollout(id: id, sha256: sha, sites: sites, batchSize: batchSize, timeoutS: Self.seconds(configuration.rolloutTimeout))
        let actions = rollout.start(now: now())
        rollouts[id] = RolloutEntry(rollout: rollout, yaml: yaml, comment: comment, regions: Dictionary(sites.map { ($0, $0.group) }, uniquingKeysWith: { a, _ in a }))
        rolloutOrder.append(id)
        await perform(actions, rollout: id)
        await persist()
        return rolloutReport(rollouts[id]!)
    }

    func perform(_ actions: [RolloutAction], rollout id: String) async {
        var queue = actions
        while !queue.isEmpty {
            let action = queue.removeFirst()
            guard let entry = rollouts[id] else { return }
            switch action {
            case .apply(let targets):
                for target in targets {
                    let r = await host.send(.applyConfig(sha256: entry.rollout.sha256, yaml: entry.yaml, comment: entry.comment),
                                            to: target.site, commandID: target.commandID)
                    if case .notSent = r {
                        // Not sent: the rollout stops here (it treats the site as gone).
                        if var e = rollouts[id] {
                            queue += e.rollout.observe(.offline(target.site), now: now())
                            rollouts[id] = e
                        }
                    }
                }
            }
        }
    }

    public func rolloutReports() -> [FleetRolloutReport] { rolloutOrder.compactMap { rollouts[$0].map(rolloutReport) } }

    public func rolloutReport(id: String) throws(FleetOperationError) -> FleetRolloutReport {
        guard let e = rollouts[id] else { throw .notFound("no rollout '\(id)'") }
        return rolloutReport(e)
    }

    func rolloutReport(_ e: RolloutEntry) -> FleetRolloutReport {
        let r = e.rollout
        var phase = "running", stoppedAt: String?, stopReason: String?
        switch r.phase {
        case .running: break
        case .done: phase = "done"
        case let .stopped(site, reason): phase = "stopped"; stoppedAt = site.edge; stopReason = reason
        }
        let sites = r.sites.enumerated().map { i, s -> FleetRolloutReport.Site in
            var state = "waiting", detail: String?
            switch r.states[s] ?? .waiting {
            case .waiting: break
            case .sent: state = "sent"
            case .accepted: state = "accepted"; detail = "awaiting a tick under the new configuration"
            case .passed: state = "passed"
            case .failed(let why): state = "failed"; detail = why
            }
            if let cid = r.commandIDs[s], let reply = host.reply(commandID: cid), detail == nil { detail = reply.result }
            return .init(site: s.edge, region: s.group, canary: i == 0, state: state, detail: detail, commandId: r.commandIDs[s])
        }
        return FleetRolloutReport(id: r.id, sha256: r.sha256, comment: e.comment, batchSize: r.batchSize, phase: phase,
                                  stoppedAt: stoppedAt, stopReason: stopReason, batchesSent: r.batchesSent, batchCount: r.batchCount,
                                  sites: sites)
    }
}
