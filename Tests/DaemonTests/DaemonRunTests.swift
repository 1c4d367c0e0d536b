import AsyncHTTPClient
import Control
import Foundation
import HardwareProfiles
import Logging
import ServiceLifecycle
import Signals
import Simulation
import Site
import Store
import Testing
import TestSupport
@testable import Daemon

// The daemon started in-process against a simulated site served over loopback Modbus (any free ports),
// on a manual clock: each tick is one `advance` of the clock, never a sleep.

/// 2026-07-15T12:00:00Z
let t0 = 1_784_116_800.0

/// The simulated site on loopback (ports chosen by the system), and the site file pointing at it.
struct SimulatedSite {
    let sim: SiteSimulator
    let wire: WireHost
    let siteFile: String

    /// `extraYAML` is appended to the site file the daemon reads (e.g. a `fleet:` section).
    init(in dir: URL, extraYAML: String = "") throws {
        // Placeholder ports to build the simulator (it serves each device on a free port of its own).
        let ids = ["site-meter", "xfmr-1-meter", "asic-1", "asic-2", "asic-3", "gpu-1"]
        let site = try Site.parse(yaml: Self.yaml(ports: Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($0.element, 20_001 + $0.offset) })),
                                  file: "daemon-test.yaml")
        let profiles = try loadProfiles(for: site, registry: ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")]))
        var spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false, start: .fallback)
        spec.startSeconds = t0
        sim = try SiteSimulator(spec: spec, seed: 7)
        wire = try WireHost(simulator: sim)
        siteFile = dir.appendingPathComponent("site.yaml").path
        try (Self.yaml(ports: Dictionary(uniqueKeysWithValues: wire.endpoints.map { ($0.device, $0.port) })) + extraYAML)
            .write(toFile: siteFile, atomically: true, encoding: .utf8)
    }

    /// TestSupport's HIL site (6 MW import, three 1 MW ASIC containers under a 3.8 MW transformer, a 0.8 MW
    /// GPU container) without its contract, each device at the simulator's port for it.
    static func yaml(ports: [String: Int]) -> String {
        HILSite.yaml(id: "daemon-test", acmeContract: false) { "127.0.0.1:\(ports[$0] ?? 0)" } + "\n"
    }

    /// After a tick: the writes reach the physics, one second of physics, the measurements go out.
    func step() async {
        await wire.settle()
        sim.step(.seconds(1))
        wire.publish()
    }

    var miningSetpoints: [Double] { ["asic-1", "asic-2", "asic-3"].map { sim.setpointKW($0) } }
}

/// Events from the daemon's hooks, as streams the test waits on.
final class DaemonWatch: Sendable {
    let ticks: AsyncStream<TickReport>
    let ticksIn: AsyncStream<TickReport>.Continuation
    let ports: AsyncStream<Int>
    let portsIn: AsyncStream<Int>.Continuation

    init() {
        (ticks, ticksIn) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
        (ports, portsIn) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    var hooks: DaemonHooks {
        DaemonHooks(apiListening: { [portsIn] _, port in portsIn.yield(port) }, tick: { [ticksIn] r in ticksIn.yield(r) })
    }
}

func getJSON(_ url: String, token: String) async throws -> (Int, [String: Any]) {
    let r = try await HTTPClientTransport(client: .shared, timeout: 10)
        .send(HTTPRequest(url: URL(string: url)!, headers: ["Authorization": "Bearer \(token)"]))
    return (r.status, (try JSONSerialization.jsonObject(with: r.body)) as? [String: Any] ?? [:])
}

@Suite("Daemon in-process", .serialized)
struct DaemonRunTests {
    func config(dir: URL, site: String) throws -> DaemonConfig {
        let signals = dir.appendingPathComponent("signals.json").path
        try #"{"energy_prices": [{"at": "2026-07-15T11:00:00Z", "usd_per_mwh": 40.0}]}"#.write(toFile: signals, atomically: true, encoding: .utf8)
        var c = DaemonConfig()
        c.stateDir = dir.appendingPathComponent("state").path
        c.siteFile = site
        c.profilesDir = packageRoot.appendingPathComponent("hardware-profiles").path
        c.listen = "127.0.0.1:0"
        c.signalsFile = signals
        c.startAt = t0
        c.watchdogS = 20
        c.output = .silent
        c.handlesSignals = false
        return c
    }

    /// Starts, ticks on the manual clock, raises the containers from rest, answers the API with a viewer
    /// token, and on a graceful shutdown leaves mining at 0 kW, the GPU container where it was, and its
    /// state saved.
    @Test func ticksWritesSetpointsAnswersTheAPIAndShutsDownSafe() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let site = try SimulatedSite(in: dir)
        defer { site.wire.stop() }
        let config = try config(dir: dir, site: site.siteFile)
        let token: String
        do {
            let store = try Store.open(directory: config.stateDir)
            token = try Tokens.create(in: store, name: "test", role: .viewer, createdBy: "test", creatorRole: "local", at: t0,
                                      validForS: nil, action: "token create", status: 0).secret
        }
        #expect(site.miningSetpoints == [0, 0, 0], "the simulated site starts at rest")

