import Control
import Foundation
import HardwareProfiles
import Hummingbird
import HummingbirdTesting
import Logging
import Modbus
import Site
import Simulation
import Store
import Synchronization
import TestSupport
@testable import API

/// A small simulated site (in memory, no sockets): TestSupport's HIL site with two ASICs and no contract.
let apiSiteYAML = HILSite.yaml(asics: 2, acmeContract: false)

/// 2026-07-15T12:00:00Z
let t0 = 1_784_116_800.0

final class TestClock: Sendable {
    let t = Mutex(t0)
    var now: Double { t.withLock { $0 } }
    func advance(_ s: Double) { t.withLock { $0 += s } }
}

/// The API over an in-memory store and a simulated site, with a manual clock.
struct Harness: Sendable {
    let store: Store
    let host: LoopHost
    let sim: SiteSimulator
    let clock: TestClock
    let deps: APIDependencies
    let limiter: FailedAuthLimiter
    /// Secrets by role, plus an expired and a revoked admin token.
    let tokens: [Role: String]
    let expired: String
    let revoked: String

    static func make(maxFailures: Int = 1_000_000) throws -> Harness {
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let site = try Site.parse(yaml: apiSiteYAML, file: "hil.yaml")
        let profiles = try loadProfiles(for: site, registry: registry)
        let sim = try SiteSimulator(spec: try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false), seed: 7)
        let metrics = MetricsRegistry(site: site.id)
        let builder: LoopHost.Builder = { site, state in
            let profiles = try loadProfiles(for: site, registry: registry)
            var buses: [String: any RegisterBus] = [:]
            for d in site.devices where d.profile != nil {
                if let b = SimulatedBus(simulator: sim, device: d.id) { buses[d.id] = b }
            }
            var sig = SiteSignals()
            sig.energyPrices = [PricePoint(at: t0 - 3600, usdPerMWh: 40)]
            var options = ControlOptions(commWatchdogS: 0)
            options.metricsFactory = metrics.factory
            return try ControlLoop(site: site, profiles: profiles, buses: buses, signals: try SiteSignalSource(site: site, signals: sig),
                                   options: options, restoring: state)
        }
        let host = LoopHost(loop: try builder(site, LoopState()), builder: builder)
        let store = try Store.inMemory()
        try store.appendConfig(yaml: apiSiteYAML, author: "test", comment: "initial", at: t0, expected: 0)
        let clock = TestClock()
        let limiter = FailedAuthLimiter(maxFailures: maxFailures, windowS: 300)
        var logger = Logger(label: "api-test")
        logger.logLevel = .critical
        let deps = APIDependencies(store: store, runtime: HostedRuntime(host: host, now: { clock.now }), metrics: metrics,
                                   limiter: limiter, clock: { clock.now }, logger: logger)
        var tokens: [Role: String] = [:]
        for r in Role.allCases {
            tokens[r] = try Tokens.create(in: store, name: "t-\(r.rawValue)", role: r, createdBy: "test", creatorRole: "local", at: t0,
                                          validForS: nil, action: "token create", status: 0).secret
        }
        let expired = try Tokens.create(in: store, name: "old", role: .admin, createdBy: "test", creatorRole: "local", at: t0 - 7200,
                                        validForS: 3600, action: "token create", status: 0).secret
        let rev = try Tokens.create(in: store, name: "gone", role: .admin, createdBy: "test", creatorRole: "local", at: t0,
                                    validForS: nil, action: "token create", status: 0)
        try store.revokeToken(id: rev.record.id, at: t0)
        return Harness(store: store, host: host, sim: sim, clock: clock, deps: deps, limiter: limiter, tokens: tokens,
                       expired: expired, revoked: rev.secret)
    }

    func app() -> some ApplicationProtocol {
        Application(router: buildRouter(deps).router)
    }

    /// Ticks the current loop (swapping a queued config first, as the service does).
    @discardableResult
    func tick() async -> TickReport {
        await host.swapPending()
        let r = await host.current.tick(now: clock.now)
        sim.step(.seconds(1))
        clock.advance(1)
        return r
    }
}

func bearer(_ token: String?) -> HTTPFields {
    var h: HTTPFields = [:]
    if let token { h[.authorization] = "Bearer \(token)" }
    return h
}

func json(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

func errorMessage(_ body: ByteBuffer) -> String? {
    struct E: Decodable { struct M: Decodable { var message: String }; var error: M }
    return try? JSONDecoder().decode(E.self, from: Data(buffer: body)).error.message
}

func decode<T: Decodable>(_ t: T.Type, _ body: ByteBuffer) throws -> T {
    let d = JSONDecoder()
    d.keyDecodingStrategy = .convertFromSnakeCase
    return try d.decode(T.self, from: Data(buffer: body))
}
