// `switchyard hub`: the store's pool and migrations, then the primary host (into the store), the fleet API and the
// store's maintenance (retention and tomorrow's partition, hourly), until a graceful shutdown (the host publishes STATE offline on its way out).

import Foundation
import HTTPBasics
import Hummingbird
import Logging
import ServiceLifecycle
import Sparkplug

public struct HubConfiguration: Sendable {
    public var host: HostConfiguration
    public var store: HubStoreConfiguration
    /// The fleet API's address (port 0: a free one, reported to `onListening`).
    public var apiHost: String
    public var apiPort: Int
    /// Days of samples kept (`HubRetention.allowedDays`); the store's maintenance drops older day partitions.
    public var retentionDays: Int
    /// How often the store's maintenance runs (retention, and tomorrow's partition), after once at start.
    public var maintenancePeriod: Duration
    /// Fleet sheds and rollouts: allocation period, poll interval, rollout timeout.
    public var operations: FleetOperations.Configuration
    /// The fleet API over TLS: a PEM certificate chain and its key (both or neither; `hub --tls-cert --tls-key`).
    public var apiTLSCertPath: String?
    public var apiTLSKeyPath: String?

    public init(host: HostConfiguration, store: HubStoreConfiguration, apiHost: String = "127.0.0.1", apiPort: Int = 8444,
                retentionDays: Int = HubRetention.defaultDays, maintenancePeriod: Duration = .seconds(3600),
                operations: FleetOperations.Configuration = .init()) {
        self.operations = operations
        self.host = host
        self.store = store
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.retentionDays = retentionDays
        self.maintenancePeriod = maintenancePeriod
    }
}

public struct HubService: Service {
    public let configuration: HubConfiguration
    public let logger: Logger
    let onListening: @Sendable (Int) -> Void
    let observe: @Sendable (HostEvent) -> Void
    let clock: any Clock<Duration>
    let now: @Sendable () -> Double
    let onOperations: @Sendable (FleetOperations) -> Void

    /// `clock` and `now` (seconds since 1970): the hub's time, for the host, the API and the fleet operations (a
    /// ManualClock and virtual time in tests). `onOperations`: the fleet operations, once built (tests).
    public init(configuration: HubConfiguration, logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in },
                observe: @escaping @Sendable (HostEvent) -> Void = { _ in }, clock: any Clock<Duration> = ContinuousClock(),
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                onOperations: @escaping @Sendable (FleetOperations) -> Void = { _ in }) {
        self.clock = clock
        self.now = now
        self.onOperations = onOperations
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
        self.observe = observe
    }

    public func run() async throws {
        let (configuration, logger, onListening) = (self.configuration, self.logger, self.onListening)
        // Refused here with a clear error rather than by StoreMaintenanceService's preconditions.
        if let problem = HubRetention.problem(days: configuration.retentionDays) {
            throw HubStoreError(operation: "configuration", message: problem)
        }
        guard configuration.maintenancePeriod > .zero else {
            throw HubStoreError(operation: "configuration", message: "the store's maintenance period must be positive, not \(configuration.maintenancePeriod)")
        }
        try await HubStore.withRunning(configuration.store, logger: logger) { store in
            let applied = try await store.migrate()
            if !applied.isEmpty { logger.notice("hub: store migrated", metadata: ["hub.migrations": "\(applied)"]) }
            let now = self.now
            let host = try HostApplication(configuration: configuration.host, sink: store, logger: logger,
                                           now: { UInt64(max(0, now() * 1000).rounded()) }, observe: observe)
            let operations = FleetOperations(host: host, configuration: configuration.operations, clock: clock, now: now, journal: store)
            let restored = try await operations.restore()
            if restored > 0 { logger.notice("hub: fleet operations carried on from before the restart", metadata: ["hub.operations": "\(restored)"]) }
            onOperations(operations)
            var deps = FleetAPIDependencies.live(host: host, store: store, logger: logger)
            deps.clock = now
            let router = FleetAPI.router(deps)
            FleetCommandAPI.register(on: router, deps: deps, operations: operations)
            let app = Application(router: router,
                                  server: try ListenConfiguration.serverBuilder(tlsCertPath: configuration.apiTLSCertPath,
                                                                                tlsKeyPath: configuration.apiTLSKeyPath),
                                  configuration: .init(address: .hostname(configuration.apiHost, port: configuration.apiPort),
                                                       serverName: "switchyard-hub"),
                                  onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                                  logger: logger)
            let maintenance = StoreMaintenanceService(store: store, retentionDays: configuration.retentionDays,
                                                      period: configuration.maintenancePeriod, clock: ContinuousClock(), logger: logger)
            let group = ServiceGroup(services: [host, app, maintenance], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
            // The fleet operations poll until the hub stops: cancelled once the host, the API and the maintenance have.
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await operations.run() }
                defer { tasks.cancelAll() }
                try await group.run()
            }
            // Stopped: what the journal's writer still holds is written (within 10 s: a store that does not answer
            // is not waited for; what it did not take, the next hub restores one poll older).
            do {
                try await HubStore.withinWriteTimeout(.seconds(10), "write the fleet operations' journal") { await operations.flushJournal() }
            } catch {
                logger.warning("hub: the fleet operations' last changes were not written to the journal", metadata: ["hub.error": "\(error)"])
            }
        }
    }
}
