// The fleet's chaos soak on virtual time (issue 18; docs/fleet.md, "Chaos soak"): 40 simulated sites (real
// SiteDaemons at the demo site's 1 s tick, one ManualClock), the hub (`HubService`) in-process on the same clock, a
// throwaway PostgreSQL and Debian's mosquitto. Every site's edge node reaches the broker through a `TCPRelay` of its
// own, and the hub reaches the broker and PostgreSQL through two more, so the soak can cut links. A seeded plan of
// chaos runs while virtual time moves one second at a time (each second: every site's tick, then one poll of the
// hub's fleet operations):
// - WAN partitions: a site's relay cut (both sides closed, reconnects refused) and healed later;
// - a broker restart (mosquitto stopped and started on the same port: every session and retained message gone);
// - a hub kill -9: the hub's relays cut at once (the broker sees the socket drop and publishes the hub's will, STATE
//   offline; the hub's in-flight PostgreSQL writes die), its task cancelled and discarded, and after a downtime a new
//   HubService on the same database;
// - PostgreSQL restarts: one `pg_ctl stop -m fast` and one SIGKILL of every server process, each down for a while
//   before starting again on the same data directory;
// - regional sheds through the hub's fleet operations, some while sites are partitioned.
// Then every link is healed, the buffers backfill, and the pass figures are taken from the sites' own tick reports and
// the hub's PostgreSQL: cap violations, lost samples, commands in force after their expiry.
//
// The soak moves virtual time only once every edge node a disruption reaches has seen its connection end (its
// `.offline` event), and cuts a link only once the hub has the last tick's import from the sites it cuts: the real
// gap is milliseconds, less than a tick, and live data handed to a connection that then fails before the node notices
// is QoS 0 and lost by design (docs/fleet.md, "Store-and-forward"), a window this soak does not measure.

import Basics
import Control
import FleetEdge
import FleetSim
import Foundation
@testable import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

struct ChaosSoak {
    var sites = 40
    /// Virtual seconds of chaos, then `cooldown` seconds with every link up.
    var seconds = 600
    var cooldown = 60
    var seed: UInt64 = 18
    var partitions = 12
    /// Prints each chaos event as it happens.
    var verbose = ProcessInfo.processInfo.environment["SWITCHYARD_SOAK_VERBOSE"] != nil

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let startAt = 1_795_680_000.0
    /// The governor's rule for an import cap that comes down: one tick plus the ramp time (the demo site's 1,300 kW
    /// containers at 50 kW/s: 26 s) plus five times the simulated devices' 2 s lag, as the replay engine counts it.
    static let capGraceS = 1.0 + 26 + 5 * 2

    enum Chaos: Sendable, CustomStringConvertible {
        case cut(String), heal(String)
        case brokerRestart
        case hubKill, hubStart
        case pgStop(crash: Bool), pgStart
        case shed(region: String, fraction: Double, seconds: Int)

        var description: String {
            switch self {
            case .cut(let s): "partition \(s)"
            case .heal(let s): "heal \(s)"
            case .brokerRestart: "broker restart"
            case .hubKill: "hub kill -9"
            case .hubStart: "hub start"
            case .pgStop(let crash): crash ? "PostgreSQL SIGKILL" : "PostgreSQL stop (fast)"
            case .pgStart: "PostgreSQL start"
            case let .shed(region, fraction, seconds): "shed \(region) \(Int(fraction * 100)) % of its offers for \(seconds) s"
            }
        }
    }

    /// The seeded plan: second → what happens at its start.
    func plan(regions: [String], siteIDs: [String]) -> [Int: [Chaos]] {
        var rng = SeededRandom(seed: seed)
        var plan: [Int: [Chaos]] = [:]
        let warmup = 40
        func at(_ lo: Int, _ hi: Int) -> Int { lo + Int(rng.next() % UInt64(max(1, hi - lo))) }
        let span = seconds
        // Partitions: 5 s to a tenth of the soak (at most 2 h), anywhere after the warm-up.
        for _ in 0..<partitions {
            let site = siteIDs[Int(rng.next() % UInt64(siteIDs.count))]
            let start = at(warmup, span - 10)
            let length = at(5, max(6, min(span / 10, 7200)))
            plan[start, default: []].append(.cut(site))
            plan[min(span, start + length), default: []].append(.heal(site))
        }
        // One of each: the broker, the hub (down 5–60 s), PostgreSQL stopped (fast) and killed (down 5–60 s each).
        // PostgreSQL's outages in the first half; the hub's kill anywhere after the first outage began, so it may
        // strike while the hub's records wait in its spool for the store.
        plan[at(warmup, span - 10), default: []].append(.brokerRestart)
        let half = warmup + (span - warmup) / 2
        var firstStop = half
        for crash in [false, true] {
            let stop = at(warmup, half - 15)
            firstStop = min(firstStop, stop)
            plan[stop, default: []].append(.pgStop(crash: crash))
            plan[stop + at(5, min(60, half - stop)), default: []].append(.pgStart)
        }
        let kill = at(firstStop + 1, span - 70)
        plan[kill, default: []].append(.hubKill)
        plan[kill + at(5, 60), default: []].append(.hubStart)
        // Sheds: one every ~span/6 s in a random region, 60–600 s long.
        var t = warmup
        while t < span - 30 {
            let region = regions[Int(rng.next() % UInt64(regions.count))]
            plan[t, default: []].append(.shed(region: region, fraction: 0.2 + Double(rng.next() % 50) / 100, seconds: at(60, 600)))
            t += at(span / 12, span / 4)
        }
        return plan
    }

