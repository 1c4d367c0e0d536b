// One tick of the controller: poll → broker (pure) → safety governor (pure) →
// actuators; and the fast path, which skips polling and the wait for the next
// tick when a demand-response event or an under-frequency excursion arrives.
//
// Time is loop time in seconds since 1970 (UTC), given by the caller: the
// service passes its clock's reading, tests and replays pass virtual time.

import Broker
import HardwareProfiles
import Modbus
import Site
import Synchronization

/// Where the loop gets prices, events and contracts at an instant.
public protocol SignalSource: Sendable {
    func signals(at t: Double) -> DispatchSignals
    /// Active events and the price, for display (one short line each).
    func describe(at t: Double) -> [String]
}

/// A DR or peak event created by an operator (CLI/API) or a scenario.
public struct ManualEvent: Sendable, Equatable, Codable {
    public var id: String
    public var capKW: Double
    public var from: Double
    public var until: Double
    public var reason: String

    public init(id: String, capKW: Double, from: Double, until: Double, reason: String) {
        self.id = id
        self.capKW = capKW
        self.from = from
        self.until = until
        self.reason = reason
    }
}

/// An operator override: a fixed setpoint for one device until a time.
public struct Override: Sendable, Equatable, Codable {
    public var device: String
    public var kw: Double
    public var until: Double
}

public struct ControlOptions: Sendable {
    /// Container comm watchdog configured on start (seconds; 0 leaves it alone).
    public var commWatchdogS: Double
    public var deadbandKW: Double
    public var commLossAfterS: Double
    /// Under-frequency trip: at or below this frequency for `underFrequencyHoldS`, shed mining.
    public var underFrequencyHz: Double
    public var underFrequencyHoldS: Double
    /// How long mining stays shed after an under-frequency trip.
    public var underFrequencyShedS: Double

    /// Replaces the broker's proposals (baselines in replays): given the problem, setpoints per
    /// plant device, with a reason. The governor still holds every cap.
    public var policy: (@Sendable (DispatchProblem) -> (setpointsKW: [Double], reason: String))?
    /// Render every setpoint's reason each tick (the API's explain reads them). Replays turn it off.
    public var explainEveryTick = true
    /// Poll devices one at a time (in-memory buses: replays and soaks).
    public var serialPolling = false

    public init(commWatchdogS: Double = 30, deadbandKW: Double = 5, commLossAfterS: Double = 10,
                underFrequencyHz: Double = 59.7, underFrequencyHoldS: Double = 0.25, underFrequencyShedS: Double = 600,
                policy: (@Sendable (DispatchProblem) -> (setpointsKW: [Double], reason: String))? = nil) {
        self.policy = policy
        self.commWatchdogS = commWatchdogS
        self.deadbandKW = deadbandKW
        self.commLossAfterS = commLossAfterS
        self.underFrequencyHz = underFrequencyHz
        self.underFrequencyHoldS = underFrequencyHoldS
        self.underFrequencyShedS = underFrequencyShedS
    }
}

/// What one tick (or fast-path pass) did.
public struct TickReport: Sendable {
    public var at: Double
    public var fastPath: String?
    public var siteKW: Double?
    public var limitKW: Double
    public var miningKW: Double
    public var inferenceKW: Double
    public var priceUsdPerMWh: Double
    /// The hashprice the broker valued mining at ($/PH/day), if any.
    public var hashpriceUsdPerPHDay: Double?
    public var events: [String]
    public var setpointsKW: [String: Double]
    /// Every device's reason, when the loop renders them each tick (`explainEveryTick`).
    public var reasons: [String: String]
    public var interventions: [String]
    public var writes: [WriteOutcome]
    public var mode: GovernorOutput.Mode
    public var brokerFeasible: Bool
    public var objective: Objective
    public var nodeKW: [String: Double]
    public var nodeLimitKW: [String: Double]
    /// Renders a reason on demand when the tick did not (replays).
    var explainer: Explainer?
}

extension TickReport {
    /// Why `device` got its setpoint: rendered with the tick, or now from what the tick decided.
    public func reason(for device: String) -> String? {
        reasons[device] ?? explainer?.reason(for: device)
    }
}

