// One tick of the controller: poll → broker (pure) → safety governor (pure) →
// actuators; and the fast path, which skips polling and the wait for the next
// tick when a demand-response event or an under-frequency excursion arrives.
//
// Time is loop time in seconds since 1970 (UTC), given by the caller: the
// service passes its clock's reading, tests and replays pass virtual time.
//
// One writer: every pass (tick, fast path, shutdown, and the config swap that hands the
// state to a new loop) runs under the loop's `LoopWriter`, one at a time, first come first
// served. A pass never runs on an older loop time than the pass before it. Every change of
// the inputs a pass decides on (events, overrides, a frequency trip, a fast-path request)
// bumps the writer's input epoch; a pass whose epoch is no longer current writes nothing
// more (the actuator asks before each device), so a fast path pre-empts a tick in flight:
// the tick's remaining writes are dropped and the fast path, next in line, governs against
// the newest caps. A fast path only sheds: ramp-up (and the site restore budget) is the
// tick's, once per tick.

import Basics
import Broker
import CoreMetrics
import HardwareProfiles
import Modbus
import Foundation
import Safety
import Signals
import Site
import Synchronization

/// Where the loop gets prices, events and contracts at an instant.
public protocol SignalSource: Sendable {
    func signals(at t: Double) -> DispatchSignals
    /// False while the signals have no energy price at or before `t` (the loop then falls back; see `PriceBasis`).
    func hasPrice(at t: Double) -> Bool
    /// Active events and the price, for display (one short line each).
    func describe(at t: Double) -> [String]
}

extension SignalSource {
    public func hasPrice(at t: Double) -> Bool { true }
}

/// An operator's DR cap (CLI/API or a scenario) is a Signals `DREvent` of origin `.manual` with an
/// `.importCap` action; the loop keeps them in its state (their stored form is `DREvent`'s `Codable` one).
extension DREvent {
    /// An operator's import cap over `[from, until)` in loop time.
    public static func operatorCap(id: String, capKW: Double, from: Double, until: Double, reason: String) -> DREvent {
        DREvent(id: id, origin: .manual, action: .importCap(kW: capKW),
                start: Date(timeIntervalSince1970: from), end: Date(timeIntervalSince1970: until), reason: reason)
    }
    /// Start of the window in loop time (seconds since 1970).
    public var startS: Double { start.timeIntervalSince1970 }
    /// End of the window in loop time; infinity when the event runs until cancelled.
    public var endS: Double { end?.timeIntervalSince1970 ?? .infinity }
    /// In force at loop time `t`.
    public func isActive(atS t: Double) -> Bool { startS <= t && t < endS }
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
    /// Where the poller, actuator and governor emit metrics; nil for the process's bootstrapped `MetricsSystem`.
    public var metricsFactory: (any MetricsFactory)?

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
    /// The broker's inputs and the setpoints the governor allowed, for `shedOffer` (computed on demand, off the
    /// loop: the edge node asks for it on its own task). Nil when a policy, not the broker, decided.
    var offerInput: (problem: DispatchProblem, setpointsKW: [Double])?
    /// What ran this pass: "tick", "fast path: <reason>" or "shutdown".
    public var trigger: String = "tick"
    /// How long the pass took once it held the writer (decide and write), wall clock.
    public var duration: Duration = .zero
    /// Where the pass's time went, phase by phase (the fast-path latency budget in Benchmarks/README.md).
    public var timing = PassTiming()
    /// Devices whose writes this pass dropped because a newer pass pre-empted it.
    public var preempted: [String] = []
    /// Where the energy price came from (see `PriceBasis`).
    public var priceBasis: PriceBasis = .series
    /// Start-up: some device has not answered its first poll yet (nil once every device has, or once
    /// the comm-loss limit since the loop's first pass is over).
    public var startup: StartupProgress?
    /// Devices that have not answered a single poll since the loop started, once start-up is over.
    public var neverAnswered: [String] = []
    /// Mining off on price, from the broker's plan (nil when the strike rule does not curtail).
    public var strike: StrikeReport?
    /// Devices the broker held by their dwell time (and the governor let stand), with when each is released.
    public var dwell: [DwellRelease] = []
    /// What limited the setpoints this pass: the governor's limits first (what it trimmed or held),
    /// then the broker's binding constraints and the strike.
    public var binding: [BindingConstraint] = []
}