    /// What the soak measured.
    struct Figures: Sendable, CustomStringConvertible {
        var sites = 0
        var virtualSeconds = 0
        var siteTicks = 0
        var realSeconds = 0.0
        /// Where the real time went: waiting for every site's tick after each advance of the clock, the hub's fleet
        /// operations poll after it, and the chaos events (with their waits for the hub and the edge nodes).
        var tickWaitSeconds = 0.0, operationsSeconds = 0.0, chaosSeconds = 0.0
        /// The chaos events' real time by kind (the first word of each: partition, heal, shed, …).
        var chaosSecondsByKind: [String: Double] = [:]
        var chaos: [String] = []
        var capViolations: [String] = []
        var expiredCommandsInForce: [String] = []
        var lostSamples: [String] = []
        var lostSampleCount = 0
        var wrongSamples: [String] = []
        var storedSamples = 0
        var historicalSamples = 0
        var sheds = 0
        var commandsSent = 0
        /// Commands the hub sent (HostEvent.commandSent) that PostgreSQL does not hold at the end, or holds with another
        /// status than the site's answer the hub took (every command is recorded before it goes out: HostCommands.swift).
        var unrecordedCommands: [String] = []
        var answeredCommands = 0
        var recordsDropped = 0
        /// The hub's spool file at the end (it is only emptied past 64 MiB): what the soak's records took on disk.
        var spoolBytes = 0
        var sinkFailures = 0
        var sinkErrors: [String] = []

        var description: String {
            """
            chaos soak: \(sites) sites, \(virtualSeconds) s of virtual time (\(siteTicks) site-ticks) in \(String(format: "%.1f", realSeconds)) s of real time (ticks \(String(format: "%.1f", tickWaitSeconds)) s, fleet operations \(String(format: "%.1f", operationsSeconds)) s, chaos events \(String(format: "%.1f", chaosSeconds)) s: \(chaosSecondsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1f", $0.value))" }.joined(separator: ", ")))
              chaos: \(chaos.count) events (\(chaos.prefix(60).joined(separator: "; ")))
              sheds: \(sheds), commands sent: \(commandsSent) (answers taken: \(answeredCommands), not in PostgreSQL as sent or answered: \(unrecordedCommands.count) \(unrecordedCommands.prefix(5))); hub sink failures: \(sinkFailures) \(sinkErrors), records dropped: \(recordsDropped), spool: \(spoolBytes) bytes
              cap violations: \(capViolations.count) \(capViolations.prefix(5))
              commands in force after their expiry: \(expiredCommandsInForce.count) \(expiredCommandsInForce.prefix(5))
              lost samples after backfill: \(lostSampleCount) \(lostSamples.prefix(5)); wrong values: \(wrongSamples.count) \(wrongSamples.prefix(5))
              Site/Import kW rows in PostgreSQL: \(storedSamples), of them historical: \(historicalSamples)
            """
        }
    }

    /// One tick as the soak keeps it.
    struct TickRow: Sendable {
        var at: Double
        var importKW: Double?
        var limitKW: Double
        var events: [String]
    }

    /// Every site's ticks and edge-node events, from the fleet's hooks.
    final class Observed: Sendable {
        let ticks = Mutex<[String: [TickRow]]>([:])
        /// Per site: .offline events seen, and whether the node is born now.
        let links = Mutex<[String: (offline: Int, born: Bool)]>([:])
        let hub = Mutex<(dropped: Int, sinkFailures: Int, errors: [String])>((0, 0, []))
        /// Per site: the import values a second subscriber saw in its NBIRTH and NDATA (kind, timestamp, value).
        let tapped = Mutex<[String: [(kind: String, at: UInt64, value: Double?)]]>([:])
        /// Per site: what the hub said of it (rebirth requests, refused messages), with the virtual time, for diagnosis.
        let hubSaid = Mutex<[String: [String]]>([:])
        /// The hub's commands as it reported them: id → sent (published), and the site's answer if the hub took one.
        let commands = Mutex<(sent: Set<String>, answered: [String: Bool])>(([], [:]))

