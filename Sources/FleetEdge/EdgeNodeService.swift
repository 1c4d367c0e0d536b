// The site as a Sparkplug B edge node (issue 17): a swift-service-lifecycle `Service` that takes the
// control loop's tick reports through a non-blocking hand-off and publishes them over an `EdgeNodeRunner`:
// NBIRTH/DBIRTH with every metric, then NDATA/DDATA by exception (ReportByException), and store-and-forward
// (StoreAndForward.swift) while the node is not born.
//
// The control loop never waits on MQTT or the database: `offer` (called from the loop's tick hook) appends the
// tick to a bounded hand-off queue (every tick, for store-and-forward) and stores it in the inbox's slot (the
// newest, for live data), and returns: two short mutex sections, no task resumed (TickInbox.swift). With
// `TickPacing.clock` (the daemon's), the service wakes on its own clock a quarter period after the tick and takes
// the slot, so neither the wake-up nor the service's work (building metrics, deadbands, protobuf, SQLite, the
// runner, libmosquitto on its own thread) overlaps the tick. A tick the live path had no time for is replaced by
// the next one; the hand-off queue keeps it for the buffer.
//
// Fleet commands go from the runner into a bounded queue (CommandQueue.swift) and are applied by a worker task
// of their own, at most `perTick` changing the loop per tick and one fast path per tick (docs/fleet.md).

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
    /// The newest tick, for live data (the hook stores it; the service takes it).
    let inbox: TickInbox<Tick>
    /// Store-and-forward (StoreAndForward.swift): every tick handed over, for the buffer; where the buffer is, its
    /// bound and the backfill's pace (set before `run`; the default buffer is in memory).
    let handOff = HandOffQueue<Tick>(capacity: 3600)
    public var storeAndForward = StoreAndForwardOptions()
    /// The fleet command queue's bound and per-tick budget (set before `run`).
    public var commandQueue = CommandQueueOptions()
    /// How the service learns of ticks: fixed at init (the hook and the service share it).
    public let pacing: TickPacing
    let bdSeqStore: any BdSeqStore
    let config: @Sendable () -> ConfigStamp?
    let retryDelay: Duration
    let wallClockMS: @Sendable () -> UInt64
    /// Runner events, for tests and logs.
    let observe: @Sendable (EdgeNodeEvent) -> Void
    /// Fleet commands (FleetCommands.swift); nil: only `Node Control/Rebirth` is acted on.
    let commands: FleetCommandProcessor?

    /// `bdSeqPath`: where the last bdSeq is kept across restarts. `config` is called on this service's
    /// task, never the loop's. `wallClockMS`: payload timestamps (metric timestamps are the tick's loop time).
    public init(fleet: FleetConfig, bdSeqPath: String, logger: Logger,
                config: @escaping @Sendable () -> ConfigStamp? = { nil },
                retryDelay: Duration = .seconds(2),
                wallClockMS: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) },
                commands: FleetCommandProcessor? = nil,
                pacing: TickPacing = .everyTick,
                observe: @escaping @Sendable (EdgeNodeEvent) -> Void = { _ in }) {
        self.fleet = fleet
        self.logger = logger
        self.pacing = pacing
        inbox = TickInbox(everyTick: pacing.ticker == nil)
        bdSeqStore = FileBdSeqStore(path: bdSeqPath)
        self.config = config
        self.retryDelay = retryDelay
        self.wallClockMS = wallClockMS
        self.observe = observe
        self.commands = commands
    }

    /// The tick hook: hands the report over and returns at once (never waits on MQTT, the database or this
    /// service; with `TickPacing.clock` it resumes no task either, unless the service or the command worker asked).
    public func offer(_ report: TickReport, loop: ControlLoop) {
        let tick = Tick(report: report, loop: loop)
        handOff.append(tick)
        inbox.offer(tick)
    }

    /// How often the tick hook resumed a task: the service (the first tick; every tick with `TickPacing.everyTick`) and
    /// others (with `TickPacing.clock`, its task after a wake-up that came before the tick; the command worker waiting
    /// for the next tick's budget). For benchmarks.
    public var tickHookWakes: (service: Int, others: Int) { inbox.hookWakes }

    public var mqttConfiguration: MQTTConfiguration {
        MQTTConfiguration(host: fleet.brokerHost, port: fleet.brokerPort, clientID: fleet.clientID,
                          tls: fleet.tls.map { MQTTTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) })
    }

    public func run() async throws {
        let identity = try EdgeNodeIdentity(group: fleet.groupID, edge: fleet.edgeNodeID, primaryHostID: fleet.primaryHostID)
        let inbox = self.inbox
        try await withGracefulShutdownHandler {
            try await publish(identity: identity)
        } onGracefulShutdown: {
            inbox.close()
        }
    }

    private func publish(identity: EdgeNodeIdentity) async throws {
        let inbox = self.inbox
        // The births need values: wait for the first tick (the hook wakes the service for it).
        guard let first = await inbox.next() else { return }
        var sample = FleetSample(report: first.report, loop: first.loop, config: config())
        let client = MQTTClient(mqttConfiguration)
        let schemas = commandSchemas(sample.birth)
        let runner = try EdgeNodeRunner(client: client, identity: identity, store: bdSeqStore,
                                        birth: withCommandAnswers(sample.birth, at: sample.at),
                                        nodeCommands: schemas.node, deviceCommands: schemas.devices, retryDelay: retryDelay, now: wallClockMS)
        let (logger, observe, fleet) = (self.logger, self.observe, self.fleet)
        let (handOff, options) = (self.handOff, self.storeAndForward)
        let (buffer, bufferCapacity, observeSF) = (options.buffer, options.capacity, options.observe)
        let backfill = Backfill(storage: buffer, throttle: options.throttle)
        let backfilled = BackfilledValues()
        // Wakes the backfill: after a birth, and after samples were buffered.
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let commandQueue = CommandQueue(capacity: self.commandQueue.capacity)
        let observeCommands = self.commandQueue.observe
        let budget = LoopActionBudget(perTick: self.commandQueue.perTick, inbox: inbox)
        // The tick count the worker's current command was admitted in, for the observer.
        let admitted = AdmittedTick()
        let gate = LoopActionGate(admit: {
            let t = await budget.admit { observeCommands(.waitingForTick($0)) }
            admitted.value.withLock { $0 = t }
            return t
        }, fastPath: {
            let ran = budget.takeFastPath()
            observeCommands(.fastPath(ran: ran, tick: inbox.ticks))
            return ran
        })
        logger.notice("fleet: Sparkplug edge node starting", metadata: [
            "fleet.broker": "\(fleet.brokerHost):\(fleet.brokerPort)", "fleet.group": "\(fleet.groupID)",
            "fleet.edge": "\(fleet.edgeNodeID)", "fleet.devices": "\(sample.devices.count)",
        ])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await runner.run() }
            // The service's clock (TickPacing.clock): wakes it a phase after each tick, instead of the hook.
            if let ticker = pacing.ticker {
                group.addTask { await ticker({ inbox.fire() }, { await inbox.waitForTick(after: $0) }) }
            }
            // Commands, one at a time, off the runner's events (births and connection losses are never queued
            // behind a flood of commands).
            group.addTask {
                // Drops are logged at most once per tick (a sustained flood must not flood the log too), and at the end.
                var reportedAtTick = -1
                func reportDrops(final: Bool = false) {
                    let tick = inbox.ticks
                    guard final || tick != reportedAtTick else { return }
                    let (count, ids) = commandQueue.takeDropped()
                    guard count > 0 else { return }
                    reportedAtTick = tick
                    logger.error("fleet: \(count) commands dropped: \(commandQueue.capacity) were already waiting", metadata: [
                        "fleet.commands.dropped": "\(count)", "fleet.commands.first_dropped": "\(ids)"])
                    observeCommands(.dropped(count, ids: ids))
                }
                while let event = await commandQueue.next() {
                    reportDrops()
                    admitted.value.withLock { $0 = nil }
                    if let answer = await handleCommand(event, runner: runner, gate: gate) {
                        observeCommands(.handled(id: answer.id, accepted: answer.accepted, tick: admitted.value.withLock { $0 }))
                    } else {
                        logger.notice("fleet: command ignored (fleet commands are off: the site file has no fleet roles)")
                    }
                    // Drained: every drop so far is reported before the worker waits.
                    if commandQueue.count == 0 { reportDrops(final: true) }
                }
                reportDrops(final: true)
            }
            group.addTask {
                for await event in runner.events {
                    switch event {
                    case .born(let b):
                        logger.notice("fleet: births published", metadata: ["fleet.bdseq": "\(b)"])
                        wake.yield()
                    case .connected(let b): logger.info("fleet: connected", metadata: ["fleet.bdseq": "\(b)"])
                    case .offline(let why): logger.warning("fleet: offline", metadata: ["fleet.reason": "\(why)"])
                    case .failure(let e): logger.warning("fleet: MQTT call failed", metadata: ["error": "\(e)"])
                    case .bdSeqNotSaved(let why): logger.warning("fleet: bdSeq not saved", metadata: ["error": "\(why)"])
                    case .command, .rejected:
                        commandQueue.push(event)
                    }
                    observe(event)
                }
            }
            // The backfill: whenever woken and born, the buffer oldest first, one acknowledged batch at a time.
            group.addTask {
                let clock = ContinuousClock()
                for await _ in wakes {
                    guard await runner.session.phase == .online else { continue }
                    let start = clock.now
                    let outcome = await backfill.run(
                        publish: { metrics in
                            guard await runner.publishHistorical(node: metrics) else { return false }
                            backfilled.note(metrics)
                            return true
                        },
                        elapsed: { clock.now - start },
                        onStorageError: { logger.error("fleet: store-and-forward buffer unreadable", metadata: ["error": "\($0)"]) })
                    if outcome.batches > 0 {
                        logger.notice("fleet: backfill \(outcome.drained ? "done" : "paused")", metadata: [
                            "fleet.backfill.samples": "\(outcome.sent)", "fleet.backfill.batches": "\(outcome.batches)"])
                        observeSF(.backfilled(sent: outcome.sent, drained: outcome.drained))
                    }
                }
            }
            // Which ticks carry an event (their mode or event lines changed).
            var eventTracker = TickEventTracker()
            /// A tick's node metrics without the configuration's: those are read from the loop as it is now, which would
            /// stamp today's values with an older tick's time.
            func tickMetrics(_ metrics: [SparkplugMetric]) -> [SparkplugMetric] {
                metrics.filter { $0.name != FleetMetricName.configVersion && $0.name != FleetMetricName.configSHA256 }
            }
            /// The newest sample written to the buffer: once backfilled it is the host's newest value even if a birth
            /// with older values went out meanwhile (a tick buffered while the node reconnected, newer than the
            /// values its births then carried), so the baselines take it after such births.
            var newestBuffered: BufferedSample?
            /// Writes ticks to the store-and-forward buffer (sent as historical data once born).
            func bufferTicks(_ ticks: [(tick: Tick, kind: BufferedSample.Kind)], version: ConfigStamp?) async {
                guard !ticks.isEmpty else { return }
                let rows = ticks.map { t -> BufferedSample in
                    let s = FleetSample(report: t.tick.report, loop: t.tick.loop, config: version, offer: false)
                    return BufferedSample(at: s.at, kind: t.kind, metrics: s.node)
                }
                if let last = rows.max(by: { $0.at < $1.at }), last.at > (newestBuffered?.at ?? 0) { newestBuffered = last }
                do {
                    let evicted = try await buffer.append(rows, capacity: bufferCapacity, now: Double(wallClockMS()) / 1000)
                    if evicted > 0 {
                        logger.warning("fleet: store-and-forward buffer full: evicted the \(evicted) oldest samples",
                                       metadata: ["fleet.buffer.capacity": "\(bufferCapacity)"])
                    }
                    observeSF(.buffered(rows.count, evicted: evicted))
                } catch {
                    logger.error("fleet: \(rows.count) samples not buffered", metadata: ["error": "\(error)"])
                }
                wake.yield()
            }
            // Every tick handed over since the last call: buffered while the node is not born; while it is, returned
            // to the live path (with whether it carries an event), which buffers those older than the births and
            // reports by exception those after them that it did not see as the newest (the service woke after a
            // later tick had replaced it in the inbox).
            func drainHandOff() async -> [(tick: Tick, kind: BufferedSample.Kind)] {
                let (handed, dropped) = handOff.drain()
                if dropped > 0 {
                    logger.error("fleet: \(dropped) ticks dropped before buffering (the edge node service fell behind)")
                }
                guard !handed.isEmpty else { return [] }
                let online = await runner.session.phase == .online
                let ticks = handed.map { ($0, eventTracker.kind(mode: $0.report.mode.rawValue, events: $0.report.events)) }
                if online { return ticks }
                await bufferTicks(ticks, version: config())
                return []
            }
            _ = await drainHandOff()

            var rbe = ReportByException(deadbands: FleetMetricName.deadbands)
            var birth = sample.birth
            // Devices of the last births: data goes only to devices the hosts have a DBIRTH for.
            var bornDevices: Set<String> = []
            // Ticks handed over while born and newer than the live path's tick: reported once it gets there.
            var handedLater: [(tick: Tick, kind: BufferedSample.Kind)] = []
            // The births the baselines were set from (EdgeNodeRunner.birthGeneration), and their tick's time (ms).
            var basedOn = 0
            var birthAt: UInt64 = 0
            while let tick = await inbox.next() {
                let handed = handedLater + (await drainHandOff())
                sample = FleetSample(report: tick.report, loop: tick.loop, config: config())
                /// New births went out: their values are the new baselines. Those the runner published, which can be
                /// older than `birth` (births that went out while this loop was handing the runner a newer tick:
                /// re-basing on the newer one would never send that tick's changes; the chaos soak lost ticks so).
                func rebase(_ generation: Int) async {
                    basedOn = generation
                    birth = await runner.publishedBirth ?? birth
                    birthAt = birth.node.first { $0.name == FleetMetricName.importKW }?.timestamp ?? 0
                    rbe.reset()
                    bornDevices = Set(birth.devices.map(\.id))
                    rbe.births(birth.node, now: sample.at)
                    for d in birth.devices { rbe.births(d.metrics, scope: d.id, now: sample.at) }
                    // A sample buffered after the births' values were taken (the chaos soak's 40 sites: a tick handed
                    // over while the node reconnected, newer than its births) reaches the host as historical data
                    // newer than the births: the host's newest values are then its, and so are the baselines.
                    if let newer = newestBuffered, newer.at > birthAt {
                        rbe.markReported(tickMetrics(newer.metrics), now: newer.at)
                    }
                }
                /// After data was published under births `generation`: if those are births this loop has not re-based
                /// on yet (they went out between its last look and this publish), the host holds them with this data
                /// on top, so re-base on them first; then the data counts as reported. If still newer births went out
                /// after the publish, the host's values are theirs: the next pass re-bases on them and this data
                /// does not count.
                func reported(_ node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])], under generation: Int,
                              at now: UInt64) async {
                    if generation != basedOn {
                        guard await runner.birthGeneration == generation else { return }
                        await rebase(generation)
                    }
                    rbe.markReported(node, now: now)
                    for d in devices { rbe.markReported(d.metrics, scope: d.id, now: now) }
                }
                let generation = await runner.birthGeneration
                if generation != basedOn { await rebase(generation) }
                // Historical data the host has had acknowledged since the last pass: where it is newer than a baseline's
                // value it is the host's newest (the hub keeps the newest by time), so it is the baseline. A sample
                // buffered after the births the loop re-based on (which the re-base above cannot foresee) is then
                // not measured against the births' older values (the chaos soak lost a tick so: its births carried
                // the 98 s import, the 99 s tick was backfilled, and the 117 s tick was inside the deadband of the
                // first and outside that of the second).
                rbe.backfilled(tickMetrics(backfilled.take()))
                handedLater = handed.filter { $0.tick.report.at > tick.report.at }
                // Older than the live path's tick, or at its very time but handed over before it: a fast path (a
                // command applied) reports at the loop time of its pass, which may be a tick's, so a tick and a fast
                // path can share a time and the later one replaces the other in the inbox.
                let current = handed.lastIndex { $0.tick.report.at == tick.report.at } ?? -1
                let older = handed.indices.filter { i in
                    handed[i].tick.report.at < tick.report.at || (handed[i].tick.report.at == tick.report.at && i < current)
                }.map { handed[$0] }
                func ms(_ t: Tick) -> UInt64 { UInt64(max(0, t.report.at * 1000).rounded()) }
                // Older than the births (handed over before them, taken after): no host had them; to the buffer, as
                // any tick while not born. The births' own tick is in the births.
                await bufferTicks(older.filter { ms($0.tick) < birthAt }, version: config())
                let skipped = older.filter { ms($0.tick) > birthAt || ($0.tick.report.at == tick.report.at && ms($0.tick) == birthAt) }.map(\.tick)
                // The next births (a rebirth, a new session) carry the newest values.
                let next = withCommandAnswers(sample.birth, at: sample.at)
                let (was, now) = (birth.devices.map(\.id), next.devices.map(\.id))
                birth = next
                if now != was {
                    // A new configuration with other devices: DDEATH for those gone; births again if any is new.
                    let removed = was.filter { !now.contains($0) }, added = now.filter { !was.contains($0) }
                    logger.notice("fleet: devices changed", metadata: ["removed": "\(removed)", "added": "\(added)"])
                    bornDevices.subtract(removed)
                    await runner.devicesChanged(to: birth, removed: removed, added: added, deviceCommands: commandSchemas(birth).devices)
                } else {
                    await runner.setBirth(birth)
                }
                // Ticks the live path did not see, oldest first, by exception like the newest: a value that moved
                // and came back between two wake-ups is not lost. Only the node metrics the tick's report holds
                // (import, cap, MW, price, mode, events): the configuration and the devices' values are read from
                // the loop as it is now, which would stamp today's values with an older tick's time.
                for missed in skipped {
                    let m = FleetSample(report: missed.report, loop: missed.loop, config: nil, offer: false)
                    let node = rbe.pending(tickMetrics(m.node), now: m.at)
                    guard !node.isEmpty else { continue }
                    guard let under = await runner.publishDataAfterBirths(node: node, devices: []) else { break }
                    await reported(node, devices: [], under: under, at: m.at)
                }
                // Due metrics count as reported only once published: offline, the baselines stay as they were, so
                // a value that changed meanwhile is sent after the next birth's re-basing too.
                let node = rbe.pending(sample.node, now: sample.at)
                let devices = sample.devices.compactMap { d -> (id: String, metrics: [SparkplugMetric])? in
                    guard bornDevices.contains(d.id) else { return nil }
                    let m = rbe.pending(d.metrics, scope: d.id, now: sample.at)
                    return m.isEmpty ? nil : (d.id, m)
                }
                if !node.isEmpty || !devices.isEmpty, let under = await runner.publishDataAfterBirths(node: node, devices: devices) {
                    // Offline, nothing is sent: the node's samples are in the store-and-forward buffer.
                    await reported(node, devices: devices, under: under, at: sample.at)
                }
            }
            // Shutdown: the ticks handed over since the last drain are buffered too, if not born.
            _ = await drainHandOff()
            wake.finish()
            commandQueue.close()
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


