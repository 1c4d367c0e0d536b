// Fleet command latency (issue 18): from a fleet shed's creation to the acknowledgement of every site it commands,
// and to metered compliance, on the 40 simulated sites of a fleet file ticking in real time.
//
//   fleet-command [ROUNDS [EVENT_S [GAP_S [FLEET [MIN_OFF_S]]]]]   (default 50 rounds, 15 s events, 5 s between,
//                 examples/fleet.yaml, the template's min_off_s)
//
// A throwaway PostgreSQL (fsync on) and Debian's mosquitto on free ports; in this process the hub (`HubService`:
// host, store, fleet API, fleet operations, on the wall clock, polling every 1 s, allocating every 30 s) and the
// simulated fleet (`SimulatedFleet` on ContinuousClock: 40 real SiteDaemons, each at its own 1 s tick, each
// publishing through its own edge node; `switchyard sim --fleet` in one process). Once every site is online with an
// offer and an import, and after 10 s more, each round creates one shed per region at once, as `fleet event
// create` does (POST /v1/fleet/events with an operator token, one keep-alive connection per region), each lasting
// EVENT_S; the next round starts GAP_S after the events have ended. Each region's target is sized from the offers
// the hub holds just before (FleetOperations.shedInputs, the same allocator) so that every site of the region gets
// a share: the smallest target that does, plus 0.5 MW. So each round commands every site that offers anything
// (all 40 while the offers last; a site that has shed all it can offers nothing and is left out of the round).
//
// Acknowledgement: from just before the POST to the moment the hub takes the site's answer (HostEvent
// .commandAnswered: the site's NDATA carrying its answer to the NCMD), per site; an event's latency is its last
// site's, a round's is the last of its 40. Wall clock throughout: MQTT, the site's command inbox, the tick that
// applies the command, the NDATA that carries the answer.
// Metered compliance: from the same instant to the first moment (polled every 200 ms from the hub's site rows)
// when the region's metered shed, Σ over the sites commanded of (baseline import − latest import), their own
// meters as they report them, reaches the target less the hub's tolerance of 0.1 MW per site. Also wall clock, but
// set by the simulated physics (the devices' ramps and the meters, stepped once per 1 s tick): it says how fast
// the simulated sites comply, not real hardware.

import AsyncHTTPClient
import FleetSim
import Foundation
import Hub
import Logging
import NIOCore
import ServiceLifecycle
import Sparkplug
import Synchronization
import TestSupport

/// The smallest target (MW) for which FleetShedAllocator gives every site in `offers` a share (bisection: the
/// sites with a share only grow with the target), or nil if some site offers nothing.
func targetGivingEveryShare(_ offers: [SiteKey: OfferCurve]) -> Double? {
    let total = offers.values.reduce(0) { $0 + $1.totalMW }
    func everyone(_ t: Double) -> Bool { FleetShedAllocator.allocate(targetMW: t, offers: offers).shares.allSatisfy { $0.mw > 1e-6 } }
    guard !offers.isEmpty, everyone(total) else { return nil }
    var lo = 0.0, hi = total
    for _ in 0..<60 where hi - lo > 1e-4 {
        let mid = (lo + hi) / 2
        if everyone(mid) { hi = mid } else { lo = mid }
    }
    return hi
}

/// When the hub took each command's answer, and whether the site accepted it.
final class AnswerTimes: Sendable {
    let state = Mutex<[String: (at: ContinuousClock.Instant, accepted: Bool)]>([:])
    /// Records the hub's writer dropped because its store fell behind (HostEvent.recordsDropped: the total).
    let dropped = Mutex(0)
}