        func tick(_ site: String, _ r: TickReport) {
            // Only the DR events' lines are kept (a 24 h soak keeps 3.5 M rows).
            let dr = r.events.contains { $0.hasPrefix("DR ") } ? r.events.filter { $0.hasPrefix("DR ") } : []
            let row = TickRow(at: r.at, importKW: r.siteKW, limitKW: r.limitKW, events: dr)
            ticks.withLock { $0[site, default: []].append(row) }
        }

        func edge(_ site: String, _ e: EdgeNodeEvent) {
            links.withLock { l in
                var v = l[site] ?? (0, false)
                switch e {
                case .born: v.born = true
                case .offline: v.offline += 1; v.born = false
                default: break
                }
                l[site] = v
            }
        }

        func offlineCounts() -> [String: (offline: Int, born: Bool)] { links.withLock { $0 } }
    }

    /// A hub: its task (cancelled to kill it), its fleet operations, and its relays to the broker and PostgreSQL.
    final class HubRun: Sendable {
        let task: Task<Void, any Error>
        let operations: FleetOperations
        let alive: Alive
        init(task: Task<Void, any Error>, operations: FleetOperations, alive: Alive) {
            self.task = task
            self.operations = operations
            self.alive = alive
        }
    }

    /// Cleared at a hub's kill: what the killed hub's task still reports of its commands (a killed process reports
    /// nothing) is ignored. A command or answer reported before is already in its spool (queued before it is reported).
    final class Alive: Sendable {
        let value = Atomic<Bool>(true)
        var isAlive: Bool { value.load(ordering: .acquiring) }
        func kill() { value.store(false, ordering: .releasing) }
    }

    /// Polls `condition` until it holds or `limit` of real time has passed (the condition is another thread's: a
    /// socket noticed, a birth, a write; virtual time does not move meanwhile).
    static func eventually(_ limit: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while clock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return try await condition()
    }

