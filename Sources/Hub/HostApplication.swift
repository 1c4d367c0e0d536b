// The Sparkplug B primary host application (Sparkplug 3.0): a swift-service-lifecycle `Service` and a thin I/O
// shell around `FleetModel`.
//
// - Connects with the will `spBv1.0/STATE/<host_id>` = {"online": false, "timestamp": T} (QoS 1, retained);
//   after CONNACK it subscribes to `spBv1.0/#` (QoS 1) and, once the broker has acknowledged the subscription,
//   publishes {"online": true, "timestamp": T} (QoS 1, retained). T is the session's start time, the same in the
//   will, the online STATE and the offline STATE a graceful shutdown publishes (Sparkplug 3.0 pairs them by it).
// - Every message libmosquitto's thread receives goes into the client's `AsyncStream` (that thread never waits);
//   this service's task feeds it to the model, publishes the rebirth requests the model asks for (NCMD
//   `Node Control/Rebirth` = true, QoS 0) and hands the records to a queue. A second task writes them to the sink,
//   so a slow sink never delays the model or the rebirths. With a spool directory (`spoolDirectory`,
//   RecordSpool.swift) every batch is on disk until the sink has it: an outage of the store queues on disk, and a
//   killed hub's successor writes what it left. Without one the queue is bounded memory: if it is full, the batch
//   is dropped, counted and logged as an error (never silently).
// - A lost connection is retried after `retryDelay`, with a new session time.
// - On graceful shutdown: STATE offline (retained, QoS 1, acknowledged), DISCONNECT, then the queued records are
//   written before `run` returns.

import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization

/// What the host reports as it runs (for tests, logs and the daemon).
public enum HostEvent: Sendable, Hashable {
    /// CONNACK, then `spBv1.0/#` subscribed and STATE online published (its timestamp).
    case online(stateTimestamp: UInt64)
    /// The MQTT session ended.
    case offline(reason: String)
    /// One Sparkplug message was taken into the model (with what was wrong with it, if anything).
    case received(SparkplugTopic, problem: String?)
    /// A rebirth was asked of this node.
    case rebirthRequested(SiteKey)
    /// The record queue was full: this many records were dropped (in total so far).
    case recordsDropped(total: Int)
    /// The sink failed to write a batch (its error).
    case sinkFailed(String)
    /// A libmosquitto call failed.
    case failure(String)
    /// A command was recorded (queued for the store) and published, acknowledged by the broker (HostCommands.swift).
    case commandSent(SiteKey, commandID: String)
    /// A site answered one of the hub's commands (HostCommands.swift).
    case commandAnswered(SiteKey, commandID: String, accepted: Bool)
}

public struct HostConfiguration: Sendable {
    /// The host id in `spBv1.0/STATE/<host_id>` (edge nodes name it as their primary host).
    public var hostID: String
    public var mqtt: MQTTConfiguration
    public var model: FleetModel.Configuration
    /// Batches of records (one per message) waiting for the sink in memory at most; more wait in the spool, or
    /// without one are dropped and logged.
    public var recordQueueCapacity: Int
    /// Where every batch is spooled until the sink has it (RecordSpool.swift); nil: memory only, a kill loses the
    /// queue and an outage longer than the queue drops records.
    public var spoolDirectory: String?
    /// Between connection attempts.
    public var retryDelay: Duration
    /// After the sink's first failed write, before it is tried again (then doubling, up to 30 s).
    public var sinkRetryDelay: Duration
    /// The `Command/Client ID` the hub's fleet commands claim (the site file's `fleet.roles` maps it to a role);
    /// nil: the MQTT client id.
    public var commandClientID: String?