func runFleetCommandBenchmark(arguments: [String]) async throws {
    let rounds = arguments.count > 0 ? Int(arguments[0]) ?? 50 : 50
    let eventS = arguments.count > 1 ? Int(arguments[1]) ?? 15 : 15
    let gapS = arguments.count > 2 ? Double(arguments[2]) ?? 5 : 5
    let fleetPath = arguments.count > 3 ? arguments[3] : "examples/fleet.yaml"
    var spec = try FleetSpec.load(path: fleetPath)
    // MIN_OFF_S: every device's min_off_s in the template set to this, so that a container switched off by one round
    // can run again (and offer again) a few rounds later: with the demo's 600 s, after a few rounds most sites had
    // nothing left to offer and the rounds stopped reaching every site. Acknowledgement latency does not depend on it.
    var minOffNote = ""
    if arguments.count > 4, let minOff = Int(arguments[4]), minOff >= 0 {
        spec.templateText = spec.templateText.replacing(/min_off_s: *[0-9]+/, with: "min_off_s: \(minOff)")
        minOffNote = "; every device's min_off_s set to \(minOff) s"
    }
    let regions = spec.regions.map(\.name)
    let siteCount = spec.sites.count
    print("fleet-command: \(siteCount) simulated sites in \(regions.count) regions (\(fleetPath)\(minOffNote)), real 1 s ticks; \(rounds) rounds of one shed per region (\(rounds * regions.count) events), \(eventS) s each, \(Int(gapS)) s apart")
    var logger = Logger(label: "fleet-command-bench")
    logger.logLevel = .error
    try await withPostgres { server in
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        print("PostgreSQL \(server.majorVersion) (Debian), fsync on; mosquitto on 127.0.0.1:\(broker.port)")
        let storeConfig = HubStoreConfiguration(port: server.port, username: server.username, database: server.database)
        let secret = try await HubStore.withRunning(storeConfig, logger: logger) { s in
            try await s.migrate()
            return try await s.createToken(name: "bench", role: .operator).secret
        }
        let answers = AnswerTimes()
        let opsBox = Mutex<FleetOperations?>(nil)
        let (ports, portsIn) = AsyncStream.makeStream(of: Int.self)
        // The record spool on, as `hub run` has it by default.
        let spoolDir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-command-spool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: spoolDir) }
        let hub = HubService(
            configuration: HubConfiguration(
                host: HostConfiguration(hostID: spec.primaryHostID ?? "hub",
                                        mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-hub"),
                                        spoolDirectory: spoolDir.path),
                store: storeConfig, apiHost: "127.0.0.1", apiPort: 0),
            logger: logger, onListening: { portsIn.yield($0) },
            observe: { e in
                switch e {
                case .commandAnswered(_, let id, let accepted):
                    let t = ContinuousClock.now
                    answers.state.withLock { $0[id] = (t, accepted) }
                case .recordsDropped(let total): answers.dropped.withLock { $0 = max($0, total) }
                default: break
                }
            },
            onOperations: { ops in opsBox.withLock { $0 = ops } })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-command-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let profiles = FileManager.default.fileExists(atPath: "hardware-profiles") ? "hardware-profiles" : nil
        let fleet = try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: broker.port, workDir: dir, profilesDir: profiles,
                                       clock: ContinuousClock(), startAt: Date().timeIntervalSince1970, logger: logger)
        let hubGroup = ServiceGroup(services: [hub], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        let fleetGroup = ServiceGroup(services: [fleet], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await hubGroup.run() }
            tasks.addTask { try await fleetGroup.run() }
            var portIt = ports.makeAsyncIterator()
            guard let apiPort = await portIt.next(), let ops = opsBox.withLock({ $0 }) else { throw BenchError("the hub did not start") }
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                try await runRounds(ops: ops, client: client, url: "http://127.0.0.1:\(apiPort)/v1/fleet/events", secret: secret, regions: regions,
                                    siteCount: siteCount, rounds: rounds, eventS: eventS, gapS: gapS, answers: answers)
            } catch {
                try? await client.shutdown()
                await fleetGroup.triggerGracefulShutdown()
                await hubGroup.triggerGracefulShutdown()
                throw error
            }
            try await client.shutdown()
            await fleetGroup.triggerGracefulShutdown()
            try await tasks.next()
            await hubGroup.triggerGracefulShutdown()
            try await tasks.next()
        }
    }
}

