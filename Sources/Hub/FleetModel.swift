// The fleet as the primary host knows it, as a pure value: no I/O, no clock reads. `HostApplication` feeds it
// every Sparkplug message it receives (topic, payload bytes, and the time, ms since the epoch) and carries out
// what it answers: records for the sink and rebirth requests for edge nodes. Deterministic, so every rule is
// unit-tested on an injected time (FleetModelTests).
//
// The rules (Sparkplug 3.0, host side):
// - NBIRTH starts (or restarts) a node's session: seq 0, the session's bdSeq, every node metric; the node's devices
//   are forgotten until their DBIRTHs follow.
// - Every later message of the node (DBIRTH, NDATA, DDATA, DDEATH) must carry the previous seq + 1 (255 -> 0).
//   A gap is recorded (`HubRecord.sequenceGap`) and answered with a rebirth request; the message itself is still
//   used (its metrics are typed by the births the host holds), and its seq becomes the new reference.
// - NDEATH ends the session only when its bdSeq is the NBIRTH's: a late will from an older session is ignored.
// - Data from a node that is not born (never, or since its death), or from a device without a DBIRTH, is not used:
//   the host cannot type or trust it; it asks the node for a rebirth.
// - Rebirth requests are rate-limited per node (`Configuration.rebirthInterval`).
// - Historical metrics (`is_historical`) are recorded as historical samples and never change the live values.

import Sparkplug

/// Whether a site is heard from.
public enum SiteLiveness: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Born, and a message arrived within `staleAfter`.
    case online
    /// Born, but nothing arrived for longer than `staleAfter` (a site reports every metric at least every 60 s).
    case stale
    /// Never born, or dead (NDEATH with the session's bdSeq).
    case offline

    public var description: String { rawValue }
}

/// One metric's last known live value.
public struct MetricState: Sendable, Hashable {
    public var dataType: SparkplugDataType
    /// nil: null.
    public var value: MetricValue?
    /// The metric's timestamp (the payload's when the metric has none), ms since the epoch.
    public var at: UInt64

    public init(dataType: SparkplugDataType, value: MetricValue?, at: UInt64) {
        self.dataType = dataType
        self.value = value
        self.at = at
    }
}

/// One Sparkplug device of an edge node.
public struct DeviceState: Sendable, Hashable {
    public var online: Bool
    public var metrics: [String: MetricState]
    public var births: Int
    public var lastSeen: UInt64

    public init(online: Bool, metrics: [String: MetricState], births: Int, lastSeen: UInt64) {
        self.online = online
        self.metrics = metrics
        self.births = births
        self.lastSeen = lastSeen
    }
}

/// One edge node (a site).
public struct NodeState: Sendable, Hashable {
    public var key: SiteKey
    /// Born and not dead.
    public var born: Bool
    /// The bdSeq of the current (or last) session, from its NBIRTH.
    public var bdSeq: UInt64?
    /// The seq of the last message used from this session.
    public var lastSeq: UInt8?
    public var metrics: [String: MetricState]
    /// Alias -> name, from the NBIRTH (node metrics) and each DBIRTH.
    public var aliases: [UInt64: String]
    public var deviceAliases: [String: [UInt64: String]]
    public var devices: [String: DeviceState]
    /// NBIRTHs received (rebirths included).
    public var births: Int
    /// When the host last received anything from this node (its own clock), ms since the epoch; nil: never.
    public var lastSeen: UInt64?
    /// When the host last asked this node for a rebirth.
    public var lastRebirthRequest: UInt64?
    public var sequenceGaps: Int

    public init(key: SiteKey) {
        self.key = key
        born = false
        metrics = [:]
        aliases = [:]
        deviceAliases = [:]
        devices = [:]
        births = 0
        sequenceGaps = 0
    }
}

