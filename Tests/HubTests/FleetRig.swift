// The fleet end-to-end rig (FleetCommandEndToEndTests, FleetDR40Tests): a throwaway PostgreSQL, Debian's mosquitto,
// `HubService` (host, store, API, fleet operations) on virtual time, and simulated sites (real SiteDaemons) on the
// same ManualClock, whose site files map the hub's client id to admin. The test is the clock: `second` moves it by
// one second, waits for a tick of each site, then runs one poll of the hub's fleet operations.

import Basics
import Foundation
import FleetSim
@testable import Hub
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport

/// What a test gets: the API, a token, the hub's operations, the clock, the sites' ticks, the database.
struct FleetRig {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let startAt = 1_795_680_000.0

    let server: String
    let token: String
    let operations: FleetOperations
    let clock: ManualClock
    let pg: PostgresServer
    let ticks: FleetTicks
    /// The ids of the hub's commands the sites have answered.
    let answers: FleetTicks
    let fleets: [SimulatedFleet<ManualClock>]
    /// Records the hub's writer dropped because PostgreSQL fell behind (HostEvent.recordsDropped: the total so far).
    let droppedRecords: DroppedRecords

    var now: Double { FleetRig.startAt + FleetOperations.seconds(clock.now.offset) }

    /// Moves virtual time by one second, waits for a tick of each of `sites`, then runs one poll of the hub's
    /// fleet operations to its end (its commands recorded and published): the test is the operations' clock.
    func second(_ sites: Set<String>) async {
        let before = ticks.mark()  // before the clock moves: the ticks it causes may come before the wait starts
        clock.advance(by: .seconds(1))
        let ok = await ticks.wait(for: sites, since: before, limit: .seconds(30))
        #expect(ok, "every one of \(sites.sorted()) ticked within 30 s of real time")
        await operations.step()
    }

    func cli(_ args: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runCommand(switchyardExecutable(), args + ["--server", server, "--token", token])
    }

    func status() async -> [SiteKey: SiteStatus] {
        Dictionary(uniqueKeysWithValues: await operations.host.status().map { ($0.site, $0) })
    }

    /// Once `killed` has been shut down mid-shed: up to 45 seconds of `ticking`, until the shed's shares over
    /// `covering` make the whole target, each with its cap sent. When the hub saw `killed` offline, how long after
    /// that the others covered it (virtual seconds), and the shed's last report.
    func cover(shed id: String, target: Double, killed: SiteKey, covering: Set<String>, ticking: Set<String>) async throws
        -> (offlineAt: Double?, covered: Double?, last: FleetShedReport?) {
        var offlineAt: Double?, last: FleetShedReport?
        for _ in 0..<45 {
            await second(ticking)
            if offlineAt == nil, await status()[killed]?.liveness != .online { offlineAt = now }
            let report = try await operations.shedReport(id: id)
            last = report
            let shares = report.shares.filter { covering.contains($0.site) }
            if abs(shares.reduce(0) { $0 + $1.shareMw } - target) < 1e-6, shares.allSatisfy({ $0.capKw != nil }), let offlineAt {
                return (offlineAt, now - offlineAt, report)
            }
        }
        return (offlineAt, nil, last)
    }
}

/// The hub's total of records dropped (HostEvent.recordsDropped).
final class DroppedRecords: Sendable {
    let total = Mutex(0)
}

/// Counts each site's ticks; `wait` returns once each of the sites has ticked since the last wait.
final class FleetTicks: Sendable {
    let state = Mutex<(seen: [String: Int], waiters: [(Set<String>, [String: Int], CheckedContinuation<Void, Never>)])>(([:], []))