    public init(hostID: String, mqtt: MQTTConfiguration, model: FleetModel.Configuration = .init(),
                recordQueueCapacity: Int = 10_000, retryDelay: Duration = .seconds(2), sinkRetryDelay: Duration = .seconds(1),
                commandClientID: String? = nil, spoolDirectory: String? = nil) {
        self.spoolDirectory = spoolDirectory
        self.sinkRetryDelay = sinkRetryDelay
        self.commandClientID = commandClientID
        self.hostID = hostID
        self.mqtt = mqtt
        self.model = model
        self.recordQueueCapacity = recordQueueCapacity
        self.retryDelay = retryDelay
    }
}

public final class HostApplication: Service, Sendable {
    public let configuration: HostConfiguration
    public let stateTopic: String
    private let sink: any FleetRecordSink
    let logger: Logger
    let now: @Sendable () -> UInt64
    let observe: @Sendable (HostEvent) -> Void
    let model: Mutex<FleetModel>
    let commandState = Mutex(HostCommandState())
    /// The client of the running session (commands are published through it), and whether STATE online is out.
    let currentClient = Mutex<MQTTClient?>(nil)
    let connected = Atomic<Bool>(false)
    private let dropped = Atomic<Int>(0)
    /// The running session's record queue (tests reach its spool through it).
    let recordQueue = Mutex<RecordQueue?>(nil)
    /// Set by a graceful shutdown (or cancellation): no further connection attempts.
    private let stopping = Atomic<Bool>(false)
    /// The current MQTT session's start time, ms since the epoch: the timestamp of its STATE messages.
    let session = Mutex<UInt64>(0)