/// One row of the fleet view (`fleet status`): the site-level metrics the edge node publishes (FleetMetricName).
public struct SiteStatus: Sendable, Hashable, Codable {
    public var site: SiteKey
    /// The Sparkplug group id, which is the site's region by default.
    public var region: String { site.group }
    public var edge: String { site.edge }
    public var importKW: Double?
    public var capKW: Double?
    public var miningMW: Double?
    public var inferenceMW: Double?
    public var priceUsdPerMWh: Double?
    public var governorMode: String?
    public var configVersion: Int64?
    /// The SHA-256 of the configuration in force (`Site/Config SHA256`).
    public var configSHA256: String?
    /// The site's offer to a fleet shed (`Site/Offer/…`), nil when it publishes none or a step is malformed.
    public var offer: [OfferStep]?
    /// When the host last heard from the site, ms since the epoch.
    public var lastSeen: UInt64?
    public var liveness: SiteLiveness
    public var devices: Int
    public var devicesOnline: Int
    public var births: Int
    public var bdSeq: UInt64?

    public init(site: SiteKey, importKW: Double? = nil, capKW: Double? = nil, miningMW: Double? = nil, inferenceMW: Double? = nil,
                priceUsdPerMWh: Double? = nil, governorMode: String? = nil, configVersion: Int64? = nil, lastSeen: UInt64? = nil,
                liveness: SiteLiveness, devices: Int = 0, devicesOnline: Int = 0, births: Int = 0, bdSeq: UInt64? = nil,
                configSHA256: String? = nil, offer: [OfferStep]? = nil) {
        self.configSHA256 = configSHA256
        self.offer = offer
        self.site = site
        self.importKW = importKW
        self.capKW = capKW
        self.miningMW = miningMW
        self.inferenceMW = inferenceMW
        self.priceUsdPerMWh = priceUsdPerMWh
        self.governorMode = governorMode
        self.configVersion = configVersion
        self.lastSeen = lastSeen
        self.liveness = liveness
        self.devices = devices
        self.devicesOnline = devicesOnline
        self.births = births
        self.bdSeq = bdSeq
    }
}