/// Start-up progress: how many of the polled devices have answered at least once.
public struct StartupProgress: Sendable, Equatable {
    public var answered: Int
    public var total: Int
    /// The devices still waiting for their first answer.
    public var waiting: [String]
    /// Loop time at which start-up ends whatever happens (first pass + the comm-loss limit): a
    /// device silent until then is no longer "starting" but lost.
    public var endsAt: Double

    public init(answered: Int, total: Int, waiting: [String], endsAt: Double) {
        self.answered = answered
        self.total = total
        self.waiting = waiting
        self.endsAt = endsAt
    }
}

/// The strike rule holding mining off, with its times in loop time.
public struct StrikeReport: Sendable, Equatable {
    public var status: StrikeStatus
    /// When the curtailment began (this pass, for one that begins now).
    public var since: Double
    /// The earliest time mining may restart: the start of the curtailment plus the strike's minimum
    /// off time. It restarts then only if the price is below strike − hysteresis.
    public var earliestEnd: Double

    public init(status: StrikeStatus, since: Double, earliestEnd: Double) {
        self.status = status
        self.since = since
        self.earliestEnd = earliestEnd
    }
}

/// A device held by its dwell time, and when the dwell releases it.
public struct DwellRelease: Sendable, Equatable {
    public var device: String
    public var kind: DwellHold.Kind
    public var until: Double

    public init(device: String, kind: DwellHold.Kind, until: Double) {
        self.device = device
        self.kind = kind
        self.until = until
    }
}

/// A constraint that limited this pass, and who reported it.
public struct BindingConstraint: Sendable, Equatable {
    public enum Source: String, Sendable { case governor, broker }
    public var source: Source
    public var text: String

    public init(_ source: Source, _ text: String) {
        self.source = source
        self.text = text
    }
}

extension TickReport {
    /// One line on what the pass wrote: "wrote asic-1 0 kW, gpu-1 700 kW; failed asic-2 (…); pre-empted asic-3".
    public var writesSummary: String {
        let ok = writes.filter(\.verified), bad = writes.filter { !$0.verified }
        var parts: [String] = []
        parts.append(ok.isEmpty ? "wrote nothing" : "wrote " + ok.map { "\($0.device) \(fmtKW($0.kw))" }.joined(separator: ", "))
        if !bad.isEmpty { parts.append("failed " + bad.map { "\($0.device) (\($0.error?.description ?? "?"))" }.joined(separator: ", ")) }
        if !preempted.isEmpty { parts.append("pre-empted " + preempted.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }

    /// Milliseconds, for log lines.
    public var durationMS: Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}

/// The serial owner of a loop's state: passes run under it one at a time, in arrival order.
/// Shared by the loops a `LoopHost` swaps in, so a pass on the old loop and one on the new never overlap.
public final class LoopWriter: Sendable {
    struct State {
        var busy = false
        var queue: [CheckedContinuation<Void, Never>] = []
        var epoch = 0
        var lastPassAt = -Double.infinity
        var closed = false
    }
    let state = Mutex(State())
    let observer = Mutex<Callback<TickReport, Void>?>(nil)

    public init() {}

    /// Passes waiting for the writer.
    public var waiting: Int { state.withLock { $0.queue.count } }
    /// The input epoch (bumped by every change a pass in flight must yield to).
    public var epoch: Int { state.withLock { $0.epoch } }
    /// After shutdown's safe-state pass, no pass writes.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Every pass's report (tick, fast path, shutdown), once it has written: for the decision log, the event log and log lines.
    public func onPass(_ body: @escaping @Sendable (TickReport) -> Void) { observer.withLock { $0 = Callback(body) } }

    func bump() { state.withLock { $0.epoch += 1 } }

    func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.busy { s.busy = true; return true }
                s.queue.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.queue.isEmpty { s.busy = false; return nil }
            return s.queue.removeFirst()  // handed over: stays busy
        }
        next?.resume()
    }