    /// `now`: ms since the epoch (STATE timestamps, receipt times, staleness); inject one in tests.
    /// `commands`: where the hub's fleet commands and their outcomes are recorded (the store).
    public init(configuration: HostConfiguration, sink: any FleetRecordSink, logger: Logger,
                now: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) },
                observe: @escaping @Sendable (HostEvent) -> Void = { _ in }) throws {
        try validateSparkplugID(configuration.hostID, kind: "host id")
        self.configuration = configuration
        stateTopic = SparkplugTopic.state(hostID: configuration.hostID).description
        self.sink = sink
        self.logger = logger
        self.now = now
        self.observe = observe
        model = Mutex(FleetModel(configuration: configuration.model))
    }

    /// The fleet, one row per site ever born (for the fleet API and CLI).
    public func status() async -> [SiteStatus] {
        let t = now()
        return model.withLock { $0.status(now: t) }
    }

    /// What a fleet shed in `region` would start from now (FleetModel.shedInputs).
    public func shedInputs(region: String) -> (sites: [SiteKey: SiteShedInput], missing: [SiteKey: String]) {
        let t = now()
        return model.withLock { $0.shedInputs(region: region, now: t) }
    }

    /// The whole model (devices, metric values), a copy.
    public func snapshot() async -> FleetModel { model.withLock { $0 } }

    /// Records dropped so far because the sink fell behind.
    public var droppedRecords: Int { dropped.load(ordering: .relaxed) }

    /// Closes the spool's files as a kill -9 would, so that another hub can open the same directory (tests).
    func abandonSpool() { recordQueue.withLock { $0 }?.abandonSpool() }

    public func run() async throws {
        let client = MQTTClient(configuration.mqtt)
        currentClient.withLock { $0 = client }
        // The spool (RecordSpool.swift): opened and locked before anything is taken from the bus; a spool that cannot
        // be opened stops the hub with its reason (`hub run --spool-dir`).
        let spool = try configuration.spoolDirectory.map { try RecordSpool(directory: $0) }
        if let spool, spool.pendingBytes > 0 {
            logger.notice("hub: records an earlier run spooled and the store never confirmed are written first",
                          metadata: ["hub.spool": "\(spool.path)", "hub.spool_bytes": "\(spool.pendingBytes)"])
        }
        let queue = RecordQueue(capacity: max(1, configuration.recordQueueCapacity), spool: spool)
        recordQueue.withLock { $0 = queue }
        session.withLock { $0 = now() }
        let sink = self.sink
        let logger = self.logger
        let observe = self.observe
        let sinkRetryDelay = configuration.sinkRetryDelay

        await withTaskGroup(of: Void.self) { group in
            // The sink's own task, in arrival order: whatever has queued up since the last write goes in one call (one
            // transaction in the store), so a slow sink catches up instead of paying a commit per message.
            group.addTask {
                var wakes = queue.wakes.makeAsyncIterator()
                while true {
                    let records: [HubRecord], finished: Bool, through: UInt64?
                    do {
                        (records, finished, through) = try queue.take(maxRecords: RecordQueue.maxRecordsPerWrite)
                    } catch {
                        // Abandoned (a test's kill -9): nothing to say.
                        if queue.spoolClosed { break }
                        // A spool frame that cannot be read back: said, and the writer stops (the records stay on disk).
                        logger.critical("hub: the record spool cannot be read; records stop going to the store", metadata: ["hub.error": "\(error)"])
                        observe(.sinkFailed("\(error)"))
                        break
                    }
                    if records.isEmpty {
                        if finished { break }
                        // nil: the queue was finished (the next round takes what is left and ends), or this task was
                        // cancelled, when the wait returns at once: stop rather than spin.
                        if await wakes.next() == nil, Task.isCancelled { break }
                        continue
                    }
                    // A failed write (PostgreSQL restarting, a dropped connection) keeps its records and is tried
                    // again, sinkRetryDelay after the first failure, doubling up to 30 s; messages arriving meanwhile
                    // wait in the queue (in memory up to its capacity, then in the spool; without a spool, beyond it
                    // they are dropped, counted and logged). Only a write that still fails once the host is stopping
                    // gives up, after three tries: its records stay in the spool for the next start (without one,
                    // it says how many it lost).
                    var delay = sinkRetryDelay, failures = 0
                    while true {
                        do {
                            try await sink.write(records)
                            if failures > 0 { logger.notice("hub: the record sink recovered", metadata: ["hub.failed_writes": "\(failures)"]) }
                            if let through {
                                do { try queue.commit(through: through) } catch {
                                    // Written, not marked: a later start writes them again (samples are stored once).
                                    logger.error("hub: the record spool's commit offset was not written", metadata: ["hub.error": "\(error)"])
                                }
                            }
                            break
                        } catch {
                            failures += 1
                            observe(.sinkFailed("\(error)"))
                            if Task.isCancelled || (queue.isFinished && failures >= 3) {
                                if queue.spool != nil {
                                    logger.error("hub: the record sink failed; the spool keeps what it has not written for the next start",
                                                 metadata: ["hub.error": "\(error)", "hub.spool_bytes": "\(queue.spoolPendingBytes)"])
                                } else {
                                    logger.error("hub: the record sink failed; \(records.count) records lost", metadata: ["hub.error": "\(error)"])
                                }
                                break
                            }
                            logger.error("hub: the record sink failed; \(records.count) records kept, retrying in \(delay)",
                                         metadata: ["hub.error": "\(error)"])
                            try? await Task.sleep(for: delay)
                            delay = min(delay * 2, .seconds(30))
                        }
                    }
                }
            }
            await withTaskCancellationOrGracefulShutdownHandler {
                await self.connect(client)
                for await event in client.events {
                    switch event {
                    case .connected:
                        await self.announce(client, session: self.session.withLock { $0 })
                    case .connectionRefused(_, let reason), .disconnected(_, let reason):
                        self.connected.store(false, ordering: .releasing)
                        observe(.offline(reason: reason))
                        if self.stopping.load(ordering: .acquiring) {
                            logger.info("hub: MQTT session ended (shutting down)", metadata: ["mqtt.reason": "\(reason)"])
                            continue
                        }
                        logger.warning("hub: MQTT session ended", metadata: ["mqtt.reason": "\(reason)"])
                        try? await Task.sleep(for: self.configuration.retryDelay)
                        if self.stopping.load(ordering: .acquiring) { continue }
                        self.session.withLock { $0 = self.now() }
                        await self.connect(client)
                    case .message(let m):
                        self.take(m, client: client, records: queue)
                    }
                }
            } onCancelOrGracefulShutdown: {
                self.stopping.store(true, ordering: .releasing)
                let offline = HostState(online: false, timestamp: self.session.withLock { $0 }).encoded()
                let topic = self.stateTopic
                // STATE offline, acknowledged by the broker (or failed: not connected), then DISCONNECT and close:
                // the event stream ends and so does the loop above.
                client.submitAcknowledged([.publish(topic: topic, payload: offline, qos: 1, retain: true)]) { error in
                    if let error { logger.warning("hub: STATE offline not published", metadata: ["mqtt.error": "\(error)"]) }
                    client.submit([.disconnect]) { _ in client.close() }
                }
            }
            queue.finish()
            connected.store(false, ordering: .releasing)
            await group.waitForAll()
        }
    }

    /// CONNECT with the STATE offline will of this session (retried on failure until stopped).
    private func connect(_ client: MQTTClient) async {
        let will = MQTTWill(topic: stateTopic, payload: HostState(online: false, timestamp: session.withLock { $0 }).encoded(),
                            qos: 1, retain: true)
        while !Task.isCancelled, !stopping.load(ordering: .acquiring) {
            do {
                try await client.connect(will: will)
                return
            } catch {
                logger.warning("hub: cannot connect to the broker", metadata: ["mqtt.error": "\(error)"])
                observe(.failure("\(error)"))
                try? await Task.sleep(for: configuration.retryDelay)
            }
        }
    }

    /// After CONNACK: subscribe to the namespace, and once the broker has acknowledged it, STATE online.
    private func announce(_ client: MQTTClient, session: UInt64) async {
        let (acks, ackIn) = AsyncStream.makeStream(of: MosquittoError?.self)
        client.submitAcknowledged([.subscribe(Hub.subscription, qos: 1)]) { ackIn.yield($0); ackIn.finish() }
        var failure: MosquittoError? = MosquittoError(call: "mosquitto_subscribe", code: MosquittoError.noConnection)
        for await r in acks { failure = r }
        if let failure {
            logger.warning("hub: subscribe failed", metadata: ["mqtt.error": "\(failure)"])
            observe(.failure("\(failure)"))
            return
        }
        let online = HostState(online: true, timestamp: session).encoded()
        let (done, doneIn) = AsyncStream.makeStream(of: MosquittoError?.self)
        client.submitAcknowledged([.publish(topic: stateTopic, payload: online, qos: 1, retain: true)]) { doneIn.yield($0); doneIn.finish() }
        var result: MosquittoError? = MosquittoError(call: "mosquitto_publish", code: MosquittoError.noConnection)
        for await r in done { result = r }
        if let result {
            logger.warning("hub: STATE online not published", metadata: ["mqtt.error": "\(result)"])
            observe(.failure("\(result)"))
            return
        }
        connected.store(true, ordering: .releasing)
        logger.info("hub: primary host online", metadata: ["sparkplug.host": "\(configuration.hostID)"])
        observe(.online(stateTimestamp: session))
    }

    /// Queues `batch` for the sink (`command`, `sync`: RecordQueue.push); a batch that cannot be queued is dropped,
    /// counted and logged. Returns whether it was queued.
    @discardableResult
    func enqueue(_ batch: [HubRecord], into records: RecordQueue, command: Bool = false, sync: Bool = false) -> Bool {
        let pushed = records.push(batch, command: command, sync: sync)
        if let e = pushed.spoolError {
            logger.error("hub: a batch of records could not be spooled", metadata: ["hub.error": "\(e)"])
        }
        if !pushed.ok {
            let total = dropped.add(batch.count, ordering: .relaxed).newValue
            logger.error("hub: the record sink is behind (queue of \(configuration.recordQueueCapacity) batches full\(records.spool == nil ? "" : ", spool not writable")): records dropped",
                         metadata: ["hub.dropped": "\(batch.count)", "hub.dropped_total": "\(total)"])
            observe(.recordsDropped(total: total))
        }
        return pushed.ok
    }

    /// One message: into the model; its records to the queue; a rebirth request to the node if asked for.
    private func take(_ message: MQTTMessage, client: MQTTClient, records: RecordQueue) {
        guard let topic = try? SparkplugTopic(parsing: message.topic) else {
            logger.debug("hub: not a Sparkplug topic", metadata: ["mqtt.topic": "\(message.topic)"])
            return
        }
        if case .state = topic { return }
        let t = now()
        let outcome = model.withLock { $0.receive(topic, payload: message.payload, now: t) }
        if let problem = outcome.problem {
            logger.warning("hub: \(problem)", metadata: ["mqtt.topic": "\(message.topic)"])
        }
        if !outcome.records.isEmpty { enqueue(outcome.records, into: records) }
        if let key = outcome.rebirth {
            let payload = SparkplugPayload(timestamp: t, seq: nil, metrics: [
                SparkplugMetric(name: SparkplugMetricName.rebirth, timestamp: t, value: .boolean(true)),
            ]).encoded()
            let ncmd = SparkplugTopic.node(group: key.group, type: .ncmd, edge: key.edge).description
            let logger = self.logger
            let observe = self.observe
            client.submit([.publish(topic: ncmd, payload: payload, qos: 0, retain: false)]) { results in
                if let error = results.first ?? nil {
                    logger.warning("hub: rebirth request not sent", metadata: ["sparkplug.node": "\(key)", "mqtt.error": "\(error)"])
                    observe(.failure("\(error)"))
                }
            }
            logger.notice("hub: asked for a rebirth", metadata: ["sparkplug.node": "\(key)"])
            observe(.rebirthRequested(key))
        }
        if case let .node(group, type, edge) = topic, type == .ndata || type == .nbirth {
            takeReply(SiteKey(group: group, edge: edge), now: t, records: records)
        }
        observe(.received(topic, problem: outcome.problem))
    }
}

