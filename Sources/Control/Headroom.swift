// What the loop hands the safety governor beyond setpoints and telemetry, as plain data:
// the broker's value of each device's kW (the governor trims the least valuable first),
// which devices serve a contract now (trimmed last), and the inference reserve (inference
// headroom that mining pays for). Also the inference-rise watch: between ticks, a GPU
// container whose draw or reported demand eats into its reserve triggers the fast path,
// which budgets the GPU higher and sheds mining for it at once.

import Broker
import Safety
import Site
import Synchronization

/// The governor's last budget per device (kW) and the reserve used, for the inference-rise watch.
struct HeadroomState: Sendable {
    var budgetKW: [Double] = []
    var setpointKW: [Double] = []
    var reserveKW: [Double] = []
}

extension ControlLoop {
    /// Per device, the reserve above measured draw at which an inference container may be
    /// budgeted: `site.inference_reserve_kw`, else two ticks of the container's ramp (no headroom
    /// for a container without a ramp limit, which could jump to its setpoint within a tick).
    /// Mining and other devices: infinity (always budgeted at their setpoint).
    func inferenceReserveKW() -> [Double] {
        plant.devices.map { d in
            guard d.deviceClass == .inference else { return .infinity }
            if let r = site.inferenceReserveKw { return r }
            return d.rampKwPerS > 0 && d.rampKwPerS.isFinite ? 2 * d.rampKwPerS * site.tickSeconds : .infinity
        }
    }

    /// The broker's value of each device's kW, net of the energy price ($/MWh), and which devices
    /// serve a contract now. Without a plan (a replay policy) there is no value order: nil.
    func valueOrder(plan: DispatchPlan?, signals: DispatchSignals) -> (values: [Double]?, underContract: [Bool]?) {
        guard let plan, plan.valueUsdPerMWh.count == plant.devices.count else { return (nil, nil) }
        let price = signals.energyPriceUsdPerMWh + signals.priceAdders.reduce(0) { $0 + $1.usdPerMWh }
        let values = plan.valueUsdPerMWh.map { v in v.isFinite ? v - (price.isFinite ? price : 0) : 0 }
        let committed = Set(signals.commitments.filter { $0.committedKw > 0 }.map(\.deviceID))
        return (values, plant.devices.map { committed.contains($0.id) })
    }

    /// The inference demand each container reports now (kW; nil when stale or not reported).
    func inferenceDemandKW(now: Double) -> [Double?] {
        plant.devices.map { d in
            guard d.deviceClass == .inference, let tel = poller.telemetry(d.id),
                  tel.age("inference_demand_w", now: now) <= site.staleAfterS else { return nil }
            return tel.value("inference_demand_w").map { $0 / 1000 }
        }
    }

    /// Remembers what the governor budgeted (for the inference-rise watch).
    func recordHeadroom(_ out: GovernorOutput, reserve: [Double]) {
        headroomBox.withLock { $0 = HeadroomState(budgetKW: out.budgetKW, setpointKW: out.setpointsKW, reserveKW: reserve) }
    }

    /// Polls the inference containers now (their fast points) and runs the fast path when one of
    /// them budgeted below its setpoint (inference headroom) draws, or reports demand, above its
    /// budget less half its reserve: the pass budgets it at its new draw and sheds mining for it.
    /// Returns the fast path's report if it ran.
    public func watchInference(now: Double) async -> TickReport? {
        if let next = successor { return await next.watchInference(now: now) }
        let hr = headroomBox.withLock { $0 }
        guard hr.budgetKW.count == plant.devices.count else { return nil }
        var watched: Set<String> = []
        for (i, d) in plant.devices.enumerated() where d.deviceClass == .inference && hr.budgetKW[i] < hr.setpointKW[i] - 0.5 {
            watched.insert(d.id)
        }
        guard !watched.isEmpty else { return nil }
        await poller.poll(now: now, level: 0, only: watched)
        for (i, d) in plant.devices.enumerated() where watched.contains(d.id) {
            guard let tel = poller.telemetry(d.id) else { continue }
            let draw = tel.age("active_power_w", now: now) <= site.staleAfterS ? tel.value("active_power_w").map { $0 / 1000 } : nil
            let demand = tel.age("inference_demand_w", now: now) <= site.staleAfterS ? tel.value("inference_demand_w").map { $0 / 1000 } : nil
            let level = max(draw ?? 0, min(demand ?? 0, hr.setpointKW[i]))
            let trigger = hr.budgetKW[i] - hr.reserveKW[i] / 2
            if level > trigger + 1e-6 {
                let what = (demand ?? 0) > (draw ?? 0) ? "demand \(fmtKW(demand!))" : "draw \(fmtKW(draw ?? 0))"
                return await fastPath(now: now, reason: "inference rising: \(d.id) \(what) > budget \(fmtKW(hr.budgetKW[i])) − half its reserve")
            }
        }
        return nil
    }
}

extension ControlLoop {
    /// Cap the broker may plan on at each node because of inference headroom: the kW that inference
    /// containers are told but neither draw nor report as demand (less their reserve), summed under
    /// each node and bounded by the mining under it that could be shed to cover them. It is the
    /// governor's own rule (`U + Σ setpoints − min(Σ headroom, Σ mining)`, docs/governor.md), taken
    /// from the last commands, so the broker plans the mining that the governor will allow instead of
    /// leaving the room unused. nil when there is none (comm loss, stale meters, no reserve).
    func headroomCreditKW(now: Double, measured: [Double?], commanded: [Double], reachable: [Bool],
                          nodeMeasured: [Double?], reserve: [Double], demand: [Double?]) -> [Double]? {
        let nN = plant.nodes.count
        if safety.nodes[safety.root].metered && nodeMeasured[safety.root] == nil { return nil }  // comm loss
        var credit = [Double](repeating: 0, count: nN), mining = credit
        var any = false
        for (d, dev) in safety.devices.enumerated() where reachable[d] {
            let ancestors = safety.deviceAncestors[d]
            if dev.loadClass == .mining {
                for n in ancestors { mining[n] += dev.maxKW }
                continue
            }
            guard dev.loadClass == .inference, reserve[d].isFinite, reserve[d] >= 0, let m = measured[d],
                  ancestors.allSatisfy({ !safety.nodes[$0].metered || nodeMeasured[$0] != nil }) else { continue }
            let lent = commanded[d] - (max(0, m, demand[d] ?? 0) + reserve[d])
            guard lent > 0 else { continue }
            any = true
            for n in ancestors { credit[n] += lent }
        }
        return any ? zip(credit, mining).map { min($0, $1) } : nil
    }
}
