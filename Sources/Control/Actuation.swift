// Judging actuation: a setpoint read back from the device proves the register
// holds the number, not that the container obeys it. After each accepted write,
// a model of where the device may be (moving toward the setpoint at its ramp
// rate) is compared with the power the poller measured. A device that stays
// behind that model by more than a tolerance, after the ramp time plus a grace
// period, is `not-following`: the governor budgets it at its measured draw
// (never at the setpoint it ignores) and the actuator re-writes it with backoff.
//
// `FollowTracker` is pure (times are given); `Actuator.judge` feeds it the
// telemetry the poller already has, with no extra reads on the wire.

import Broker
import Safety
import Site

/// How closely a device must follow, and how a not-following device is retried.
public struct FollowSettings: Sendable, Equatable {
    /// Tolerance in kW: the larger of `toleranceMinKW` and `toleranceFraction` × the device's max.
    public var toleranceFraction: Double
    public var toleranceMinKW: Double
    /// Time allowed on top of the ramp (dead time, the device's lag, the poll period).
    public var graceS: Double
    /// Consecutive judged polls behind the model before the verdict (one noisy reading is not enough).
    public var confirmPolls: Int
    /// Re-write backoff while not following: first delay, doubling up to the cap.
    public var retryFirstS: Double
    public var retryMaxS: Double

    public init(toleranceFraction: Double = 0.03, toleranceMinKW: Double = 10, graceS: Double = 10, confirmPolls: Int = 2,
                retryFirstS: Double = 2, retryMaxS: Double = 60) {
        self.toleranceFraction = toleranceFraction
        self.toleranceMinKW = toleranceMinKW
        self.graceS = graceS
        self.confirmPolls = max(1, confirmPolls)
        self.retryFirstS = retryFirstS
        self.retryMaxS = retryMaxS
    }
}

/// What one device is expected to do with its setpoint.
public struct FollowModel: Sendable, Equatable {
    public var maxKW: Double
    /// kW/s; `.infinity` when unknown.
    public var rampKWPerS: Double
    /// The setpoint is a ceiling only (an inference container draws its demand up to the setpoint);
    /// with a demand reading the floor is min(model, demand).
    public var ceiling: Bool

    public init(maxKW: Double, rampKWPerS: Double, ceiling: Bool) {
        self.maxKW = maxKW
        self.rampKWPerS = rampKWPerS > 0 ? rampKWPerS : .infinity
        self.ceiling = ceiling
    }
}

/// The actuation verdict for one device.
public enum FollowState: String, Sendable, Equatable {
    /// Nothing written yet, or no fresh reading since.
    case unknown
    case following
    case notFollowing = "not-following"
}

/// A change of verdict, with a sentence that is true for the numbers it prints.
public struct FollowTransition: Sendable, Equatable {
    public var state: FollowState
    public var message: String
}

/// One device's follow judgement (pure: every time is given).
public struct FollowTracker: Sendable, Equatable {
    /// The last setpoint the device accepted (kW) and when.
    public private(set) var setpointKW: Double?
    public private(set) var writtenAt = -Double.infinity
    /// Where the device may be now: moving from its draw at the first write toward the setpoint at the ramp rate.
    public private(set) var expectedKW: Double?
    /// When the model reached the setpoint (nil while it is still ramping).
    var settledAt: Double?
    var modelAt = -Double.infinity
    var lastMeasuredKW: Double?
    var observedAt = -Double.infinity
    var behindPolls = 0
    public private(set) var state: FollowState = .unknown
    public private(set) var since = -Double.infinity
    /// Re-writes while not following, and when the next one is due.
    public private(set) var retries = 0
    public private(set) var retryAt = -Double.infinity

    public init() {}

    /// The device accepted `kw` at `now` (a verified write).
    public mutating func wrote(_ kw: Double, at now: Double, model: FollowModel) {
        advance(to: now, model: model)
        if expectedKW == nil { expectedKW = lastMeasuredKW ?? kw }
        if setpointKW != kw { settledAt = nil }
        setpointKW = kw
        writtenAt = now
        if expectedKW == kw, settledAt == nil { settledAt = now }
    }

    /// A re-write of a not-following device was sent at `now`; the next is due after the backoff.
    public mutating func retried(at now: Double, settings: FollowSettings) {
        retries += 1
        // The first re-write comes `retryFirstS` after the verdict; each further one waits twice as long.
        retryAt = now + min(settings.retryMaxS, settings.retryFirstS * Double(1 << min(retries, 20)))
    }

    /// True when a not-following device is due a re-write.
    public func retryDue(at now: Double) -> Bool { state == .notFollowing && now >= retryAt }

    /// Moves the model toward the setpoint at the ramp rate.
    mutating func advance(to now: Double, model: FollowModel) {
        defer { modelAt = max(modelAt, now) }
        guard let sp = setpointKW, let e = expectedKW, now > modelAt, modelAt.isFinite else { return }
        let step = model.rampKWPerS * (now - modelAt)
        let gap = sp - e
        if abs(gap) <= step {
            if settledAt == nil { settledAt = model.rampKWPerS.isFinite ? modelAt + abs(gap) / model.rampKWPerS : modelAt }
            expectedKW = sp
        } else {
            expectedKW = e + (gap > 0 ? step : -step)
        }
    }