/// Records kept in memory (tests, and `switchyard hub` without a database).
public actor MemoryRecordSink: FleetRecordSink {
    public private(set) var records: [HubRecord] = []
    /// At most this many records are kept (the oldest go first); nil: all.
    public let limit: Int?

    public init(limit: Int? = nil) { self.limit = limit }

    public func write(_ batch: [HubRecord]) async throws {
        records.append(contentsOf: batch)
        if let limit, records.count > limit { records.removeFirst(records.count - limit) }
    }
}

/// The host's records on their way to the sink: at most `capacity` batches (one per message) wait in memory; `take`
/// takes every batch queued so far (up to `maxRecords` records, at least one batch), in arrival order.
///
/// With a spool (RecordSpool.swift), every batch is appended to it first; a batch that finds the memory full, and
/// every one after it until the reader has caught up, waits on disk only, and `take` reads them back in order.
/// Nothing is dropped unless the spool cannot be written. `commit` marks what the sink has.
final class RecordQueue: Sendable {
    static let maxRecordsPerWrite = 5_000
    let capacity: Int
    private struct State {
        /// In memory, oldest first, each with the spool offset after its frame (nil: not spooled).
        var batches: [(records: [HubRecord], end: UInt64?)] = []
        /// Batches from this spool offset to the spool's end are on disk only (they come after those in memory).
        var diskFrom: UInt64?
        var finished = false
    }
    private let state: Mutex<State>
    /// Only touched under `state`'s lock, or by the one reader for frames already written.
    let spool: RecordSpool?
    /// Yielded after every push (the newest only), finished by `finish`: the writer waits on it when the queue is empty.
    let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(capacity: Int, spool: RecordSpool? = nil) {
        self.capacity = capacity
        self.spool = spool
        var s = State()
        // Batches an earlier hub spooled and the store never confirmed go first.
        if let spool, spool.pendingBytes > 0 { s.diskFrom = spool.committed }
        state = Mutex(s)
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        if s.diskFrom != nil { wake.yield() }
    }