public struct FleetModel: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// A born node heard from longer ago than this is stale (ms). Default 120 s: twice the edge node's longest
        /// report interval (every metric at least every 60 s).
        public var staleAfterMS: UInt64
        /// At most one rebirth request per node within this many ms (default 10 s).
        public var rebirthIntervalMS: UInt64

        public init(staleAfterMS: UInt64 = 120_000, rebirthIntervalMS: UInt64 = 10_000) {
            self.staleAfterMS = staleAfterMS
            self.rebirthIntervalMS = rebirthIntervalMS
        }
    }

    /// What one message led to: records for the sink, a rebirth to ask for, and what was wrong with it, if anything.
    public struct Outcome: Sendable, Hashable {
        public var records: [HubRecord] = []
        /// Ask this node for a rebirth (NCMD `Node Control/Rebirth` = true); already rate-limited.
        public var rebirth: SiteKey?
        /// Why (part of) the message was not used; nil: used whole.
        public var problem: String?

        public init(records: [HubRecord] = [], rebirth: SiteKey? = nil, problem: String? = nil) {
            self.records = records
            self.rebirth = rebirth
            self.problem = problem
        }
    }

    public var configuration: Configuration
    public private(set) var nodes: [SiteKey: NodeState] = [:]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: - Messages

    /// Takes one message from the broker. `now`: the host's time of receipt, ms since the epoch.
    public mutating func receive(topic: String, payload: [UInt8], now: UInt64) -> Outcome {
        let parsed: SparkplugTopic
        do { parsed = try SparkplugTopic(parsing: topic) } catch { return Outcome(problem: "\(error)") }
        return receive(parsed, payload: payload, now: now)
    }

    public mutating func receive(_ topic: SparkplugTopic, payload: [UInt8], now: UInt64) -> Outcome {
        switch topic {
        case .state:
            return Outcome()
        case let .node(group, type, edge):
            let key = SiteKey(group: group, edge: edge)
            switch type {
            case .nbirth: return nodeBirth(key, payload, now: now)
            case .ndeath: return nodeDeath(key, payload, now: now)
            case .ndata: return data(key, device: nil, payload, now: now)
            default: return Outcome()  // NCMD: commands to the node, ours or another host's
            }
        case let .device(group, type, edge, device):
            let key = SiteKey(group: group, edge: edge)
            switch type {
            case .dbirth: return deviceBirth(key, device, payload, now: now)
            case .ddeath: return deviceDeath(key, device, payload, now: now)
            case .ddata: return data(key, device: device, payload, now: now)
            default: return Outcome()  // DCMD
            }
        }
    }

    private mutating func nodeBirth(_ key: SiteKey, _ bytes: [UInt8], now: UInt64) -> Outcome {
        let payload: SparkplugPayload
        do { payload = try SparkplugPayload(decoding: bytes) } catch {
            return refuse(key, "NBIRTH from \(key): \(error)", now: now)
        }
        guard let bdSeq = payload.metric(named: SparkplugMetricName.bdSeq)?.value.flatMap(Self.unsigned) else {
            return refuse(key, "NBIRTH from \(key) has no bdSeq metric", now: now)
        }
        var node = nodes[key] ?? NodeState(key: key)
        let at = payload.timestamp ?? now
        var outcome = Outcome()
        if payload.seq != 0 {
            outcome.problem = "NBIRTH from \(key) carries seq \(payload.seq.map { "\($0)" } ?? "none"), not 0"
        }
        node.born = true
        node.bdSeq = bdSeq
        node.lastSeq = payload.seq ?? 0
        node.births += 1
        node.lastSeen = now
        node.devices = [:]
        node.deviceAliases = [:]
        node.aliases = Self.aliases(payload.metrics)
        node.metrics = [:]
        var samples: [MetricSample] = []
        for m in payload.metrics {
            guard let name = m.name else { continue }
            let sampleAt = m.timestamp ?? at
            samples.append(MetricSample(site: key, device: nil, name: name, at: sampleAt, value: m.value, historical: m.isHistorical))
            if !m.isHistorical { node.metrics[name] = MetricState(dataType: m.dataType, value: m.value, at: sampleAt) }
        }
        nodes[key] = node
        outcome.records = [.birth(BirthRecord(site: key, device: nil, bdSeq: bdSeq, at: at, metrics: payload.metrics))]
        if !samples.isEmpty { outcome.records.append(.samples(samples)) }
        return outcome
    }

    private mutating func nodeDeath(_ key: SiteKey, _ bytes: [UInt8], now: UInt64) -> Outcome {
        let payload: SparkplugPayload
        do { payload = try SparkplugPayload(decoding: bytes) } catch {
            return Outcome(problem: "NDEATH from \(key): \(error)")
        }
        guard let bdSeq = payload.metric(named: SparkplugMetricName.bdSeq)?.value.flatMap(Self.unsigned) else {
            return Outcome(problem: "NDEATH from \(key) has no bdSeq metric: ignored")
        }
        guard var node = nodes[key], node.born else {
            return Outcome(problem: "NDEATH from \(key) (bdSeq \(bdSeq)), which is not born: ignored")
        }
        guard node.bdSeq == bdSeq else {
            return Outcome(problem: "NDEATH from \(key) with bdSeq \(bdSeq), not the session's \(node.bdSeq.map { "\($0)" } ?? "none"): ignored")
        }
        node.born = false
        node.lastSeq = nil
        node.lastSeen = now
        for id in node.devices.keys { node.devices[id]?.online = false }
        nodes[key] = node
        return Outcome(records: [.death(site: key, device: nil, bdSeq: bdSeq, at: payload.timestamp ?? now)])
    }

    private mutating func deviceBirth(_ key: SiteKey, _ device: String, _ bytes: [UInt8], now: UInt64) -> Outcome {
        guard var node = nodes[key], node.born else {
            return refuse(key, "DBIRTH \(device) from \(key), which is not born", now: now)
        }
        let payload: SparkplugPayload
        do { payload = try SparkplugPayload(decoding: bytes) } catch {
            return refuse(key, "DBIRTH \(device) from \(key): \(error)", now: now)
        }
        var outcome = Outcome()
        sequence(&node, payload.seq, now: now, into: &outcome)
        let at = payload.timestamp ?? now
        var state = DeviceState(online: true, metrics: [:], births: (node.devices[device]?.births ?? 0) + 1, lastSeen: now)
        var samples: [MetricSample] = []
        for m in payload.metrics {
            guard let name = m.name else { continue }
            let sampleAt = m.timestamp ?? at
            samples.append(MetricSample(site: key, device: device, name: name, at: sampleAt, value: m.value, historical: m.isHistorical))
            if !m.isHistorical { state.metrics[name] = MetricState(dataType: m.dataType, value: m.value, at: sampleAt) }
        }
        node.devices[device] = state
        node.deviceAliases[device] = Self.aliases(payload.metrics)
        node.lastSeen = now
        nodes[key] = node
        outcome.records.append(.birth(BirthRecord(site: key, device: device, bdSeq: node.bdSeq, at: at, metrics: payload.metrics)))
        if !samples.isEmpty { outcome.records.append(.samples(samples)) }
        return outcome
    }

    private mutating func deviceDeath(_ key: SiteKey, _ device: String, _ bytes: [UInt8], now: UInt64) -> Outcome {
        guard var node = nodes[key], node.born else {
            return refuse(key, "DDEATH \(device) from \(key), which is not born", now: now)
        }
        let payload: SparkplugPayload
        do { payload = try SparkplugPayload(decoding: bytes) } catch {
            return Outcome(problem: "DDEATH \(device) from \(key): \(error)")
        }
        var outcome = Outcome()
        sequence(&node, payload.seq, now: now, into: &outcome)
        node.lastSeen = now
        if node.devices[device] != nil {
            node.devices[device]?.online = false
            node.devices[device]?.lastSeen = now
            outcome.records.append(.death(site: key, device: device, bdSeq: node.bdSeq, at: payload.timestamp ?? now))
        } else {
            outcome.problem = "DDEATH for \(device) of \(key), which has no DBIRTH"
        }
        nodes[key] = node
        return outcome
    }

    private mutating func data(_ key: SiteKey, device: String?, _ bytes: [UInt8], now: UInt64) -> Outcome {
        let what = device.map { "DDATA \($0)" } ?? "NDATA"
        guard var node = nodes[key], node.born else {
            return refuse(key, "\(what) from \(key), which is not born", now: now)
        }
        if let device, node.devices[device]?.online != true {
            // The node is born but this device is not: without its DBIRTH the data cannot be typed. Its seq still
            // counts for the node's sequence.
            var outcome = Outcome()
            if let seq = SparkplugPayload.envelope(of: bytes)?.seq { sequence(&node, seq, now: now, into: &outcome) }
            node.lastSeen = now
            requestRebirth(&node, now: now, into: &outcome)
            nodes[key] = node
            outcome.problem = "\(what) from \(key) without a DBIRTH"
            return outcome
        }
        let known: [String: MetricState] = device.flatMap { node.devices[$0]?.metrics } ?? node.metrics
        let aliases = device.flatMap { node.deviceAliases[$0] } ?? node.aliases
        let payload: SparkplugPayload
        do {
            payload = try SparkplugPayload(decoding: bytes) { known[$0]?.dataType }
        } catch {
            // Undecodable: its seq (if readable) still counts, or the next message would look like a gap.
            if let seq = SparkplugPayload.envelope(of: bytes)?.seq {
                var outcome = Outcome(problem: "\(what) from \(key): \(error)")
                sequence(&node, seq, now: now, into: &outcome)
                node.lastSeen = now
                nodes[key] = node
                return outcome
            }
            return Outcome(problem: "\(what) from \(key): \(error)")
        }
        var outcome = Outcome()
        sequence(&node, payload.seq, now: now, into: &outcome)
        node.lastSeen = now
        let at = payload.timestamp ?? now
        var samples: [MetricSample] = []
        var unknown: [String] = []
        for m in payload.metrics {
            guard let name = m.name ?? m.alias.flatMap({ aliases[$0] }) else {
                unknown.append(m.alias.map { "alias \($0)" } ?? "unnamed")
                continue
            }
            let sampleAt = m.timestamp ?? at
            samples.append(MetricSample(site: key, device: device, name: name, at: sampleAt, value: m.value, historical: m.isHistorical))
            if m.isHistorical { continue }
            // Live: the newest value by timestamp wins (a reordered older live value does not overwrite a newer one).
            let state = MetricState(dataType: known[name]?.dataType ?? m.dataType, value: m.value, at: sampleAt)
            if let device {
                if let old = node.devices[device]?.metrics[name], old.at > sampleAt { continue }
                node.devices[device]?.metrics[name] = state
                node.devices[device]?.lastSeen = now
            } else {
                if let old = node.metrics[name], old.at > sampleAt { continue }
                node.metrics[name] = state
            }
        }
        nodes[key] = node
        if !samples.isEmpty { outcome.records.append(.samples(samples)) }
        if !unknown.isEmpty {
            outcome.problem = "\(what) from \(key): metrics not in the birth: \(unknown.joined(separator: ", "))"
        }
        return outcome
    }

    /// Checks `seq` against the node's last one; a gap (or a missing seq) is recorded and answered with a rebirth.
    private mutating func sequence(_ node: inout NodeState, _ seq: UInt8?, now: UInt64, into outcome: inout Outcome) {
        let expected = node.lastSeq.map { $0 &+ 1 } ?? 0
        guard let seq else {
            outcome.problem = "message from \(node.key) without seq"
            requestRebirth(&node, now: now, into: &outcome)
            return
        }
        defer { node.lastSeq = seq }
        guard seq != expected else { return }
        node.sequenceGaps += 1
        outcome.records.append(.sequenceGap(site: node.key, expected: expected, received: seq, at: now))
        outcome.problem = "seq \(seq) from \(node.key), expected \(expected)"
        requestRebirth(&node, now: now, into: &outcome)
    }

    private mutating func requestRebirth(_ node: inout NodeState, now: UInt64, into outcome: inout Outcome) {
        if let last = node.lastRebirthRequest, now < last &+ configuration.rebirthIntervalMS, now >= last { return }
        node.lastRebirthRequest = now
        outcome.rebirth = node.key
    }

    /// A message the host cannot use from a node that is not (properly) born: ask it to rebirth.
    private mutating func refuse(_ key: SiteKey, _ problem: String, now: UInt64) -> Outcome {
        var node = nodes[key] ?? NodeState(key: key)
        node.lastSeen = now
        var outcome = Outcome(problem: problem)
        requestRebirth(&node, now: now, into: &outcome)
        nodes[key] = node
        return outcome
    }

    // MARK: - Views

    /// Whether the node is heard from at `now`.
    public func liveness(of key: SiteKey, now: UInt64) -> SiteLiveness {
        guard let node = nodes[key], node.born else { return .offline }
        guard let seen = node.lastSeen else { return .offline }
        return now > seen &+ configuration.staleAfterMS ? .stale : .online
    }

    /// One row per site that has ever been born, ordered by region then edge node id.
    public func status(now: UInt64) -> [SiteStatus] {
        nodes.values.filter { $0.births > 0 }.sorted { $0.key < $1.key }.map { node in
            func double(_ name: String) -> Double? { node.metrics[name]?.value.flatMap(Self.double) }
            var mode: String?
            if case let .string(s)? = node.metrics[FleetMetricName.mode]?.value { mode = s }
            if case let .text(s)? = node.metrics[FleetMetricName.mode]?.value { mode = s }
            var version: Int64?
            if let v = node.metrics[FleetMetricName.configVersion]?.value.flatMap(Self.double) { version = Int64(exactly: v) }
            var sha: String?
            if case let .string(s)? = node.metrics[FleetMetricName.configSHA256]?.value { sha = s }
            return SiteStatus(site: node.key, importKW: double(FleetMetricName.importKW), capKW: double(FleetMetricName.capKW),
                              miningMW: double(FleetMetricName.miningMW), inferenceMW: double(FleetMetricName.inferenceMW),
                              priceUsdPerMWh: double(FleetMetricName.price), governorMode: mode, configVersion: version,
                              lastSeen: node.lastSeen, liveness: liveness(of: node.key, now: now),
                              devices: node.devices.count, devicesOnline: node.devices.values.filter(\.online).count,
                              births: node.births, bdSeq: node.bdSeq, configSHA256: sha, offer: Self.offer(node))
        }
    }

    /// A node's offer curve from its `Site/Offer/…` metrics (import kW → MW), cheapest step first; nil when it
    /// publishes none, or a step in use is missing or not a positive, finite number (the site is then left out of
    /// fleet sheds rather than guessed at). Zero steps: an empty offer (nothing to shed).
    static func offer(_ node: NodeState) -> [OfferStep]? {
        guard let n = node.metrics[FleetMetricName.offerSteps]?.value.flatMap(Self.double), n >= 0,
              n <= Double(FleetMetricName.offerMaxSteps), n == n.rounded() else { return nil }
        var steps: [OfferStep] = []
        for k in stride(from: 1, through: Int(n), by: 1) {
            guard let kw = node.metrics[FleetMetricName.offerStepKW(k)]?.value.flatMap(Self.double),
                  let usd = node.metrics[FleetMetricName.offerStepUSDPerHour(k)]?.value.flatMap(Self.double),
                  kw.isFinite, kw > 0, usd.isFinite, usd >= 0 else { return nil }
            steps.append(OfferStep(mw: kw / 1000, dollarsPerHour: usd))
        }
        return steps
    }

    /// What a fleet shed in `region` starts from: every online site of the region with an offer and a metered
    /// import. Sites without them are left out (listed in `missing`, with why).
    public func shedInputs(region: String, now: UInt64) -> (sites: [SiteKey: SiteShedInput], missing: [SiteKey: String]) {
        var sites: [SiteKey: SiteShedInput] = [:], missing: [SiteKey: String] = [:]
        for row in status(now: now) where row.region == region {
            guard row.liveness == .online else { missing[row.site] = "\(row.liveness)"; continue }
            guard let steps = row.offer, let curve = try? OfferCurve(steps: steps) else { missing[row.site] = "no offer curve"; continue }
            guard let kw = row.importKW, kw.isFinite else { missing[row.site] = "no metered import"; continue }
            sites[row.site] = SiteShedInput(offer: curve, importKW: kw)
        }
        return (sites, missing)
    }

    // MARK: - Helpers

    static func aliases(_ metrics: [SparkplugMetric]) -> [UInt64: String] {
        var map: [UInt64: String] = [:]
        for m in metrics { if let a = m.alias, let n = m.name { map[a] = n } }
        return map
    }

    /// An integer metric as unsigned (bdSeq is Int64 in our births, and may be UInt64 or narrower in others').
    static func unsigned(_ v: MetricValue) -> UInt64? {
        switch v {
        case .int8(let x): UInt64(exactly: x)
        case .int16(let x): UInt64(exactly: x)
        case .int32(let x): UInt64(exactly: x)
        case .int64(let x): UInt64(exactly: x)
        case .uint8(let x): UInt64(x)
        case .uint16(let x): UInt64(x)
        case .uint32(let x): UInt64(x)
        case .uint64(let x): x
        default: nil
        }
    }

    /// A numeric metric as a Double (nil for strings, booleans, bytes).
    static func double(_ v: MetricValue) -> Double? {
        switch v {
        case .int8(let x): Double(x)
        case .int16(let x): Double(x)
        case .int32(let x): Double(x)
        case .int64(let x): Double(x)
        case .uint8(let x): Double(x)
        case .uint16(let x): Double(x)
        case .uint32(let x): Double(x)
        case .uint64(let x): Double(x)
        case .float(let x): Double(x)
        case .double(let x): x
        default: nil
        }
    }
}