    func tick(_ site: String) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.seen[site, default: 0] += 1
            var out: [CheckedContinuation<Void, Never>] = []
            s.waiters.removeAll { w in
                let done = w.0.allSatisfy { (s.seen[$0] ?? 0) > (w.1[$0] ?? 0) }
                if done { out.append(w.2) }
                return done
            }
            return out
        }
        for c in ready { c.resume() }
    }

    func mark() -> [String: Int] { state.withLock { $0.seen } }

    /// Releases every waiter (a watchdog: the test then fails on what it finds, instead of hanging).
    func releaseAll() {
        let all = state.withLock { s -> [CheckedContinuation<Void, Never>] in defer { s.waiters = [] }; return s.waiters.map(\.2) }
        for c in all { c.resume() }
    }

    /// `wait`, bounded by a watchdog of `limit` real time; false if the watchdog fired.
    func wait(for sites: Set<String>, since: [String: Int]?, limit: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { g in
            g.addTask { await self.wait(for: sites, since: since); return true }
            g.addTask {
                do { try await Task.sleep(for: limit) } catch { return true }
                self.releaseAll()
                return false
            }
            let first = await g.next() ?? false
            g.cancelAll()
            let second = await g.next() ?? true
            return first && second
        }
    }

    func wait(for sites: Set<String>, since: [String: Int]? = nil) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                let base = since ?? s.seen
                if since != nil, sites.allSatisfy({ (s.seen[$0] ?? 0) > (base[$0] ?? 0) }) { return true }
                s.waiters.append((sites, base, c))
                return false
            }
            if ready { c.resume() }
        }
    }
}


extension FleetRig {
    /// PostgreSQL, mosquitto, the hub and the fleet (`apart` runs in a fleet of its own, `killApart` shuts it down).
    /// One region, ERCOT, of `sites` copies of the demo site at $30/MWh.
    static func oneRegion(sites: Int) throws -> FleetSpec {
        try FleetSpec.parse(yaml: "template: demo-site.yaml\nprimary_host_id: hub\nroles: {switchyard-hub: admin}\nregions:\n  - {name: ERCOT, sites: \(sites), price_usd_per_mwh: 30}\n",
                            file: "fleet.yaml", directory: root.appendingPathComponent("examples").path)
    }

    static func with(sites: Int, apart: String? = nil,
                     _ body: (FleetRig, _ killApart: @Sendable () async -> Void) async throws -> Void) async throws {
        try await with(spec: oneRegion(sites: sites), apart: apart, body)
    }