private func runRounds(ops: FleetOperations, client: HTTPClient, url: String, secret: String, regions: [String], siteCount: Int,
                       rounds: Int, eventS: Int, gapS: Double,
                       answers: AnswerTimes) async throws {
    let clock = ContinuousClock()
    // Every site online with an offer and an import, then 10 s more.
    let bornBy = clock.now + .seconds(180)
    let t0 = clock.now
    while true {
        let ready = await ops.siteStatus().filter { $0.liveness == .online && $0.offer != nil && $0.importKW != nil }.count
        if ready == siteCount { break }
        if clock.now > bornBy { throw BenchError("only \(ready) of \(siteCount) sites online with an offer after 180 s") }
        try await Task.sleep(for: .milliseconds(200))
    }
    print(String(format: "all %d sites online with an offer after %.1f s", siteCount, secondsOf(clock.now - t0)))
    try await Task.sleep(for: .seconds(10))

    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    var eventAckS: [Double] = [], roundAckS: [Double] = [], siteAckS: [Double] = [], complianceS: [Double] = []
    var events = 0, commanded = 0, refused = 0, unanswered = 0, notCompliant = 0, sitesPerRound: [Int] = [], targets: [Double] = []

    for round in 0..<rounds {
        var target: [String: Double] = [:]
        for r in regions {
            // Sites whose offer is empty (everything they could shed is already shed) cannot take part: left out.
            let offers = ops.shedInputs(region: r).sites.mapValues(\.offer).filter { $0.value.totalMW > 1e-6 }
            guard let t = targetGivingEveryShare(offers) else { continue }
            let total = offers.values.reduce(0) { $0 + $1.totalMW }
            target[r] = min(total, ((t + 0.5) * 10).rounded(.up) / 10)
        }
        let active = regions.filter { target[$0] != nil }
        let start = clock.now
        let reports = try await withThrowingTaskGroup(of: (String, FleetShedReport).self) { g in
            for r in active {
                let body = FleetShedRequest(region: r, shedMw: target[r]!, from: "now", until: "+\(eventS)s", reason: "fleet-command bench round \(round)")
                let data = try encoder.encode(body)
                g.addTask {
                    var req = HTTPClientRequest(url: url)
                    req.method = .POST
                    req.headers.add(name: "Authorization", value: "Bearer \(secret)")
                    req.headers.add(name: "Content-Type", value: "application/json")
                    req.body = .bytes(ByteBuffer(bytes: data))
                    let resp = try await client.execute(req, timeout: .seconds(30))
                    let bytes = try await resp.body.collect(upTo: 1 << 22)
                    guard resp.status == .created else { throw BenchError("POST \(r): \(resp.status): \(String(buffer: bytes))") }
                    return (r, try decoder.decode(FleetShedReport.self, from: Data(bytes.readableBytesView)))
                }
            }
            var out: [String: FleetShedReport] = [:]
            for try await (r, rep) in g { out[r] = rep }
            return out
        }
        // Each event's commands, and the sites they went to.
        var ids: [String: [String]] = [:]
        for (r, rep) in reports { ids[r] = rep.shares.compactMap(\.commandId) }
        let all = ids.values.flatMap { $0 }
        commanded += all.count
        events += active.count
        sitesPerRound.append(all.count)
        targets += active.map { target[$0]! }
        // Acknowledgements (up to EVENT_S) and metered compliance (up to the event's end), polled every 200 ms.
        var compliedAt: [String: Double] = [:]
        let end = start + .seconds(eventS)
        while clock.now < end {
            let rows = Dictionary(await ops.siteStatus().map { ($0.site.edge, $0) }, uniquingKeysWith: { a, _ in a })
            let at = secondsOf(clock.now - start)
            for (r, rep) in reports where compliedAt[r] == nil {
                let metered = rep.shares.reduce(0.0) { $0 + ($1.baselineKw - (rows[$1.site]?.importKW ?? $1.baselineKw)) / 1000 }
                if metered >= rep.targetMw - 0.1 * Double(rep.shares.count) { compliedAt[r] = at }
            }
            let answered = answers.state.withLock { a in all.allSatisfy { a[$0] != nil } }
            if answered && compliedAt.count == active.count { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let byID = answers.state.withLock { a -> [String: (at: ContinuousClock.Instant, accepted: Bool)] in
            a.filter { all.contains($0.key) }
        }
        for id in all {
            guard let a = byID[id] else { unanswered += 1; continue }
            siteAckS.append(secondsOf(a.at - start))
            if !a.accepted { refused += 1 }
        }
        var roundMax = 0.0
        for r in active {
            let times = (ids[r] ?? []).compactMap { byID[$0].map { secondsOf($0.at - start) } }
            if times.count == ids[r]?.count, let m = times.max() { eventAckS.append(m); roundMax = max(roundMax, m) } else { roundMax = .infinity }
            if let c = compliedAt[r] { complianceS.append(c) } else { notCompliant += 1 }
        }
        // A round counts for "all sites" only when it commanded every site of the fleet.
        if roundMax.isFinite, all.count == siteCount { roundAckS.append(roundMax) }
        if round % 10 == 0 || round == rounds - 1 {
            print(String(format: "round %d: %d sites commanded, last acknowledgement %.2f s, compliance %@", round + 1, all.count, roundMax,
                         active.map { r in compliedAt[r].map { String(format: "%@ %.1f s", r, $0) } ?? "\(r) not within \(eventS) s" }.joined(separator: ", ")))
        }
        // The events end at EVENT_S; the next round GAP_S after.
        try await clock.sleep(until: start + .seconds(eventS) + .seconds(gapS), tolerance: nil)
    }

    func line(_ name: String, _ xs: [Double]) -> String {
        let s = xs.sorted()
        return String(format: "%@: n %d, p50 %.2f s, p99 %.2f s, max %.2f s", name, s.count, percentile(s, 0.5), percentile(s, 0.99), s.last ?? .nan)
    }
    print("")
    print("sites commanded per round: min \(sitesPerRound.min() ?? 0), max \(sitesPerRound.max() ?? 0) of \(siteCount); region targets \(String(format: "%.1f", targets.min() ?? 0))–\(String(format: "%.1f", targets.max() ?? 0)) MW")
    print(line("acknowledgement, all \(siteCount) sites (per round that commanded every site)", roundAckS))
    print(line("acknowledgement, all sites of one region (per event)", eventAckS))
    print(line("acknowledgement, one site (per command)", siteAckS))
    print(line("metered compliance (per event, within its \(eventS) s)", complianceS))
    print("records the hub's store writer dropped (behind): \(answers.dropped.withLock { $0 })")
    print("commands \(commanded), answered \(commanded - unanswered) (refused \(refused)), events not compliant within \(eventS) s: \(notCompliant) of \(events) events")
}