        let clock = ManualClock()
        let watch = DaemonWatch()
        var logger = Logger(label: "daemon-test")
        logger.logLevel = .warning
        let daemon = SiteDaemon(config: config, clock: clock, logger: logger, hooks: watch.hooks)
        let group = ServiceGroup(services: [daemon], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ticks = watch.ticks.makeAsyncIterator()
            var ports = watch.ports.makeAsyncIterator()
            let port = try #require(await ports.next())

            // Tick by tick on loop time: t0, t0 + 1, … until every container runs.
            var reports: [TickReport] = []
            while reports.count < 40 {
                let r = try #require(await ticks.next())
                reports.append(r)
                await site.step()
                if site.miningSetpoints.allSatisfy({ $0 >= 200 }) && site.sim.setpointKW("gpu-1") > 0 { break }
                clock.advance(by: .seconds(1))
            }
            #expect(reports.enumerated().allSatisfy { $0.element.at == t0 + Double($0.offset) }, "\(reports.map(\.at))")
            #expect(site.miningSetpoints.allSatisfy { $0 >= 200 }, "mining runs at $40/MWh: \(site.miningSetpoints) after \(reports.count) ticks")
            #expect(reports.count < 40)
            let written = reports.flatMap(\.writes)
            #expect(written.contains { $0.device == "asic-1" && $0.verified && $0.kw > 0 }, "\(written.map { "\($0.device) \($0.kw)" })")
            #expect(reports.last?.siteKW != nil, "the site meter is read")

            // The API, with the token issued into the same state directory.
            let (status, body) = try await getJSON("http://127.0.0.1:\(port)/v1/status", token: token)
            #expect(status == 200, "\(body)")
            #expect(body["site"] as? String == "daemon-test", "\(body)")
            let (unauthorised, _) = try await getJSON("http://127.0.0.1:\(port)/v1/status", token: "wrong")
            #expect(unauthorised == 401)

            let gpuBefore = site.sim.setpointKW("gpu-1")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            await site.wire.settle()
            #expect(site.miningSetpoints == [0, 0, 0], "shutdown stops mining: \(site.miningSetpoints)")
            #expect(site.sim.setpointKW("gpu-1") == gpuBefore, "inference is left to its comm watchdog")
        }
        // The loop state is saved on the way out, after the loop's last pass: it holds the setpoints that pass
        // wrote (mining stopped), not the last tick's; and the configuration is stored as v1.
        let saved = try #require(try StateFile(directory: config.stateDir).load())
        #expect(Set(saved.commandedKW.keys) == ["asic-1", "asic-2", "asic-3", "gpu-1"], "\(saved.commandedKW)")
        #expect(["asic-1", "asic-2", "asic-3"].map { saved.commandedKW[$0] } == [0, 0, 0], "saved after the safe pass: \(saved.commandedKW)")
        let store = try Store.open(directory: config.stateDir)
        #expect(try store.latestConfig()?.version == 1)
    }

    /// Cancelling the task that runs the daemon ends it (no graceful shutdown asked for): run returns and the
    /// API's port is closed. Cancellation is not the safe stop: the last pass's writes are cancelled with
    /// everything else (measured on this rig: mining stays where the last tick left it), so callers shut the
    /// daemon down gracefully, as the test above does.
    @Test(.timeLimit(.minutes(1))) func cancellingTheTaskEndsTheDaemon() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let site = try SimulatedSite(in: dir)
        defer { site.wire.stop() }
        let clock = ManualClock()
        let watch = DaemonWatch()
        var logger = Logger(label: "daemon-test")
        logger.logLevel = .critical
        let daemon = SiteDaemon(config: try config(dir: dir, site: site.siteFile), clock: clock, logger: logger, hooks: watch.hooks)
        let run = Task { try await daemon.run() }
        var ticks = watch.ticks.makeAsyncIterator()
        var ports = watch.ports.makeAsyncIterator()
        let port = try #require(await ports.next())
        for _ in 0..<5 {
            _ = try #require(await ticks.next())
            await site.step()
            clock.advance(by: .seconds(1))
        }
        run.cancel()
        _ = await run.result
        await #expect(throws: (any Error).self) { _ = try await getJSON("http://127.0.0.1:\(port)/healthz", token: "x") }
    }

    /// Start-up failures come back as `DaemonError`s with the line `serve` prints, before anything runs.
    @Test func startupErrorsNameTheFile() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.yaml").path
        var c = try config(dir: dir, site: missing)
        let unreadable = await #expect(throws: DaemonError.self) { try await SiteDaemon(config: c, logger: Logger(label: "t")).run() }
        #expect(unreadable?.kind == .validation && unreadable?.message.hasPrefix(missing + ": error: cannot read") == true, "\(String(describing: unreadable))")
        c.siteFile = nil
        let nothing = await #expect(throws: DaemonError.self) { try await SiteDaemon(config: c, logger: Logger(label: "t")).run() }
        #expect(nothing?.kind == .usage && nothing?.message.contains("no --site given and no stored configuration") == true, "\(String(describing: nothing))")
        let site = try SimulatedSite(in: dir)
        site.wire.stop()
        c.siteFile = site.siteFile
        let openadr = dir.appendingPathComponent("openadr.json").path
        c.openadr = openadr
        try #"{"vtn_url": "nope", "token_url": "nope", "client_id": "a", "client_secret": "b"}"#.write(toFile: openadr, atomically: true, encoding: .utf8)
        let badVTN = await #expect(throws: DaemonError.self) { try await SiteDaemon(config: c, logger: Logger(label: "t")).run() }
        #expect(badVTN?.kind == .validation && badVTN?.message == "\(openadr): error: vtn_url and token_url must be absolute URLs", "\(String(describing: badVTN))")
    }
}
