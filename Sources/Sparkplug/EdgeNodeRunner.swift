// Runs an EdgeNodeSession over an MQTTClient: performs the session's actions in order, feeds it
// the client's events, and starts a new session (next bdSeq) after a lost connection.

/// What the runner reports to the application.
public enum EdgeNodeEvent: Sendable, Hashable {
    /// CONNACK for the session with this bdSeq (births follow, or wait for the primary host).
    case connected(BdSeq)
    /// Births published (NBIRTH with this bdSeq, then the DBIRTHs).
    case born(BdSeq)
    /// The MQTT session ended; data is not sent until the next birth.
    case offline(reason: String)
    case command(device: String?, [SparkplugCommand])
    /// `echo`: the schema's echo metrics the refused payload carried (CommandSchema.echo).
    case rejected(device: String?, CommandRejection, echo: [String: MetricValue] = [:])
    /// A libmosquitto call failed (connect, publish, subscribe); the runner carries on.
    case failure(MosquittoError)
    /// The bdSeq could not be saved (the session still starts; the next restart may reuse a bdSeq).
    case bdSeqNotSaved(String)
}

public actor EdgeNodeRunner {
    public let client: MQTTClient
    public private(set) var session: EdgeNodeSession
    public nonisolated let events: AsyncStream<EdgeNodeEvent>
    private let eventSink: AsyncStream<EdgeNodeEvent>.Continuation
    private let store: any BdSeqStore
    private let now: @Sendable () -> UInt64
    private let retryDelay: Duration
    private var birth: BirthCertificate
    /// The certificate of the last births handed to the client (NBIRTH first, so every data message submitted after
    /// follows them on the connection). What a host holds as the node's values after a birth are these, not the
    /// newest `setBirth`: report-by-exception baselines must be them.
    public private(set) var publishedBirth: BirthCertificate?
    /// Counts the births handed to the client: a change tells the application to re-base on `publishedBirth`.
    public private(set) var birthGeneration = 0

    /// `now` gives ms since the epoch (inject a clock in tests); `retryDelay` spaces connection attempts.
    public init(client: MQTTClient, identity: EdgeNodeIdentity, store: any BdSeqStore, birth: BirthCertificate,
                nodeCommands: CommandSchema = .node(), deviceCommands: [String: CommandSchema] = [:],
                retryDelay: Duration = .seconds(2), now: @escaping @Sendable () -> UInt64) throws {
        self.client = client
        self.store = store
        self.now = now
        self.retryDelay = retryDelay
        self.birth = birth
        session = EdgeNodeSession(identity: identity, lastBdSeq: try store.load(), nodeCommands: nodeCommands, deviceCommands: deviceCommands)
        (events, eventSink) = AsyncStream<EdgeNodeEvent>.makeStream()
    }

    /// Runs until the client is closed (its event stream finishes).
    public func run() async {
        await startSession()
        for await event in client.events {
            switch event {
            case .connected:
                if let b = session.bdSeq { eventSink.yield(.connected(b)) }
                await perform(session.connected(now: now(), birth: birth))
            case .connectionRefused(_, let reason), .disconnected(_, let reason):
                session.disconnected()
                eventSink.yield(.offline(reason: reason))
                if Task.isCancelled { break }
                try? await Task.sleep(for: retryDelay)
                await startSession()
            case .message(let m):
                await perform(session.received(m, now: now(), birth: birth))
            }
        }
        eventSink.finish()
    }

    /// The metrics the next births carry (call when metrics or devices change; it does not rebirth by itself).
    public func setBirth(_ certificate: BirthCertificate) { birth = certificate }

    /// The devices changed: `certificate` carries the new set. Online, a DDEATH for each device that went away
    /// and, if any is new, the births again (EdgeNodeSession.devicesChanged); offline, the next births carry it.
    public func devicesChanged(to certificate: BirthCertificate, removed: [String], added: [String],
                               deviceCommands: [String: CommandSchema]) async {
        birth = certificate
        await perform(session.devicesChanged(removed: removed, added: added, deviceCommands: deviceCommands, now: now(), birth: certificate))
    }

    /// Publishes NDATA/DDATA if online; returns false when offline (nothing was sent: keep the data).
    @discardableResult
    public func publishData(node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])] = []) async -> Bool {
        await publishDataAfterBirths(node: node, devices: devices) != nil
    }

    /// `publishData`, telling which births the data follows: the `birthGeneration` it was sent under, nil when
    /// offline (nothing sent). Births that went out after the application read `birthGeneration` and before this
    /// publish are under the data: the host holds those births' values with this data's on top of them.
    public func publishDataAfterBirths(node: [SparkplugMetric], devices: [(id: String, metrics: [SparkplugMetric])] = []) async -> Int? {
        let actions = session.data(node: node, devices: devices, now: now())
        guard !actions.isEmpty else { return nil }
        let generation = birthGeneration
        await perform(actions)
        return generation
    }

    /// Store-and-forward: publishes one NDATA of buffered node metrics (the caller flags them historical) and
    /// waits until the broker has it: the NDATA (QoS 0, as Sparkplug requires) written whole to the socket,
    /// then a SUBACK for a repeated NCMD subscription sent after it, which the broker answers only once it has
    /// read everything before it on the connection. True: acknowledged (delete what it carried); false: not
    /// sent or not acknowledged (offline, or the connection ended first: keep it and send it again).
    public func publishHistorical(node: [SparkplugMetric]) async -> Bool {
        var operations: [MQTTOperation] = []
        for action in session.data(node: node, devices: [], now: now()) {
            if case let .publish(topic, payload, qos, retain) = action {
                operations.append(.publish(topic: topic, payload: payload, qos: qos, retain: retain))
            }
        }
        guard !operations.isEmpty else { return false }
        operations.append(.subscribe(session.identity.topic(.ncmd), qos: 1))
        let (results, sink) = AsyncStream<MosquittoError?>.makeStream()
        client.submitAcknowledged(operations) { sink.yield($0); sink.finish() }
        var outcome: MosquittoError? = MosquittoError(call: "acknowledgement", code: MosquittoError.noConnection)
        for await r in results { outcome = r }
        if let outcome { eventSink.yield(.failure(outcome)); return false }
        return true
    }

    private func startSession() async {
        while !Task.isCancelled {
            let actions = session.start(now: now())
            if await perform(actions) { return }
            try? await Task.sleep(for: retryDelay)
        }
    }

    /// Performs actions in order; false if the connect failed. The MQTT operations are submitted to
    /// the client synchronously (before any suspension), so messages leave in seq order even when
    /// another call on this actor runs while this one awaits the results.
    @discardableResult
    private func perform(_ actions: [EdgeNodeSession.Action]) async -> Bool {
        var operations: [MQTTOperation] = []
        var births: [Int: BdSeq] = [:]  // operation index of an NBIRTH -> its bdSeq
        // The actions were built from `birth` just now (no suspension since): it is what the births carry.
        let certificate = birth
        var connectIndex: Int?
        for action in actions {
            switch action {
            case .saveBdSeq(let b):
                do { try store.save(b) } catch { eventSink.yield(.bdSeqNotSaved("\(error)")) }
            case .connect(let will):
                connectIndex = operations.count
                operations.append(.connect(will: will))
            case let .subscribe(pattern, qos):
                operations.append(.subscribe(pattern, qos: qos))
            case let .publish(topic, payload, qos, retain):
                if topic == session.identity.topic(.nbirth), let b = session.bdSeq { births[operations.count] = b }
                operations.append(.publish(topic: topic, payload: payload, qos: qos, retain: retain))
            case .disconnect:
                operations.append(.disconnect)
            case let .command(device, commands):
                eventSink.yield(.command(device: device, commands))
            case let .rejected(device, why, echo):
                eventSink.yield(.rejected(device: device, why, echo: echo))
            }
        }
        guard !operations.isEmpty else { return true }
        if !births.isEmpty {
            publishedBirth = certificate
            birthGeneration += 1
        }
        let (results, sink) = AsyncStream<[MosquittoError?]>.makeStream()
        client.submit(operations) { sink.yield($0); sink.finish() }
        var outcome: [MosquittoError?] = []
        for await r in results { outcome = r }
        var ok = true
        for (i, error) in outcome.enumerated() {
            if let error {
                eventSink.yield(.failure(error))
                if i == connectIndex { session.disconnected(); ok = false }
            } else if let b = births[i] {
                eventSink.yield(.born(b))
            }
        }
        return ok
    }
}
