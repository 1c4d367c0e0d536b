// The site as a Sparkplug B edge node (issue 17): a swift-service-lifecycle `Service` that takes the
// control loop's tick reports through a non-blocking hand-off and publishes them over an `EdgeNodeRunner`:
// NBIRTH/DBIRTH with every metric, then NDATA/DDATA by exception (ReportByException).
//
// The control loop never waits on MQTT: `offer` (called from the loop's tick hook) only yields the report
// into an AsyncStream that keeps the newest one (`.bufferingNewest(1)`) and returns. Everything else (building
// metrics, deadbands, the runner, libmosquitto on its own thread) happens on this service's task. A tick the
// service had no time for is replaced by the next one; nothing is buffered while offline (store-and-forward is
// not built yet).

import Control
import Foundation
import Logging
import ServiceLifecycle
import Site
import Sparkplug
import Synchronization

public struct EdgeNodeService: Service {
    /// A tick as the loop hands it over: the report and the loop that made it (for telemetry and follow state).
    struct Tick: Sendable {
        var report: TickReport
        var loop: ControlLoop
    }

    public let fleet: FleetConfig
    public let logger: Logger
    let ticks: AsyncStream<Tick>
    let ticksIn: AsyncStream<Tick>.Continuation
    let bdSeqStore: any BdSeqStore
    let configVersion: @Sendable () -> Int64?
    let retryDelay: Duration
    let wallClockMS: @Sendable () -> UInt64
    /// Runner events, for tests and logs.
    let observe: @Sendable (EdgeNodeEvent) -> Void
    /// Fleet commands (FleetCommands.swift); nil: only `Node Control/Rebirth` is acted on.
    let commands: FleetCommandProcessor?