    /// False (and nothing queued) when the batch could be neither spooled nor kept in memory; `spoolError` says why
    /// the spool refused it. `command` (a command the hub is about to send, or an outcome of one): a batch the spool
    /// did not take is kept in memory even past `capacity` (a few records per command, at the rate the hub sends
    /// them): a command is never refused for lack of room. `sync`: the spool is synced to disk after the append (a
    /// command before it goes out survives a power cut too, not only a kill); a failed sync is a spool error.
    func push(_ batch: [HubRecord], command: Bool = false, sync: Bool = false) -> (ok: Bool, spoolError: (any Error)?) {
        let frame = spool.map { _ in RecordSpoolCodec.frame(batch) }
        let result = state.withLock { s -> (Bool, (any Error)?) in
            var spooled: (start: UInt64, end: UInt64)?
            var failure: (any Error)?
            if let spool, let frame {
                do { spooled = try spool.append(frame) } catch { failure = error }
                if sync, spooled != nil {
                    do { try spool.sync() } catch { failure = error }
                }
            }
            if s.diskFrom == nil && s.batches.count < capacity || command && spooled == nil {
                s.batches.append((batch, spooled?.end))
                return (true, failure)
            }
            // Memory full, or older batches wait on disk: this one waits there too (after them), if it could be written.
            guard let spooled else { return (false, failure) }
            if s.diskFrom == nil { s.diskFrom = spooled.start }
            return (true, nil)
        }
        if result.0 { wake.yield() }
        return result
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// No more batches: `take` returns what is left, then reports finished.
    func finish() {
        state.withLock { $0.finished = true }
        wake.finish()
    }

    /// Every batch queued so far (at most `maxRecords` records, but at least one batch), whether the queue is finished
    /// and now empty, and the spool offset to `commit` once the sink has them (nil: nothing spooled).
    func take(maxRecords: Int) throws -> (records: [HubRecord], finished: Bool, through: UInt64?) {
        let memory = state.withLock { s -> (records: [HubRecord], finished: Bool, through: UInt64?, diskFrom: UInt64?, limit: UInt64) in
            var out: [HubRecord] = []
            var n = 0
            var through: UInt64?
            for b in s.batches {
                if !out.isEmpty && out.count + b.records.count > maxRecords { break }
                out += b.records
                through = b.end ?? through
                n += 1
            }
            s.batches.removeFirst(n)
            return (out, s.finished && s.batches.isEmpty && s.diskFrom == nil, through, n == 0 ? s.diskFrom : nil, spool?.end ?? 0)
        }
        guard let from = memory.diskFrom, let spool else { return (memory.records, memory.finished, memory.through) }
        // On disk only: read back in order (frames below `limit` are whole and never change).
        let (records, next) = try spool.read(from: from, upTo: memory.limit, maxRecords: maxRecords)
        state.withLock { s in
            // Caught up with the spool's end: new batches may wait in memory again.
            s.diskFrom = next >= spool.end ? nil : next
        }
        return (records, false, next)
    }

    /// The sink has everything up to `through`.
    func commit(through: UInt64) throws {
        try state.withLock { _ in try spool?.commit(through: through) }
    }

    /// Closes the spool as a killed process would (tests).
    func abandonSpool() { state.withLock { _ in spool?.abandon() } }

    var spoolClosed: Bool { state.withLock { _ in spool?.isClosed ?? false } }

    /// Bytes the spool holds that the sink has not confirmed (read under the lock, as appends and commits run).
    var spoolPendingBytes: UInt64 { state.withLock { _ in spool?.pendingBytes ?? 0 } }
}