    func run() async throws -> Figures {
        var figures = Figures()
        let started = ContinuousClock.now
        let spec = try FleetSpec.parse(yaml: try String(contentsOfFile: Self.root.appendingPathComponent("examples/fleet.yaml").path, encoding: .utf8),
                                       file: "fleet.yaml", directory: Self.root.appendingPathComponent("examples").path)
        let entries = Array(spec.sites.prefix(sites))
        let ids = entries.map(\.id)
        let regions = Array(Set(entries.map(\.region))).sorted()
        figures.sites = ids.count
        let plan = plan(regions: regions, siteIDs: ids)
        var logger = Logger(label: "chaos-soak")
        logger.logLevel = .critical

        return try await withPostgres { pg in
            let broker = try await MosquittoBroker.start()
            defer { broker.stop() }
            let siteRelays = try Dictionary(uniqueKeysWithValues: ids.map { ($0, try TCPRelay(targetPort: broker.port)) })
            let hubMQTT = try TCPRelay(targetPort: broker.port)
            let hubPG = try TCPRelay(targetPort: pg.port)
            defer {
                for r in siteRelays.values { r.stop() }
                hubMQTT.stop()
                hubPG.stop()
            }
            let storeConfig = HubStoreConfiguration(host: "127.0.0.1", port: hubPG.port, username: pg.username, database: pg.database)
            try await HubStore.withRunning(storeConfig, logger: logger) { s in _ = try await s.migrate() }
            let clock = ManualClock()
            let now: @Sendable () -> Double = { Self.startAt + FleetOperations.seconds(clock.now.offset) }
            let observed = Observed()
            // A second subscriber straight on the broker (no relay), for diagnosis: what each site published of its
            // import, as the broker passed it on, beside what the hub stored.
            let tap = Task.detached { await Self.tapImports(port: broker.port, into: observed) }
            defer { tap.cancel() }
            let ticks = FleetTicks()

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-chaos-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            func startHub() async throws -> HubRun {
                let (opsStream, opsIn) = AsyncStream.makeStream(of: FleetOperations.self)
                let alive = Alive()
                let hub = HubService(
                    configuration: HubConfiguration(
                        host: HostConfiguration(hostID: "hub", mqtt: MQTTConfiguration(host: "127.0.0.1", port: hubMQTT.port, clientID: "switchyard-hub"),
                                                retryDelay: .milliseconds(50), sinkRetryDelay: .milliseconds(50),
                                                spoolDirectory: dir.appendingPathComponent("hub-spool").path),
                        store: storeConfig, apiHost: "127.0.0.1", apiPort: 0,
                        // The soak runs each poll itself, after every second of virtual time.
                        operations: .init(allocationPeriod: .seconds(30), pollInterval: .seconds(86_400), rolloutTimeout: .seconds(60))),
                    logger: logger,
                    observe: { e in
                        switch e {
                        case .recordsDropped(let total): observed.hub.withLock { $0.dropped = max($0.dropped, total) }
                        case .commandSent(_, let id) where alive.isAlive: observed.commands.withLock { _ = $0.sent.insert(id) }
                        case .commandAnswered(_, let id, let accepted) where alive.isAlive: observed.commands.withLock { $0.answered[id] = accepted }
                        case .rebirthRequested(let key):
                            let at = now()
                            observed.hubSaid.withLock { $0[key.edge, default: []].append("\(at): rebirth requested") }
                        case .received(let topic, let problem?):
                            let at = now()
                            if case let .node(_, _, edge) = topic {
                                observed.hubSaid.withLock { $0[edge, default: []].append("\(at): refused: \(problem)") }
                            }
                        case .sinkFailed(let why): observed.hub.withLock { h in
                            h.sinkFailures += 1
                            if h.errors.count < 5 { h.errors.append(String(why.prefix(200))) }
                        }
                        default: break
                        }
                    },
                    clock: clock, now: now, onOperations: { opsIn.yield($0); opsIn.finish() })
                // Ends the stream if the hub ends before its operations are built (then this throws, not hangs).
                let task = Task {
                    defer { opsIn.finish() }
                    try await hub.run()
                }
                var it = opsStream.makeAsyncIterator()
                guard let ops = await it.next() else {
                    let why: String
                    switch await task.result { case .success: why = "it returned"; case .failure(let e): why = "\(e)" }
                    throw TestSupportError.peerFailed("the hub ended before its operations were built: \(why)")
                }
                return HubRun(task: task, operations: ops, alive: alive)
            }

            // One SimulatedFleet per site (each keeps the seed of its place in the spec), each to its own relay.
            let fleets = try ids.map { id in
                try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: siteRelays[id]!.port, workDir: dir,
                                   profilesDir: Self.root.appendingPathComponent("hardware-profiles").path, clock: clock,
                                   startAt: Self.startAt, fleetRetryDelay: .milliseconds(50), logger: logger,
                                   hooks: SimulatedFleetHooks(tick: { site, r in observed.tick(site, r); ticks.tick(site) },
                                                              fleet: { site, e in observed.edge(site, e) }),
                                   only: [id])
            }
            let group = ServiceGroup(services: fleets, logger: logger)
            var hub: HubRun? = try await startHub()
            let all = Set(ids)

            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                await ticks.wait(for: all, since: [:])

                func second() async throws {
                    let before = ticks.mark()
                    let t0 = ContinuousClock.now
                    clock.advance(by: .seconds(1))
                    guard await ticks.wait(for: all, since: before, limit: .seconds(60)) else {
                        throw TestSupportError.peerFailed("not every site ticked within 60 s of real time at \(now())")
                    }
                    let t1 = ContinuousClock.now
                    await hub?.operations.step()
                    figures.tickWaitSeconds += FleetOperations.seconds(t1 - t0)
                    figures.operationsSeconds += FleetOperations.seconds(ContinuousClock.now - t1)
                    figures.virtualSeconds += 1
                }
                /// The hub has the import each of `sites` that is born last published (bounded; see the header). The
                /// edge node service wakes a quarter tick after each tick (TickPacing.clock), so the newest tick is
                /// usually published in the next second of virtual time and the one before it is the last one sent;
                /// but the wake and the tick fire on the same clock advance, so the newest can be on its way already
                /// (a 12-site run lost a tick cut off so, the QoS 0 window this soak does not measure).
                func settle(_ sites: [String]) async {
                    guard let ops = hub?.operations else { return }
                    let links = observed.offlineCounts()
                    let latest = observed.ticks.withLock { t in Dictionary(uniqueKeysWithValues: sites.map { ($0, t[$0]?.dropLast().last?.importKW) }) }
                    let born = sites.filter { links[$0]?.born == true }
                    // The newest tick may already be on its way (the service woke after it): wait up to 1 s of real
                    // time for the hub to have it too, else it is published next second (after the disruption).
                    // Report by exception: a tick within the import's deadband of the value the hub holds is not
                    // sent, so the hub "has" it then (as checkSamples counts); exact equality made every cut wait
                    // out both bounds (6 s of real time each).
                    let newest = observed.ticks.withLock { t in Dictionary(uniqueKeysWithValues: sites.map { ($0, t[$0]?.last?.importKW) }) }
                    let deadband = FleetMetricName.deadbands[FleetMetricName.importKW] ?? .default
                    func holds(_ hub: Double??, _ tick: Double??) -> Bool {
                        guard let hub, let tick else { return false }
                        guard let h = hub, let v = tick else { return hub == nil && tick == nil }
                        return abs(h - v) <= deadband.width(around: h) + 1e-9
                    }
                    _ = await Self.eventually(.seconds(1)) {
                        let rows = Dictionary(uniqueKeysWithValues: await ops.host.status().map { ($0.edge, $0.importKW) })
                        return born.allSatisfy { holds(rows[$0], newest[$0]) }
                    }
                    _ = await Self.eventually(.seconds(5)) {
                        let rows = Dictionary(uniqueKeysWithValues: await ops.host.status().map { ($0.edge, $0.importKW) })
                        return born.allSatisfy { holds(rows[$0], latest[$0]) || holds(rows[$0], newest[$0]) }
                    }
                }
                /// Waits until each of `sites` born before `action` has seen its connection end.
                func disrupt(_ sites: [String], _ action: () async throws -> Void) async throws {
                    await settle(sites)
                    let before = observed.offlineCounts()
                    try await action()
                    let affected = sites.filter { before[$0]?.born == true }
                    let ok = await Self.eventually {
                        let now = observed.offlineCounts()
                        return affected.allSatisfy { (now[$0]?.offline ?? 0) > (before[$0]?.offline ?? 0) }
                    }
                    if !ok { throw TestSupportError.peerFailed("not every edge node saw its connection end: \(affected)") }
                }

                // Warm-up: every site born (and offering) before the chaos starts.
                var warm = 0
                while warm < 300 {
                    if let ops = hub?.operations, await ops.host.status().filter({ $0.liveness == .online && $0.offer != nil }).count == ids.count { break }
                    try await second()
                    warm += 1
                }
                var sheds: [(id: String, until: Double)] = []
                var hubPending = false
                var killed: [HubRun] = []
                for t in 0..<(seconds + cooldown) {
                    let chaosStart = ContinuousClock.now
                    for chaos in plan[t] ?? [] {
                        figures.chaos.append("\(t) s: \(chaos)")
                        let eventStart = ContinuousClock.now
                        defer {
                            let kind = String(chaos.description.prefix { $0 != " " })
                            figures.chaosSecondsByKind[kind, default: 0] += FleetOperations.seconds(ContinuousClock.now - eventStart)
                        }
                        if verbose {
                            let rows = pg.isRunning ? ((try? await pg.psql("SELECT count(*) FROM samples"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?") : "-"
                            print("chaos soak: \(Date()) \(t) s: \(chaos) (samples rows: \(rows))")
                            if pg.isRunning, let activity = try? await pg.psql("""
                                SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), now() - query_start, left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
                                FROM pg_stat_activity WHERE datname = 'postgres' AND pid <> pg_backend_pid()
                                """) { print(activity) }
                        }
                        switch chaos {
                        case .cut(let site):
                            try await disrupt([site]) { siteRelays[site]!.cutLink() }
                        case .heal(let site):
                            siteRelays[site]!.heal()
                        case .brokerRestart:
                            try await disrupt(ids) { try await broker.restart() }
                        case .hubKill:
                            guard let h = hub else { break }
                            // Whatever the hub has taken and not yet written is in its spool; the next hub writes it
                            // first. So the kill comes whenever the plan says, with no wait for the store.
                            await settle(ids)
                            let host = await h.operations.host as? HostApplication
                            try await disrupt(ids) {
                                h.alive.kill()
                                hubMQTT.cutLink()
                                hubPG.cutLink()
                                // A killed process's files close with it (and its spool's lock goes).
                                host?.abandonSpool()
                                h.task.cancel()
                            }
                            // Discarded, not awaited: a kill does not wait for the process to wind down (and a
                            // cancelled HubService whose connections were cut was seen not to end for minutes).
                            killed.append(h)
                            hub = nil
                        case .hubStart:
                            guard hub == nil else { break }
                            hubMQTT.heal()
                            hubPG.heal()
                            // A hub cannot start without its database (`switchyard hub` exits; its supervisor starts
                            // it again): with PostgreSQL down, it starts once PostgreSQL is back.
                            if pg.isRunning { hub = try await startHub() } else { hubPending = true }
                        case .pgStop(let crash):
                            guard pg.isRunning else { break }
                            if crash { await pg.crash() } else { await pg.stopKeepingData() }
                        case .pgStart:
                            guard !pg.isRunning else { break }
                            try await pg.restart()
                            if hubPending {
                                hub = try await startHub()
                                hubPending = false
                            }
                        case let .shed(region, fraction, length):
                            guard let ops = hub?.operations else { break }
                            let offers = await ops.host.status().filter { $0.region == region && $0.liveness == .online }
                                .reduce(0.0) { $0 + ($1.offer ?? []).reduce(0) { $0 + $1.mw } }
                            let target = (offers * fraction * 10).rounded(.down) / 10
                            guard target > 0 else { break }
                            if let shed = try? await ops.startShed(region: region, targetMW: target, until: now() + Double(length), reason: "chaos soak") {
                                sheds.append((shed.id, now() + Double(length)))
                                figures.sheds += 1
                            }
                        }
                    }
                    figures.chaosSeconds += FleetOperations.seconds(ContinuousClock.now - chaosStart)
                    // The cool-down: every link up again.
                    if t == seconds {
                        for r in siteRelays.values { r.heal() }
                        if !pg.isRunning { try await pg.restart() }
                    }
                    try await second()
                }
                figures.siteTicks = observed.ticks.withLock { $0.values.reduce(0) { $0 + $1.count } }

                // Every site born again and every buffer drained into PostgreSQL: the sample check holds, or has not
                // improved for 30 s of real time.
                let until = now() - 1
                var check = try await Self.checkSamples(pg, observed: observed, until: until)
                var last = (check.lost, ContinuousClock.now)
                while check.lost > 0, ContinuousClock.now - last.1 < .seconds(30) {
                    try await Task.sleep(for: .milliseconds(200))
                    check = try await Self.checkSamples(pg, observed: observed, until: until)
                    if check.lost < last.0 { last = (check.lost, ContinuousClock.now) }
                }
                figures.lostSampleCount = check.lost
                figures.lostSamples = check.lostWhere
                // A loss is shown with what the hub stored and what the site reported around it (for diagnosis).
                for (entry, run) in zip(check.lostWhere, check.lostRuns).prefix(3) {
                    let site = run.site, from = Double(run.fromMS) / 1000
                    let window = (from - 60)...(from + 8)
                    let rows = (try? await pg.psql("""
                        SELECT (extract(epoch FROM x.at) * 1000)::bigint, x.value, x.historical FROM samples x JOIN sites s ON s.id = x.site_id
                        WHERE s.edge_id = '\(site)' AND x.metric = '\(FleetMetricName.importKW)' AND x.device = ''
                          AND x.at BETWEEN to_timestamp(\(window.lowerBound)) AND to_timestamp(\(window.upperBound)) ORDER BY 1
                        """)) ?? "?"
                    let births = (try? await pg.psql("""
                        SELECT b.bd_seq, (extract(epoch FROM b.at) * 1000)::bigint FROM births b JOIN sites s ON s.id = b.site_id
                        WHERE s.edge_id = '\(site)' AND b.device = '' ORDER BY 2
                        """)) ?? "?"
                    let ticks = observed.ticks.withLock { $0[site] ?? [] }.filter { window.contains($0.at) }
                        .map { "\($0.at): \(String(describing: $0.importKW))" }
                    print("chaos soak: lost \(entry)\n  stored around it:\n\(rows)  reported: \(ticks)\n  births: \(births.split(separator: "\n").joined(separator: "; "))")
                    print("  the hub said of \(site): \(observed.hubSaid.withLock { $0[site] ?? [] }.suffix(20))")
                    let tapped = observed.tapped.withLock { $0[site] ?? [] }.filter { window.contains(Double($0.at) / 1000) }
                    print("  the broker passed on for \(site) (a second subscriber): \(tapped.map { "\($0.kind) \($0.at): \($0.value.map { String($0) } ?? "-")" })")
                }
                if check.lost > 0 {
                    // What the broker said about its clients meanwhile: a subscriber that falls 1,000 packets behind
                    // has QoS 0 messages dropped ("Outgoing messages are being dropped"), a publisher likewise.
                    let said = broker.log.split(separator: "\n").filter { $0.contains("dropped") || $0.contains("Client") && $0.contains("disconnected") }
                    print("chaos soak: broker log, dropping and disconnects (\(said.count) lines):\n  " + said.suffix(60).joined(separator: "\n  "))
                }
                // Every command sent is in PostgreSQL, and every answer the hub took decided its command's status
                // (or 30 s of real time have passed: the records wait behind the samples checked above).
                var unrecorded = try await Self.unrecordedCommands(pg, observed: observed)
                let commandsBy = ContinuousClock.now + .seconds(30)
                while !unrecorded.isEmpty, ContinuousClock.now < commandsBy {
                    try await Task.sleep(for: .milliseconds(200))
                    unrecorded = try await Self.unrecordedCommands(pg, observed: observed)
                }
                figures.unrecordedCommands = unrecorded
                (figures.commandsSent, figures.answeredCommands) = observed.commands.withLock { ($0.sent.count, $0.answered.count) }
                figures.wrongSamples = check.wrong
                figures.storedSamples = check.stored
                figures.historicalSamples = check.historical
                figures.spoolBytes = ((try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("hub-spool/\(RecordSpool.spoolName)").path))?[.size] as? Int) ?? 0
                figures.capViolations = Self.capViolations(observed)
                figures.expiredCommandsInForce = Self.expiredInForce(observed, sheds: sheds)
                (figures.recordsDropped, figures.sinkFailures, figures.sinkErrors) = observed.hub.withLock { ($0.dropped, $0.sinkFailures, $0.errors) }

                await group.triggerGracefulShutdown()
                // The last hub is cancelled too, and waited for at most 20 s of real time (see `killed`).
                if let h = hub {
                    h.task.cancel()
                    let ended = Mutex(false)
                    let waiter = Task { _ = await h.task.result; ended.withLock { $0 = true } }
                    if !(await Self.eventually(.seconds(20)) { ended.withLock { $0 } }) {
                        print("chaos soak: the cancelled hub had not ended after 20 s")
                    }
                    _ = waiter
                }
                _ = killed
                struct ShutdownTimeout: Error {}
                tasks.addTask { try await Task.sleep(for: .seconds(20)); throw ShutdownTimeout() }
                do { try await tasks.next() } catch is ShutdownTimeout { print("chaos soak: the fleet's shutdown had not ended after 20 s: cancelled") }
                tasks.cancelAll()
                while let _ = try? await tasks.next() {}
            }
            figures.realSeconds = FleetOperations.seconds(ContinuousClock.now - started)
            return figures
        }
    }