    /// `spec`'s sites (every one a real SiteDaemon on the rig's ManualClock), the hub on the same clock. The rig
    /// waits for every site to be online with an offer and an import, then runs 20 s of virtual time, then `body`.
    /// `hubLogLevel`: the hub's own log level (.error by default; the 40-site run, faster than real time in a debug
    /// build, sets .critical: its store falls behind and logs every record dropped, which the test counts instead).
    static func with(spec: FleetSpec, apart: String? = nil, hubLogLevel: Logger.Level = .error,
                     _ body: (FleetRig, _ killApart: @Sendable () async -> Void) async throws -> Void) async throws {
        try await withPostgres { pg in
            let broker = try await MosquittoBroker.start()
            defer { broker.stop() }
            let storeConfig = StoreFixture.configuration(pg)
            let logger = StoreFixture.logger
            var hubLogger = logger
            hubLogger.logLevel = max(hubLogLevel, logger.logLevel)
            let dropped = DroppedRecords()
            let secret = try await HubStore.withRunning(storeConfig, logger: logger) { s in
                try await s.migrate()
                return try await s.createToken(name: "e2e", role: .admin).secret
            }
            let clock = ManualClock()
            let now: @Sendable () -> Double = { startAt + FleetOperations.seconds(clock.now.offset) }
            let (ports, portsIn) = AsyncStream.makeStream(of: Int.self)
            let opsBox = Mutex<FleetOperations?>(nil)
            let answers = FleetTicks()
            let hub = HubService(
                configuration: HubConfiguration(
                    host: HostConfiguration(hostID: "hub", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "switchyard-hub"),
                                            retryDelay: .milliseconds(50)),
                    store: storeConfig, apiHost: "127.0.0.1", apiPort: 0,
                    // The test runs each poll itself (Rig.second), after every second of virtual time.
                    operations: .init(allocationPeriod: .seconds(30), pollInterval: .seconds(86_400), rolloutTimeout: .seconds(60))),
                logger: hubLogger, onListening: { portsIn.yield($0) },
                observe: { e in
                    switch e {
                    case .commandAnswered(_, let id, _): answers.tick(id)
                    case .recordsDropped(let total): dropped.total.withLock { $0 = max($0, total) }
                    default: break
                    }
                }, clock: clock, now: now,
                onOperations: { ops in opsBox.withLock { $0 = ops } })

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleetcmd-e2e-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let ticks = FleetTicks()
            let ids = Set(spec.sites.map(\.id))
            let main = ids.subtracting(apart.map { [$0] } ?? [])
            func fleet(_ only: Set<String>) throws -> SimulatedFleet<ManualClock> {
                try SimulatedFleet(spec: spec, brokerHost: "127.0.0.1", brokerPort: broker.port, workDir: dir,
                                   profilesDir: root.appendingPathComponent("hardware-profiles").path, clock: clock,
                                   startAt: startAt, fleetRetryDelay: .milliseconds(50), logger: logger,
                                   hooks: SimulatedFleetHooks(tick: { site, _ in ticks.tick(site) }), only: only)
            }
            let mainFleet = try fleet(main)
            let apartFleet = try apart.map { try fleet([$0]) }
            let hubGroup = ServiceGroup(services: [hub], logger: logger)
            let group = ServiceGroup(services: [mainFleet], logger: logger)
            let apartGroup = apartFleet.map { ServiceGroup(services: [$0], logger: logger) }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await hubGroup.run() }
                tasks.addTask { try await group.run() }
                if let apartGroup { tasks.addTask { try await apartGroup.run() } }
                var portIt = ports.makeAsyncIterator()
                let apiPort = try #require(await portIt.next())
                // Every site's first tick (they wait for the hub's STATE to be born), then 20 s of data.
                await ticks.wait(for: ids, since: [:])
                let ops = try #require(opsBox.withLock { $0 })
                let rig = FleetRig(server: "http://127.0.0.1:\(apiPort)", token: secret, operations: ops, clock: clock, pg: pg, ticks: ticks,
                                   answers: answers, fleets: [mainFleet] + (apartFleet.map { [$0] } ?? []), droppedRecords: dropped)
                var born = 0
                for _ in 0..<200 {
                    born = await rig.status().values.filter { $0.liveness == .online && $0.offer != nil && $0.importKW != nil }.count
                    if born == ids.count { break }
                    await rig.second(ids)
                }
                #expect(born == ids.count, "every site online with an offer and an import")
                for _ in 0..<20 { await rig.second(ids) }
                try await body(rig, { await apartGroup?.triggerGracefulShutdown() })
                await group.triggerGracefulShutdown()
                await apartGroup?.triggerGracefulShutdown()
                await hubGroup.triggerGracefulShutdown()
                // The fleet and the hub in groups of their own, shut down together. A shutdown that has not ended
                // after 20 s of real time is cancelled, and the test says so on its output (a hang found this way:
                // FleetOperations as a member of the hub's ServiceGroup did not end on a graceful shutdown; it is now
                // a task of HubService cancelled once the host and the API have stopped).
                struct ShutdownTimeout: Error {}
                tasks.addTask { try await Task.sleep(for: .seconds(20)); throw ShutdownTimeout() }
                for _ in 0..<(apartGroup == nil ? 2 : 3) {
                    do { try await tasks.next() } catch is ShutdownTimeout {
                        print("e2e: the graceful shutdown had not ended after 20 s: cancelled")
                        break
                    }
                }
                tasks.cancelAll()
                while let _ = try? await tasks.next() {}
            }
        }
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }
}