    /// The pass's loop time: never earlier than the pass before it (a pass that waited behind a
    /// newer one decides at the newer one's time, on the newer inputs).
    func passTime(_ requested: Double) -> Double {
        state.withLock { s in
            let t = max(requested, s.lastPassAt)
            s.lastPassAt = t
            return t
        }
    }

    func close() { state.withLock { $0.closed = true } }

    func notify(_ r: TickReport) { observer.withLock { $0 }?(r) }
}

extension TickReport {
    /// The site's offer to a fleet shed (`Broker.shedOffer`): kW of import it can shed within one tick and the $/h
    /// each step loses, cheapest first, merged to at most `maxSteps` steps. Empty when a policy, not the broker, set
    /// the setpoints, or nothing runs. It counts from what each device draws now, never above this tick's setpoint:
    /// a device still ramping up to its setpoint can shed only what it draws (lowering a setpoint it has not reached
    /// sheds nothing a meter sees), and a device never read offers nothing.
    public func shedOffer(maxSteps: Int = 10) -> [ShedOfferStep] {
        guard let input = offerInput else { return [] }
        let devices = input.problem.snapshot.devices
        let drawing = input.setpointsKW.enumerated().map { d, kw in
            d < devices.count ? min(kw, max(0, devices[d].measuredKw ?? 0)) : 0
        }
        return Broker.coarsened(Broker.shedOffer(input.problem, setpointsKw: drawing), maxSteps: maxSteps)
    }
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
    public var events: [DREvent] = []
    public var overrides: [Override] = []
    public var miningShedUntil: Double?
    /// The last energy price a tick had from the signals (used while none is known, e.g. after a restart).
    public var lastPrice: LastPrice?
    public init() {}
}

public struct LastPrice: Sendable, Codable, Equatable {
    public var usdPerMWh: Double
    /// Loop time of the tick that used it.
    public var at: Double
}

/// Where a pass's energy price came from.
public enum PriceBasis: Sendable, Equatable {
    /// The signals' price series (or feed) has a point at or before now.
    case series
    /// No point yet: the last price a tick used (kept in the loop state across restarts and swaps).
    case lastKnown(usdPerMWh: Double, at: Double)
    /// No point and none known: the site file's `economics.fallback_price_usd_per_mwh`.
    case fallback(usdPerMWh: Double)
    /// No price at all: mining is held at its current level.
    case none

    /// For the tick line: nil when the series priced the tick.
    public var note: String? {
        switch self {
        case .series: nil
        case .lastKnown(_, let at): "no price yet: last known price (from \(isoTimeUTC(at)))"
        case .fallback: "no price yet: economics.fallback_price_usd_per_mwh"
        case .none: "no price yet: mining held at its current level"
        }
    }
}

func isoTimeUTC(_ t: Double) -> String { ISO8601.format(t) }

