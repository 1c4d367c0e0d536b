// `switchyard hub`: the store's pool and migrations, then the primary host (into the store) and the fleet API, until
// a graceful shutdown (the host publishes STATE offline on its way out).

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
    /// Fleet sheds and rollouts: allocation period, poll interval, rollout timeout.
    public var operations: FleetOperations.Configuration

    public init(host: HostConfiguration, store: HubStoreConfiguration, apiHost: String = "127.0.0.1", apiPort: Int = 8444,
                operations: FleetOperations.Configuration = .init()) {
        self.operations = operations
        self.host = host
        self.store = store
        self.apiHost = apiHost
        self.apiPort = apiPort
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
        let store = HubStore(configuration: configuration.store, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { pool in
            pool.addTask { await store.client.run() }
            defer { pool.cancelAll() }
            let applied = try await store.migrate()
            if !applied.isEmpty { logger.notice("hub: store migrated", metadata: ["hub.migrations": "\(applied)"]) }
            let now = self.now
            let host = try HostApplication(configuration: configuration.host, sink: store, logger: logger,
                                           now: { UInt64(max(0, now() * 1000).rounded()) }, commands: store, observe: observe)
            let operations = FleetOperations(host: host, configuration: configuration.operations, clock: clock, now: now)
            onOperations(operations)
            // The fleet operations poll until the hub stops (cancelled with the pool's other tasks below).
            pool.addTask { try await operations.run() }
            var deps = FleetAPIDependencies.live(host: host, store: store, logger: logger)
            deps.clock = now
            let router = FleetAPI.router(deps)
            FleetCommandAPI.register(on: router, deps: deps, operations: operations)
            let app = Application(router: router,
                                  configuration: .init(address: .hostname(configuration.apiHost, port: configuration.apiPort),
                                                       serverName: "switchyard-hub"),
                                  onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                                  logger: logger)
            let group = ServiceGroup(services: [host, app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
            try await group.run()
        }
    }
}