/// The tick count a fleet command was admitted in (LoopActionBudget), for the command queue's observer.
final class AdmittedTick: Sendable {
    let value = Mutex<Int?>(nil)
}

/// The newest value of each node metric the backfill has had acknowledged, from the backfill's task to the live
/// path's loop (which makes a value newer than its baseline's the new baseline: ReportByException.backfilled).
final class BackfilledValues: Sendable {
    private let newest = Mutex<[String: SparkplugMetric]>([:])

    func note(_ metrics: [SparkplugMetric]) {
        newest.withLock { n in
            for m in metrics {
                guard let name = m.name, let at = m.timestamp else { continue }
                if let held = n[name]?.timestamp, held >= at { continue }
                n[name] = m
            }
        }
    }

    /// What was noted since the last call.
    func take() -> [SparkplugMetric] {
        newest.withLock { n in
            defer { n.removeAll() }
            return Array(n.values)
        }
    }
}


/// Store-and-forward's settings (docs/fleet.md): where the buffer is, its bound, the backfill's pace, and what to
/// tell an observer (tests, the daemon's hooks).
public struct StoreAndForwardOptions: Sendable {
    /// 7 days of 1 s ticks.
    public static let defaultCapacity = 7 * 24 * 3600

    public var buffer: any FleetBufferStorage
    public var capacity: Int
    public var throttle: BackfillThrottle
    public var observe: @Sendable (StoreAndForwardEvent) -> Void

    public init(buffer: any FleetBufferStorage = InMemoryFleetBuffer(), capacity: Int = Self.defaultCapacity,
                throttle: BackfillThrottle = BackfillThrottle(),
                observe: @escaping @Sendable (StoreAndForwardEvent) -> Void = { _ in }) {
        precondition(capacity > 0, "the store-and-forward buffer's capacity must be positive")
        self.buffer = buffer
        self.capacity = capacity
        self.throttle = throttle
        self.observe = observe
    }
}

/// What store-and-forward did, for tests and logs.
public enum StoreAndForwardEvent: Sendable, Hashable {
    /// Samples written to the buffer (the node was not born), and how many of the oldest were evicted for them.
    case buffered(Int, evicted: Int)
    /// A backfill run ended: samples acknowledged (and deleted), and whether the buffer is now empty.
    case backfilled(sent: Int, drained: Bool)
}