/// What is needed to explain a tick's setpoints later: the broker's plan (or the policy's line)
/// and what the governor allowed.
struct Explainer: Sendable {
    var index: [String: Int]
    var plan: DispatchPlan?
    var policy: (setpointsKW: [Double], reason: String)?
    var allowedKW: [Double]

    func reason(for device: String) -> String? {
        guard let i = index[device] else { return nil }
        var r = policy?.reason ?? plan!.reason(i)
        let proposedKW = policy?.setpointsKW[i] ?? plan!.setpointsKw[i]
        if abs(allowedKW[i] - proposedKW) > 0.5 {
            r = "governor: \(fmtKW(proposedKW)) proposed → \(fmtKW(allowedKW[i])) allowed; " + (policy == nil ? "broker: " : "policy: ") + r
        }
        return r
    }
}

/// The persisted part of the loop's state (restart resumes from it).
public struct LoopState: Sendable, Codable, Equatable {
    public var commandedKW: [String: Double] = [:]
    public var changedAt: [String: Double] = [:]
    public var miningCurtailedSince: Double?
    public var events: [ManualEvent] = []
    public var overrides: [Override] = []
    public var miningShedUntil: Double?
    public init() {}
}

public final class ControlLoop: Sendable {
    public let site: Site
    public let plant: Plant
    public let safety: SafetyModel
    public let poller: Poller
    public let actuator: Actuator
    public let signals: any SignalSource
    public let options: ControlOptions
    let deviceIDs: [String]
    let deviceIndex: [String: Int]
    let meterOfNode: [String?]
    let siteMeter: String?
    let state: Mutex<LoopState>
    let lastReportBox = Mutex<TickReport?>(nil)
    let frequencyLow = Mutex<Double?>(nil)
    /// Frozen and inconsistent node meters (MeterHealth.swift).
    public let meterWatch: MeterWatch
    /// What the governor last budgeted (Headroom.swift: the inference-rise watch).
    let headroomBox = Mutex(HeadroomState())