public final class ControlLoop: Sendable {
    public let site: Site
    public let plant: Plant
    public let safety: SafetyModel
    public let poller: Poller
    /// What the poller, actuator and governor count, as it happens.
    public let metrics: ControlMetrics
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
    /// Start-up: the loop time of the first pass, and whether start-up is over (every device has
    /// answered once, or the comm-loss limit since the first pass has passed). Not persisted: a
    /// restart is a start-up; a config swap carries it over with the telemetry.
    let startupBox = Mutex<(firstPassAt: Double?, over: Bool)>((nil, false))
    /// The writer (shared with the loops that replace this one) and, once retired by a config swap, the loop that replaced it.
    let handover = Mutex<(writer: LoopWriter, successor: ControlLoop?)>((LoopWriter(), nil))

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
                actTargets.append(try Actuator.Target(id: d.id, profile: profile, bus: bus, watchdogS: options.commWatchdogS,
                                                  fallbackKW: SiteDevice.fallbackSetpointKw))
            }
        }
        let metrics = ControlMetrics(site: site.id, factory: options.metricsFactory, polled: targets.map(\.id), written: actTargets.map(\.id))
        self.metrics = metrics
        poller = try Poller(targets: targets, serial: options.serialPolling, metrics: metrics)
        actuator = Actuator(targets: actTargets, deadbandKW: options.deadbandKW, metrics: metrics)
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

    public var lastReport: TickReport? { successor?.lastReport ?? lastReportBox.withLock { $0 } }
    /// The state to persist (a retired loop's is its successor's: a late save never writes an older state).
    public var persistentState: LoopState { successor?.persistentState ?? state.withLock { $0 } }
    /// The serial owner of this loop's passes.
    public var writer: LoopWriter { handover.withLock { $0.writer } }
    /// The loop that replaced this one (config swap); operator actions and passes go there.
    var successor: ControlLoop? { handover.withLock { $0.successor } }

    // MARK: Operator actions (each bumps the input epoch: a pass in flight stops writing)

    public func addEvent(_ e: DREvent) {
        if let next = successor { return next.addEvent(e) }
        state.withLock { s in s.events.removeAll { $0.id == e.id }; s.events.append(e) }
        writer.bump()
    }
    public func cancelEvent(_ id: String) -> Bool {
        if let next = successor { return next.cancelEvent(id) }
        let removed = state.withLock { s in let n = s.events.count; s.events.removeAll { $0.id == id }; return s.events.count != n }
        writer.bump()
        return removed
    }
    public func setOverride(_ o: Override?, device: String) {
        if let next = successor { return next.setOverride(o, device: device) }
        state.withLock { s in s.overrides.removeAll { $0.device == device }; if let o { s.overrides.append(o) } }
        writer.bump()
    }
    /// The signals changed in a way a pass in flight must yield to (a feed delivered new events).
    public func inputsChanged() { (successor ?? self).writer.bump() }

    // MARK: The tick

    /// Polls, decides and writes. Returns what happened.
    @discardableResult
    public func tick(now: Double, poll: Bool = true) async -> TickReport {
        if let next = successor { return await next.tick(now: now, poll: poll) }
        if poll { await poller.poll(now: now) }
        checkFrequency(now: now)
        return await pass(now: now, fastPath: nil)
    }

    /// The fast path: an immediate governor and actuator pass on the newest telemetry,
    /// writing every affected container at once.
    @discardableResult
    public func fastPath(now: Double, reason: String, event: DREvent? = nil) async -> TickReport {
        if let next = successor { return await next.fastPath(now: now, reason: reason, event: event) }
        if let event { addEvent(event) } else { writer.bump() }
        return await pass(now: now, fastPath: reason)
    }

    /// Reads the site meter's frequency now (a fast poll of one point) and trips the
    /// fast path after `underFrequencyHoldS` at or below the threshold. Returns a report if it tripped.
    public func watchFrequency(now: Double) async -> TickReport? {
        if let next = successor { return await next.watchFrequency(now: now) }
        guard let meter = siteMeter else { return nil }
        await poller.poll(now: now, level: 0, only: [meter])
        if checkFrequency(now: now) {
            return await pass(now: now, fastPath: "under-frequency \(frequencyText(meter)) Hz ≤ \(options.underFrequencyHz) Hz")
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
            if !already { writer.bump() }
            return !already
        }
        return false
    }

    /// One pass under the writer: waits its turn, decides on the newest inputs, writes while no newer
    /// pass has been asked for, records what it commanded, and reports to the writer's observer.
    func pass(now requested: Double, fastPath: String?) async -> TickReport {
        let writer = self.writer
        let asked = ContinuousClock.now
        await writer.acquire()
        if let next = successor {  // swapped out while this pass waited: the new loop owns the state
            writer.release()
            return await next.pass(now: requested, fastPath: fastPath)
        }
        let started = ContinuousClock.now
        let now = writer.passTime(requested)
        var report = await decide(now: now, fastPath: fastPath, writer: writer)
        report.duration = ContinuousClock.now - started
        report.timing.waitForWriter = started - asked
        report.timing.after = report.duration - report.timing.inputs - report.timing.broker - report.timing.governor - report.timing.writes
        metrics.intervened(report.interventions.count)
        lastReportBox.withLock { $0 = report }
        writer.release()
        writer.notify(report)
        return report
    }

    func decide(now: Double, fastPath: String?, writer: LoopWriter) async -> TickReport {
        var timing = PassTiming()
        let t0 = ContinuousClock.now
        let epoch = writer.epoch
        let closed = writer.isClosed
        let st = state.withLock { s -> LoopState in
            s.events.removeAll { $0.endS <= now }
            s.overrides.removeAll { $0.until <= now }
            return s
        }
        let nD = plant.devices.count
        // Start-up: until every polled device has answered once, within the comm-loss limit (docs/governor.md).
        let silent = poller.neverAnswered
        let startup: StartupProgress? = startupBox.withLock { b in
            let first = b.firstPassAt ?? now
            b.firstPassAt = first
            if !b.over, silent.isEmpty || now - first >= options.commLossAfterS { b.over = true }
            if b.over { return nil }
            return StartupProgress(answered: poller.targets.count - silent.count, total: poller.targets.count, waiting: silent,
                                   endsAt: first + options.commLossAfterS)
        }
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
        // No price yet: the last known price, else the site's fallback price, else none (mining held below).
        var priceBasis = PriceBasis.series
        if !signals.hasPrice(at: now) {
            if let last = st.lastPrice {
                sig.energyPriceUsdPerMWh = last.usdPerMWh
                priceBasis = .lastKnown(usdPerMWh: last.usdPerMWh, at: last.at)
            } else if let f = site.economics.fallbackPriceUsdPerMWh {
                sig.energyPriceUsdPerMWh = f
                priceBasis = .fallback(usdPerMWh: f)
            } else {
                priceBasis = .none
            }
        }
        for e in st.events where e.isActive(atS: now) {
            guard let capKW = e.capKW else { continue }
            sig.importCaps.append(ImportCap(label: "DR \(e.id)", capKw: capKW))
        }
        let curtailedFor = st.miningCurtailedSince.map { now - $0 } ?? 0
        // Inference headroom the governor will lend (Headroom.swift), so the broker plans the mining it pays for.
        let reserve = inferenceReserveKW(), demand = inferenceDemandKW(now: now)
        let lastCommanded = plant.devices.enumerated().map { i, d in st.commandedKW[d.id] ?? measured[i] ?? 0 }
        let credit = headroomCreditKW(now: now, measured: measured, commanded: lastCommanded,
                                      reachable: zip(reachable, following.notFollowing).map { $0 && !$1 },
                                      nodeMeasured: nodeMeasured, reserve: reserve, demand: demand)
        let snapshot = Snapshot(devices: states, nodeMeasuredKw: nodeMeasured, uncontrolledKw: uncontrolled,
                                miningCurtailed: st.miningCurtailedSince != nil, miningCurtailedForS: curtailedFor,
                                headroomCreditKw: credit)
        let problem = DispatchProblem(plant: plant, snapshot: snapshot, signals: sig)
        // A policy (replay baselines) replaces the broker: it is not run at all then.
        let tBroker = ContinuousClock.now
        timing.inputs = tBroker - t0
        let custom = options.policy?(problem)
        let plan = custom == nil ? Broker.dispatch(problem) : nil
        let tGovernor = ContinuousClock.now
        timing.broker = tGovernor - tBroker

        // Proposals: the broker's plan (or the policy's), mining zeroed while an under-frequency shed holds.
        var proposed: [Double?] = (custom?.setpointsKW ?? plan!.setpointsKw).map { Optional($0) }
        var extraNotes: [String] = meters.notes + following.notes
        if let until = st.miningShedUntil, until > now {
            for (i, d) in plant.devices.enumerated() where d.deviceClass == .mining { proposed[i] = 0 }
            extraNotes.append("under-frequency: mining shed until \(Int(until - now)) s from now")
        }
        var overrides: [Double?] = plant.devices.map { d in st.overrides.first { $0.device == d.id }?.kw }
        let commanded = lastCommanded
        // A container not following is not raised (the governor would hold it, and call it stale data).
        for i in proposed.indices where following.notFollowing[i] { proposed[i] = min(proposed[i] ?? commanded[i], commanded[i]) }
        if case .none = priceBasis {
            // No price at all: mining holds where it is (neither started nor shed on a made-up price).
            let shedding = (st.miningShedUntil ?? -.infinity) > now
            for (i, d) in plant.devices.enumerated() where d.deviceClass == .mining && !shedding { proposed[i] = commanded[i] }
            extraNotes.append("no energy price yet (no series point, no last known price, no economics.fallback_price_usd_per_mwh): mining held at its current level")
        }
        if fastPath != nil {
            // A fast path sheds; it never ramps up. Ramp-up, and the site restore budget, are the tick's: once per tick.
            var held = 0
            for i in proposed.indices {
                if let p = proposed[i], p > commanded[i] + options.deadbandKW { proposed[i] = commanded[i]; held += 1 }
                if let o = overrides[i], o > commanded[i] + options.deadbandKW { overrides[i] = commanded[i]; held += 1 }
            }
            if held > 0 { extraNotes.append("fast path: sheds only; ramp-up of \(held) device(s) waits for the next tick's restore budget") }
        }
        let input = GovernorInput(tickSeconds: site.tickSeconds, proposedKW: proposed, overrideKW: overrides, commandedKW: commanded,
                                  measuredKW: measured, deviceAgeS: ages, reachable: zip(reachable, following.notFollowing).map { $0 && !$1 },
                                  nodeMeasuredKW: nodeMeasured,
                                  nodeAgeS: nodeAges, importCaps: sig.importCaps.map { ($0.label, $0.capKw) })
        // Value order, contracts and inference headroom (Headroom.swift).
        let valueOrder = valueOrder(plan: plan, signals: sig)
        var governed = input
        (governed.valueUsdPerMWh, governed.underContract) = (valueOrder.values, valueOrder.underContract)
        (governed.inferenceReserveKW, governed.inferenceDemandKW) = (reserve, demand)
        governed.startingUp = startup != nil
        let out = SafetyGovernor.govern(safety, governed)
        recordHeadroom(out, reserve: reserve)

        // Write: on the fast path, force every device whose setpoint changes.
        var setpoints: [String: Double] = [:]
        var force: Set<String> = []
        for (i, id) in deviceIDs.enumerated() where reachable[i] {
            setpoints[id] = out.setpointsKW[i]
            if fastPath != nil, abs(out.setpointsKW[i] - commanded[i]) > options.deadbandKW { force.insert(id) }
        }
        // Pre-emption: before each device's write, is this pass still the newest? (A fast path asked
        // for, or an event or override changed, since it decided: the rest is left to the next pass.)
        let dropped = Mutex<[String]>([])
        let tWrites = ContinuousClock.now
        timing.governor = tWrites - tGovernor
        let (writes, writeTiming) = closed ? ([], WriteTiming()) : await actuator.applyTimed(setpoints, now: now, force: force) { device in
            if writer.epoch == epoch { return true }
            dropped.withLock { $0.append(device) }
            return false
        }
        timing.writes = ContinuousClock.now - tWrites
        timing.write = writeTiming

        // Remember what the devices were told.
        let curtailedSince = state.withLock { s -> Double? in
            for w in writes where w.verified {
                let old = s.commandedKW[w.device]
                // A container found at rest (never commanded, measured off) and told 0 kW was not switched off:
                // no minimum off time starts (its start waits only for the restore budget, as on a site started
                // from rest). Any other first write starts its dwell, as before.
                var keptAtRest = false
                if old == nil, w.kw <= 0, let i = deviceIndex[w.device], let m = measured[i] {
                    keptAtRest = m < max(options.deadbandKW, plant.devices[i].minStableKw / 2)
                }
                if !keptAtRest, old == nil || (old! > 0) != (w.kw > 0) { s.changedAt[w.device] = now }
                s.commandedKW[w.device] = w.kw
            }
            if case .series = priceBasis { s.lastPrice = LastPrice(usdPerMWh: sig.energyPriceUsdPerMWh, at: now) }
            if plan?.miningCurtailed ?? false { if s.miningCurtailedSince == nil { s.miningCurtailedSince = now } } else { s.miningCurtailedSince = nil }
            return s.miningCurtailedSince
        }
        // The strike and the dwell holds, as the broker decided them; a hold counts only where the governor let it stand.
        let strike = plan?.strike.map { st in
            StrikeReport(status: st, since: curtailedSince ?? now, earliestEnd: now + st.minOffLeftS)
        }
        let dwell = (plan?.dwell ?? []).compactMap { h -> DwellRelease? in
            let allowed = out.setpointsKW[h.device]
            guard reachable[h.device], h.kind == .minOn ? allowed > 0 : allowed <= 0 else { return nil }
            return DwellRelease(device: deviceIDs[h.device], kind: h.kind, until: now + h.leftS)
        }
        var binding = out.binding.map { BindingConstraint(.governor, $0) }
        binding += (plan?.binding ?? []).map { BindingConstraint(.broker, $0) }
        if let st = plan?.strike { binding.append(BindingConstraint(.broker, "strike: mining \(st.reason)")) }

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
        var report = TickReport(
            at: now, fastPath: fastPath, siteKW: nodeMeasured[root], limitKW: out.limitKW[root] + safety.marginKW,
            miningKW: mining, inferenceKW: inference, priceUsdPerMWh: sig.energyPriceUsdPerMWh, hashpriceUsdPerPHDay: sig.hashpriceUsdPerPHDay,
            events: signals.describe(at: now) + st.events.filter { $0.isActive(atS: now) && $0.capKW != nil }.map { "DR \($0.id): cap \(fmtKW($0.capKW!)) — \($0.reason)" },
            setpointsKW: Dictionary(uniqueKeysWithValues: zip(deviceIDs, out.setpointsKW)), reasons: reasons,
            interventions: extraNotes + out.interventions, writes: writes, mode: out.mode,
            brokerFeasible: (plan?.feasible ?? true) && !out.infeasible && out.overCapNodes.isEmpty,
            objective: plan?.objective ?? Objective(), nodeKW: nodeKW, nodeLimitKW: nodeLimit,
            explainer: options.explainEveryTick ? nil : explainer,
            trigger: fastPath.map { "fast path: \($0)" } ?? "tick", preempted: dropped.withLock { $0 }.sorted(), priceBasis: priceBasis,
            startup: startup, neverAnswered: startup == nil ? silent : [], strike: strike, dwell: dwell, binding: binding)
        report.offerInput = custom == nil ? (problem, out.setpointsKW) : nil
        report.timing = timing
        return report
    }
}

extension String {
    init(format2dp v: Double) {
        let r = (v * 100).rounded() / 100
        self = "\(r)"
    }
}

/// Where one pass's time went, wall clock (the fast-path latency budget, Benchmarks/README.md).
/// `after` is what is left of the pass's `duration`: recording what was commanded and the report.
public struct PassTiming: Sendable, Equatable {
    /// Waiting for the writer (another pass held it), before `duration` starts.
    public var waitForWriter: Duration = .zero
    /// Telemetry into the broker's snapshot, signals, headroom credit.
    public var inputs: Duration = .zero
    public var broker: Duration = .zero
    /// The safety governor, the value order and headroom it needs, and the write list.
    public var governor: Duration = .zero
    /// Every device's write and read-back, from the first task created to the last result collected.
    public var writes: Duration = .zero
    /// Inside `writes`.
    public var write = WriteTiming()
    public var after: Duration = .zero

    public init() {}
}