    /// Every `Site/Import kW` row of the hub: edge → [(ms, value, historical)].
    static func importRows(_ pg: PostgresServer) async throws -> [String: [(at: Int64, value: Double?, historical: Bool)]] {
        let text = try await pg.psql("""
            SELECT s.edge_id, (extract(epoch FROM x.at) * 1000)::bigint, x.value, x.historical FROM samples x JOIN sites s ON s.id = x.site_id
            WHERE x.metric = '\(FleetMetricName.importKW)' AND x.device = '' ORDER BY s.edge_id, x.at
            """)
        var out: [String: [(at: Int64, value: Double?, historical: Bool)]] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false)
            guard f.count == 4, let at = Int64(f[1]) else { continue }
            out[String(f[0]), default: []].append((at, Double(f[2]), f[3] == "t"))
        }
        return out
    }

    /// The commands the hub reported sent that `commands` lacks, and those whose status is not the answer the hub took.
    static func unrecordedCommands(_ pg: PostgresServer, observed: Observed) async throws -> [String] {
        let text = try await pg.psql("SELECT id, status FROM commands")
        var stored: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false)
            if f.count == 2 { stored[String(f[0])] = String(f[1]) }
        }
        let (sent, answered) = observed.commands.withLock { ($0.sent, $0.answered) }
        var out: [String] = []
        for id in sent.sorted() where stored[id] == nil { out.append("\(id): sent, not recorded") }
        for (id, accepted) in answered.sorted(by: { $0.key < $1.key }) {
            let want = accepted ? "acknowledged" : "rejected"
            if let have = stored[id], have != want { out.append("\(id): answered \(want), recorded \(have)") }
        }
        return out
    }

    /// Subscribes to every site's NBIRTH and NDATA straight on the broker (reconnecting after a broker restart) and
    /// records the import metric each carried, until cancelled.
    static func tapImports(port: Int, into observed: Observed) async {
        while !Task.isCancelled {
            let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "soak-tap-\(UUID().uuidString.prefix(8))"))
            var events = client.events.makeAsyncIterator()
            do {
                try await client.connect(will: nil)
                events: while let e = await events.next() {
                    switch e {
                    case .connected:
                        try await client.subscribe("spBv1.0/+/NDATA/#", qos: 0)
                        try await client.subscribe("spBv1.0/+/NBIRTH/#", qos: 0)
                    case .message(let m):
                        let parts = m.topic.split(separator: "/")
                        guard parts.count >= 4, let p = try? SparkplugPayload(decoding: m.payload) else { continue }
                        let historical = p.metrics.contains { $0.isHistorical }
                        for metric in p.metrics where metric.name == FleetMetricName.importKW {
                            var v: Double?
                            if case .double(let d)? = metric.value { v = d }
                            let kind = String(parts[2]) + (historical ? " historical" : "") + " seq \(p.seq.map(String.init) ?? "-")"
                            observed.tapped.withLock { $0[String(parts[3]), default: []].append((kind, metric.timestamp ?? 0, v)) }
                        }
                    case .disconnected, .connectionRefused:
                        break events
                    }
                }
            } catch {}
            client.close()
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Lost: a tick whose import the hub's series does not give: there is no row at or before it, or the latest one
    /// is further from the tick's value than the metric's deadband (report by exception: the edge node sends a value
    /// once it moved past the deadband from the value last sent, and buffers every tick while not born). Wrong: a row
    /// whose value is not the site's at that time, or at a time no tick had. A fast path reports at the loop time of
    /// its pass, which may be a tick's: any value reported at a time counts for it. Ticks after `until` are left
    /// out (the newest tick is published in the next second of virtual time).
    static func checkSamples(_ pg: PostgresServer, observed: Observed, until: Double) async throws
        -> (lost: Int, lostWhere: [String], lostRuns: [(site: String, fromMS: Int64)], wrong: [String], stored: Int, historical: Int) {
        let rows = try await importRows(pg)
        let ticks = observed.ticks.withLock { $0 }
        let deadband = FleetMetricName.deadbands[FleetMetricName.importKW] ?? .default
        var lost = 0, lostWhere: [String] = [], lostRuns: [(site: String, fromMS: Int64)] = [], wrong: [String] = [], stored = 0, historical = 0
        for (site, series) in ticks.sorted(by: { $0.key < $1.key }) {
            let have = rows[site] ?? []
            stored += have.count
            historical += have.filter(\.historical).count
            // Each reported time (ms) and the values reported at it, in time order.
            var byAt: [Int64: [Double?]] = [:]
            var times: [Int64] = []
            for t in series where t.at <= until {
                let ms = Int64((t.at * 1000).rounded())
                if byAt[ms] == nil { times.append(ms) }
                byAt[ms, default: []].append(t.importKW)
            }
            for r in have {
                guard let vs = byAt[r.at] else {
                    if Double(r.at) / 1000 <= until { wrong.append("\(site) \(r.at): no tick at that time") }
                    continue
                }
                if !vs.contains(where: { same($0, r.value) }) {
                    wrong.append("\(site) \(r.at): stored \(String(describing: r.value)), reported \(vs)")
                }
            }
            var i = 0
            var run: (from: Int64, to: Int64, n: Int)?
            func close() {
                if let r = run {
                    lostWhere.append("\(site): \(r.n) ticks \(ISO8601.format(Double(r.from) / 1000))…\(ISO8601.format(Double(r.to) / 1000))")
                    lostRuns.append((site, r.from))
                }
            }
            for ms in times {
                while i < have.count, have[i].at <= ms { i += 1 }
                // Live data is by exception: the hub's value holds until the site's moves past the deadband.
                let ok = i > 0 && byAt[ms]!.contains { v in
                    guard let v, let h = have[i - 1].value else { return v == nil && have[i - 1].value == nil }
                    return abs(v - h) <= deadband.width(around: h) + 1e-9
                }
                if !ok {
                    lost += 1
                    if let r = run, r.to >= ms - 1500 { run = (r.from, ms, r.n + 1) } else { close(); run = (ms, ms, 1) }
                }
            }
            close()
        }
        return (lost, lostWhere, lostRuns, wrong, stored, historical)
    }

    static func same(_ a: Double?, _ b: Double?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (x?, y?): abs(x - y) <= 1e-9 * max(1, abs(x))
        default: false
        }
    }

    /// A tick whose measured import is over the cap in force, once the cap has held for the grace after it came down.
    static func capViolations(_ observed: Observed) -> [String] {
        var out: [String] = []
        for (site, series) in observed.ticks.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            var since = series.first?.at ?? 0
            var previous = Double.infinity
            for t in series {
                if t.limitKW < previous - 1e-9 { since = t.at }
                previous = t.limitKW
                if let kw = t.importKW, kw > t.limitKW + 1e-6, t.at - since > capGraceS {
                    out.append("\(site) at \(ISO8601.format(t.at)): \(Int(kw)) kW over its \(Int(t.limitKW)) kW cap (in force since \(ISO8601.format(since)))")
                }
            }
        }
        return out
    }

    /// A tick at or after a shed's end whose active events still name one of the shed's DR events.
    static func expiredInForce(_ observed: Observed, sheds: [(id: String, until: Double)]) -> [String] {
        var out: [String] = []
        for (site, series) in observed.ticks.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            for t in series {
                for shed in sheds where t.at >= shed.until && t.events.contains(where: { $0.hasPrefix("DR \(shed.id)-r") }) {
                    out.append("\(site) at \(ISO8601.format(t.at)): \(shed.id) ended \(ISO8601.format(shed.until))")
                }
            }
        }
        return out
    }
}