    /// Judges a fresh reading taken at `now` (`measuredKW` nil: no fresh reading, no judgement; a reading
    /// no newer than the last one judged is skipped). `demandKW`: what an inference container's workload
    /// would draw uncapped, if known.
    @discardableResult
    public mutating func observe(measuredKW: Double?, demandKW: Double?, at now: Double, model: FollowModel,
                                 settings: FollowSettings, device: String) -> FollowTransition? {
        guard let m = measuredKW else { advance(to: now, model: model); return nil }
        // The same reading seen again (a fast-path pass between polls) is not a new observation.
        guard now > observedAt else { return nil }
        advance(to: now, model: model)
        lastMeasuredKW = m
        defer { observedAt = now }
        // After a gap in the data longer than the grace period (the device was silent or stale), what it did
        // meanwhile is unknown (a watchdog fallback, say): the model restarts from where it is now.
        if setpointKW != nil, now - observedAt > settings.graceS, state != .notFollowing {
            expectedKW = m
            settledAt = nil
            behindPolls = 0
        }
        guard let sp = setpointKW, let e = expectedKW else { return nil }
        let tol = max(settings.toleranceMinKW, settings.toleranceFraction * model.maxKW)
        // While ramping the device may lag the model by the ramp over the grace period (dead time, its own lag);
        // that allowance shrinks to nothing over the grace period after the model reaches the setpoint.
        let sinceSettled = settledAt.map { now - $0 } ?? 0
        let allowance = min(model.rampKWPerS * settings.graceS, model.maxKW) * max(0, 1 - sinceSettled / settings.graceS)
        let slack = tol + allowance
        let over = m - e
        var floor: Double? = model.ceiling ? nil : e
        if let d = demandKW { floor = min(e, d) }
        let under = floor.map { $0 - m } ?? -.infinity
        let gap = max(over, under)
        if gap > slack {
            behindPolls += 1
        } else {
            behindPolls = 0
        }
        switch state {
        case .unknown, .following:
            if behindPolls >= settings.confirmPolls {
                state = .notFollowing
                since = now
                retries = 0
                retryAt = now + settings.retryFirstS
                let ago = Int((now - writtenAt).rounded())
                let bound = over >= under ? "at most \(fmtKW(e + slack))" : "at least \(fmtKW(max(0, floor! - slack)))"
                return FollowTransition(state: .notFollowing, message:
                    "\(device) not-following: setpoint \(fmtKW(sp)) accepted \(ago) s ago, measured \(fmtKW(m)) where its ramp allows \(bound); budgeted at its measured draw, re-written with backoff")
            }
            if state == .unknown, gap <= slack { state = .following; since = now }
        case .notFollowing:
            if gap <= tol {
                let was = since
                state = .following
                since = now
                behindPolls = 0
                return FollowTransition(state: .following, message:
                    "\(device) following again: measured \(fmtKW(m)) against setpoint \(fmtKW(sp)), \(Int((now - was).rounded())) s and \(retries) re-write(s) after it stopped following")
            }
        }
        return nil
    }
}

extension Actuator {
    /// The follow verdict of a device (unknown for one that is not actuated).
    public func followState(_ id: String) -> FollowState {
        guard let i = index[id] else { return .unknown }
        return tracks.withLock { $0[i].follow.state }
    }

    /// Devices not following their setpoint now.
    public var notFollowing: [String] {
        tracks.withLock { t in targets.indices.filter { t[$0].follow.state == .notFollowing }.map { targets[$0].id } }
    }

    /// Judges every actuated plant device on the poller's telemetry (no wire reads): a reading older than
    /// `staleAfterS` is not judged. Returns, by plant device index, whether it is not following, and a
    /// sentence for each change of verdict.
    public func judge(now: Double, plant: Plant, poller: Poller, staleAfterS: Double) -> (notFollowing: [Bool], notes: [String]) {
        var readings: [(measured: Double?, demand: Double?, deviceRamp: Double?, readAt: Double)] = []
        readings.reserveCapacity(plant.devices.count)
        poller.withTelemetry { tel in
            for d in plant.devices {
                let age = tel.age(d.id, "active_power_w", now: now)
                let fresh = age <= staleAfterS
                let p = fresh ? tel.value(d.id, "active_power_w").map { $0 / 1000 } : nil
                let demandFresh = tel.age(d.id, "inference_demand_w", now: now) <= staleAfterS
                let demand = demandFresh ? tel.value(d.id, "inference_demand_w").map { $0 / 1000 } : nil
                readings.append((p, demand, tel.value(d.id, "x_ramp_rate_w_per_s").map { $0 / 1000 }, fresh ? now - age : now))
            }
        }
        var flags = [Bool](repeating: false, count: plant.devices.count)
        var notes: [String] = []
        tracks.withLock { t in
            for (k, d) in plant.devices.enumerated() {
                guard let i = index[d.id] else { continue }
                let m = Self.followModel(d, deviceRampKWPerS: readings[k].deviceRamp)
                // Judged at the time the power was read, so a pass between polls adds nothing.
                if let tr = t[i].follow.observe(measuredKW: readings[k].measured, demandKW: readings[k].demand, at: readings[k].readAt, model: m,
                                                settings: followSettings, device: d.id) {
                    notes.append(tr.message)
                }
                t[i].followModel = m
                flags[k] = t[i].follow.state == .notFollowing
            }
        }
        return (flags, notes)
    }

    /// The site's ramp for the device, or the device's own ramp register if that is slower.
    static func followModel(_ d: DeviceSpec, deviceRampKWPerS: Double?) -> FollowModel {
        var ramp = d.rampKwPerS > 0 ? d.rampKwPerS : .infinity
        if let r = deviceRampKWPerS, r > 0 { ramp = min(ramp, r) }
        return FollowModel(maxKW: d.maxKw, rampKWPerS: ramp, ceiling: d.deviceClass != .mining)
    }
}