    /// - Parameters:
    ///   - buses: a register bus for every device with a profile (containers and meters).
    public init(site: Site, profiles: [String: DeviceProfile], buses: [String: any RegisterBus],
                signals: any SignalSource, options: ControlOptions = .init(), restoring state: LoopState = LoopState()) throws {
        self.site = site
        let plant = try site.plant()
        self.plant = plant
        self.signals = signals
        self.options = options
        var targets: [Poller.Target] = []
        var actTargets: [Actuator.Target] = []
        for d in site.devices {
            guard let pid = d.profile, let bus = buses[d.id] else { continue }
            guard let profile = profiles[pid] else { throw ControlError("device \(d.id): profile '\(pid)' is not loaded") }
            targets.append(Poller.Target(id: d.id, profile: profile, bus: bus))
            if d.isControllable {
                actTargets.append(try Actuator.Target(id: d.id, profile: profile, bus: bus, watchdogS: options.commWatchdogS, fallbackKW: 0))
            }
        }
        poller = try Poller(targets: targets, serial: options.serialPolling)
        actuator = Actuator(targets: actTargets, deadbandKW: options.deadbandKW)
        deviceIDs = plant.devices.map(\.id)
        deviceIndex = Dictionary(plant.devices.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        meterOfNode = plant.nodes.map { n in site.node(n.id)?.meter }
        let rootNode = plant.nodes.first { $0.parentID == nil }
        siteMeter = rootNode.flatMap { site.node($0.id)?.meter }

        // The governor's model: caps, device limits, and the worst case of the load it does not command.
        var itMaxUnder = [Double](repeating: 0, count: plant.nodes.count)
        for (di, d) in plant.devices.enumerated() { for n in plant.path(ofDevice: di).map(\.node) { itMaxUnder[n] += d.maxKw } }
        var uncontrolledMax = [Double](repeating: 0, count: plant.nodes.count)
        for d in site.devices where d.deviceClass == .auxiliary {
            guard let nid = d.nodeID, let ni = plant.nodeIndex(nid) else { continue }
            let worst = (d.fixedKw ?? 0) + (d.fractionOfIT ?? 0) * itMaxUnder[ni]
            var cur: Int? = ni
            while let c = cur, c >= 0 {
                uncontrolledMax[c] += worst
                let p = plant.parentIndex(ofNode: c)
                cur = p >= 0 && p != c ? p : nil
            }
        }
        let nodes = plant.nodes.enumerated().map { i, n in
            SafetyModel.Node(id: n.id, parent: n.parentID.flatMap { plant.nodeIndex($0) }, capKW: n.capKw,
                             uncontrolledMaxKW: uncontrolledMax[i], metered: site.node(n.id)?.meter != nil)
        }
        let devices = plant.devices.map { d in
            SafetyModel.Device(id: d.id, node: plant.nodeIndex(d.nodeID) ?? 0, loadClass: d.deviceClass == .mining ? .mining : .inference,
                               maxKW: d.maxKw, minStableKW: d.minStableKw, rampUpKWPerS: d.rampKwPerS > 0 ? d.rampKwPerS : .infinity)
        }
        safety = SafetyModel(nodes: nodes, devices: devices, importLimitKW: site.importLimitKw, marginKW: site.safetyMarginKw,
                             restoreKWPerTick: site.restoreRateKwPerTick ?? .infinity, staleAfterS: site.staleAfterS,
                             commLossAfterS: options.commLossAfterS)
        meterWatch = MeterWatch(site: site, plant: plant)
        self.state = Mutex(state)
    }

    public var lastReport: TickReport? { lastReportBox.withLock { $0 } }
    public var persistentState: LoopState { state.withLock { $0 } }

    // MARK: Operator actions

    public func addEvent(_ e: ManualEvent) { state.withLock { s in s.events.removeAll { $0.id == e.id }; s.events.append(e) } }
    public func cancelEvent(_ id: String) -> Bool {
        state.withLock { s in let n = s.events.count; s.events.removeAll { $0.id == id }; return s.events.count != n }
    }
    public func setOverride(_ o: Override?, device: String) {
        state.withLock { s in s.overrides.removeAll { $0.device == device }; if let o { s.overrides.append(o) } }
    }

    // MARK: The tick

    /// Polls, decides and writes. Returns what happened.
    @discardableResult
    public func tick(now: Double, poll: Bool = true) async -> TickReport {
        if poll { await poller.poll(now: now) }
        checkFrequency(now: now)
        return await decide(now: now, fastPath: nil)
    }

    /// The fast path: an immediate governor and actuator pass on the newest telemetry,
    /// writing every affected container at once.
    @discardableResult
    public func fastPath(now: Double, reason: String, event: ManualEvent? = nil) async -> TickReport {
        if let event { addEvent(event) }
        return await decide(now: now, fastPath: reason)
    }

    /// Reads the site meter's frequency now (a fast poll of one point) and trips the
    /// fast path after `underFrequencyHoldS` at or below the threshold. Returns a report if it tripped.
    public func watchFrequency(now: Double) async -> TickReport? {
        guard let meter = siteMeter else { return nil }
        await poller.poll(now: now, level: 0, only: [meter])
        if checkFrequency(now: now) {
            return await decide(now: now, fastPath: "under-frequency \(frequencyText(meter)) Hz ≤ \(options.underFrequencyHz) Hz")
        }
        return nil
    }

    func frequencyText(_ meter: String) -> String {
        (poller.telemetry(meter)?.value("frequency_hz")).map { String(format2dp: $0) } ?? "?"
    }

    /// Updates the under-frequency timer; true when it has just tripped.
    @discardableResult
    func checkFrequency(now: Double) -> Bool {
        guard let meter = siteMeter, let tel = poller.telemetry(meter), let hz = tel.value("frequency_hz"),
              tel.age("frequency_hz", now: now) <= site.staleAfterS else { return false }
        let tripped: Bool = frequencyLow.withLock { since in
            if hz <= options.underFrequencyHz {
                if since == nil { since = now }
                return now - since! >= options.underFrequencyHoldS
            }
            since = nil
            return false
        }
        if tripped {
            let already = state.withLock { s -> Bool in
                let active = (s.miningShedUntil ?? -.infinity) > now
                s.miningShedUntil = now + options.underFrequencyShedS
                return active
            }
            return !already
        }
        return false
    }

    func decide(now: Double, fastPath: String?) async -> TickReport {
        let started = ContinuousClock.now
        _ = started
        let st = state.withLock { s -> LoopState in
            s.events.removeAll { $0.until <= now }
            s.overrides.removeAll { $0.until <= now }
            return s
        }
        let nD = plant.devices.count
        // Telemetry into the broker's snapshot.
        var measured = [Double?](repeating: nil, count: nD)
        var ages = [Double](repeating: .infinity, count: nD)
        var reachable = [Bool](repeating: false, count: nD)
        var states: [DeviceState] = []
        states.reserveCapacity(nD)
        var nodeMeasured = [Double?](repeating: nil, count: plant.nodes.count)
        var nodeAges = [Double](repeating: .infinity, count: plant.nodes.count)
        poller.withTelemetry { telemetry in
            for (i, d) in plant.devices.enumerated() {
                let age = telemetry.age(d.id, "active_power_w", now: now)
                if let p = telemetry.value(d.id, "active_power_w"), age <= site.staleAfterS { measured[i] = p / 1000 }
                ages[i] = age
                reachable[i] = telemetry.isReachable(d.id)
                let commanded = st.commandedKW[d.id] ?? measured[i] ?? 0
                let changed = st.changedAt[d.id] ?? -.infinity
                states.append(DeviceState(measuredKw: measured[i], setpointKw: commanded, available: reachable[i] && age <= site.staleAfterS,
                                          dataAgeS: age, isOn: commanded > 0, stateForS: now - changed))
            }
            for (n, meter) in meterOfNode.enumerated() {
                guard let meter, let p = telemetry.value(meter, "active_power_w") else { continue }
                let age = telemetry.age(meter, "active_power_w", now: now)
                nodeAges[n] = age
                if age <= site.staleAfterS { nodeMeasured[n] = p / 1000 }
            }
        }
        // A frozen or inconsistent node meter counts as stale; a container not following its setpoint is
        // budgeted at its measured draw, as one the governor cannot command (Actuation.swift, MeterHealth.swift).
        let meters = meterWatch.observe(now: now, poller: poller, staleAfterS: site.staleAfterS)
        for (n, meter) in meterOfNode.enumerated() where meter.map { meters.suspect.contains($0) } ?? false { nodeMeasured[n] = nil }
        let following = actuator.judge(now: now, plant: plant, poller: poller, staleAfterS: site.staleAfterS)
        var uncontrolled = [Double](repeating: 0, count: plant.nodes.count)
        for d in site.devices where d.deviceClass == .auxiliary && d.fractionOfIT == nil {
            guard let nid = d.nodeID, let n = plant.nodeIndex(nid) else { continue }
            uncontrolled[n] += d.fixedKw ?? 0
        }
        var sig = signals.signals(at: now)
        for e in st.events where e.from <= now && now < e.until {
            sig.importCaps.append(ImportCap(label: "DR \(e.id)", capKw: e.capKW))
        }
        let curtailedFor = st.miningCurtailedSince.map { now - $0 } ?? 0
        let snapshot = Snapshot(devices: states, nodeMeasuredKw: nodeMeasured, uncontrolledKw: uncontrolled,
                                miningCurtailed: st.miningCurtailedSince != nil, miningCurtailedForS: curtailedFor)
        let problem = DispatchProblem(plant: plant, snapshot: snapshot, signals: sig)
        // A policy (replay baselines) replaces the broker: it is not run at all then.
        let custom = options.policy?(problem)
        let plan = custom == nil ? Broker.dispatch(problem) : nil

        // Proposals: the broker's plan (or the policy's), mining zeroed while an under-frequency shed holds.
        var proposed: [Double?] = (custom?.setpointsKW ?? plan!.setpointsKw).map { Optional($0) }
        var extraNotes: [String] = meters.notes + following.notes
        if let until = st.miningShedUntil, until > now {
            for (i, d) in plant.devices.enumerated() where d.deviceClass == .mining { proposed[i] = 0 }
            extraNotes.append("under-frequency: mining shed until \(Int(until - now)) s from now")
        }
        let overrides: [Double?] = plant.devices.map { d in st.overrides.first { $0.device == d.id }?.kw }
        let commanded = plant.devices.enumerated().map { i, d in st.commandedKW[d.id] ?? measured[i] ?? 0 }
        // A container not following is not raised (the governor would hold it, and call it stale data).
        for i in proposed.indices where following.notFollowing[i] { proposed[i] = min(proposed[i] ?? commanded[i], commanded[i]) }
        let input = GovernorInput(tickSeconds: site.tickSeconds, proposedKW: proposed, overrideKW: overrides, commandedKW: commanded,
                                  measuredKW: measured, deviceAgeS: ages, reachable: zip(reachable, following.notFollowing).map { $0 && !$1 },
                                  nodeMeasuredKW: nodeMeasured,
                                  nodeAgeS: nodeAges, importCaps: sig.importCaps.map { ($0.label, $0.capKw) })
        // Value order, contracts and inference headroom (Headroom.swift).
        let valueOrder = valueOrder(plan: plan, signals: sig), reserve = inferenceReserveKW()
        var governed = input
        (governed.valueUsdPerMWh, governed.underContract) = (valueOrder.values, valueOrder.underContract)
        (governed.inferenceReserveKW, governed.inferenceDemandKW) = (reserve, inferenceDemandKW(now: now))
        let out = SafetyGovernor.govern(safety, governed)
        recordHeadroom(out, reserve: reserve)

        // Write: on the fast path, force every device whose setpoint changes.
        var setpoints: [String: Double] = [:]
        var force: Set<String> = []
        for (i, id) in deviceIDs.enumerated() where reachable[i] {
            setpoints[id] = out.setpointsKW[i]
            if fastPath != nil, abs(out.setpointsKW[i] - commanded[i]) > options.deadbandKW { force.insert(id) }
        }
        let writes = await actuator.apply(setpoints, now: now, force: force)

        // Remember what the devices were told.
        state.withLock { s in
            for w in writes where w.verified {
                let old = s.commandedKW[w.device]
                if old == nil || (old! > 0) != (w.kw > 0) { s.changedAt[w.device] = now }
                s.commandedKW[w.device] = w.kw
            }
            if plan?.miningCurtailed ?? false { if s.miningCurtailedSince == nil { s.miningCurtailedSince = now } } else { s.miningCurtailedSince = nil }
        }

        var mining = 0.0, inference = 0.0
        for (i, d) in plant.devices.enumerated() {
            let p = measured[i] ?? 0
            if d.deviceClass == .mining { mining += p } else { inference += p }
        }
        let root = safety.root
        let explainer = Explainer(index: deviceIndex, plan: plan, policy: custom, allowedKW: out.setpointsKW)
        var reasons: [String: String] = [:]
        if options.explainEveryTick {
            for id in deviceIDs { reasons[id] = explainer.reason(for: id) }
        }
        var nodeKW: [String: Double] = [:], nodeLimit: [String: Double] = [:]
        for (n, node) in plant.nodes.enumerated() {
            nodeKW[node.id] = nodeMeasured[n] ?? out.predictedNodeKW[n]
            nodeLimit[node.id] = out.limitKW[n] + safety.marginKW
        }
        let report = TickReport(
            at: now, fastPath: fastPath, siteKW: nodeMeasured[root], limitKW: out.limitKW[root] + safety.marginKW,
            miningKW: mining, inferenceKW: inference, priceUsdPerMWh: sig.energyPriceUsdPerMWh, hashpriceUsdPerPHDay: sig.hashpriceUsdPerPHDay,
            events: signals.describe(at: now) + st.events.filter { $0.from <= now && now < $0.until }.map { "DR \($0.id): cap \(fmtKW($0.capKW)) — \($0.reason)" },
            setpointsKW: Dictionary(uniqueKeysWithValues: zip(deviceIDs, out.setpointsKW)), reasons: reasons,
            interventions: extraNotes + out.interventions, writes: writes, mode: out.mode,
            brokerFeasible: (plan?.feasible ?? true) && !out.infeasible && out.overCapNodes.isEmpty,
            objective: plan?.objective ?? Objective(), nodeKW: nodeKW, nodeLimitKW: nodeLimit,
            explainer: options.explainEveryTick ? nil : explainer)
        lastReportBox.withLock { $0 = report }
        return report
    }
}

extension String {
    init(format2dp v: Double) {
        let r = (v * 100).rounded() / 100
        self = "\(r)"
    }
}