    /// `bdSeqPath`: where the last bdSeq is kept across restarts. `configVersion` is called on this service's
    /// task, never the loop's. `wallClockMS`: payload timestamps (metric timestamps are the tick's loop time).
    public init(fleet: FleetConfig, bdSeqPath: String, logger: Logger,
                configVersion: @escaping @Sendable () -> Int64? = { nil },
                retryDelay: Duration = .seconds(2),
                wallClockMS: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) },
                commands: FleetCommandProcessor? = nil,
                observe: @escaping @Sendable (EdgeNodeEvent) -> Void = { _ in }) {
        self.fleet = fleet
        self.logger = logger
        (ticks, ticksIn) = AsyncStream.makeStream(of: Tick.self, bufferingPolicy: .bufferingNewest(1))
        bdSeqStore = FileBdSeqStore(path: bdSeqPath)
        self.configVersion = configVersion
        self.retryDelay = retryDelay
        self.wallClockMS = wallClockMS
        self.observe = observe
        self.commands = commands
    }

    /// The tick hook: hands the report over and returns at once (never waits on MQTT or on this service).
    public func offer(_ report: TickReport, loop: ControlLoop) {
        ticksIn.yield(Tick(report: report, loop: loop))
    }

    public var mqttConfiguration: MQTTConfiguration {
        MQTTConfiguration(host: fleet.brokerHost, port: fleet.brokerPort, clientID: fleet.clientID,
                          tls: fleet.tls.map { MQTTTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) })
    }

    public func run() async throws {
        let identity = try EdgeNodeIdentity(group: fleet.groupID, edge: fleet.edgeNodeID, primaryHostID: fleet.primaryHostID)
        let ticksIn = self.ticksIn
        try await withGracefulShutdownHandler {
            try await publish(identity: identity)
        } onGracefulShutdown: {
            ticksIn.finish()
        }
    }

    private func publish(identity: EdgeNodeIdentity) async throws {
        var iterator = ticks.makeAsyncIterator()
        // The births need values: wait for the first tick.
        guard let first = await iterator.next() else { return }
        var sample = FleetSample(report: first.report, loop: first.loop, configVersion: configVersion())
        let client = MQTTClient(mqttConfiguration)
        let schemas = commandSchemas(sample.birth)
        let runner = try EdgeNodeRunner(client: client, identity: identity, store: bdSeqStore,
                                        birth: withCommandAnswers(sample.birth, at: sample.at),
                                        nodeCommands: schemas.node, deviceCommands: schemas.devices, retryDelay: retryDelay, now: wallClockMS)
        // Set by the events task after every birth; the publishing loop then re-bases its deadbands.
        let born = BornFlag()
        let (logger, observe, fleet) = (self.logger, self.observe, self.fleet)
        logger.notice("fleet: Sparkplug edge node starting", metadata: [
            "fleet.broker": "\(fleet.brokerHost):\(fleet.brokerPort)", "fleet.group": "\(fleet.groupID)",
            "fleet.edge": "\(fleet.edgeNodeID)", "fleet.devices": "\(sample.devices.count)",
        ])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await runner.run() }
            group.addTask {
                for await event in runner.events {
                    switch event {
                    case .born(let b):
                        born.value.withLock { $0 = true }
                        logger.notice("fleet: births published", metadata: ["fleet.bdseq": "\(b)"])
                    case .connected(let b): logger.info("fleet: connected", metadata: ["fleet.bdseq": "\(b)"])
                    case .offline(let why): logger.warning("fleet: offline", metadata: ["fleet.reason": "\(why)"])
                    case .failure(let e): logger.warning("fleet: MQTT call failed", metadata: ["error": "\(e)"])
                    case .bdSeqNotSaved(let why): logger.warning("fleet: bdSeq not saved", metadata: ["error": "\(why)"])
                    case .command, .rejected:
                        if !(await handleCommand(event, runner: runner)) {
                            logger.notice("fleet: command ignored (fleet commands are off: the site file has no fleet roles)")
                        }
                    }
                    observe(event)
                }
            }
            var rbe = ReportByException(deadbands: FleetMetricName.deadbands)
            var birth = sample.birth
            // Devices of the last births: data goes only to devices the hosts have a DBIRTH for.
            var bornDevices: Set<String> = []
            while let tick = await iterator.next() {
                sample = FleetSample(report: tick.report, loop: tick.loop, configVersion: configVersion())
                if born.value.withLock({ let b = $0; $0 = false; return b }) {
                    // The births carried `birth`'s values: they are the new baselines.
                    rbe.reset()
                    bornDevices = Set(birth.devices.map(\.id))
                    rbe.births(birth.node, now: sample.at)
                    for d in birth.devices { rbe.births(d.metrics, scope: d.id, now: sample.at) }
                }
                // The next births (a rebirth, a new session) carry the newest values.
                let next = withCommandAnswers(sample.birth, at: sample.at)
                if next.devices.map(\.id) != birth.devices.map(\.id) {
                    // A new configuration with other devices: they are published from the next birth. (Live device
                    // changes, DDEATH and an immediate rebirth, are not built yet.)
                    logger.notice("fleet: devices changed; they are published from the next birth")
                }
                birth = next
                await runner.setBirth(birth)
                let node = rbe.filter(sample.node, now: sample.at)
                let devices = sample.devices.compactMap { d -> (id: String, metrics: [SparkplugMetric])? in
                    guard bornDevices.contains(d.id) else { return nil }
                    let m = rbe.filter(d.metrics, scope: d.id, now: sample.at)
                    return m.isEmpty ? nil : (d.id, m)
                }
                if !node.isEmpty || !devices.isEmpty {
                    // Offline: nothing is sent (and nothing kept: store-and-forward is not built yet).
                    await runner.publishData(node: node, devices: devices)
                }
            }
            // Shutdown: NDEATH (as the will would say), a clean DISCONNECT, then the client's thread ends.
            if let bdSeq = await runner.session.bdSeq, await runner.session.phase == .online {
                _ = try? await client.publish(topic: identity.topic(.ndeath),
                                              payload: SparkplugPayloads.ndeath(timestamp: wallClockMS(), bdSeq: bdSeq).encoded(),
                                              qos: 1, retain: false)
                try? await client.disconnect()
            }
            client.close()
            group.cancelAll()
        }
    }
}

/// Set by the runner's events (a birth), taken by the publishing loop.
final class BornFlag: Sendable {
    let value = Mutex(false)
}
