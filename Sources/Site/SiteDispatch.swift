import Basics
import Broker
import Foundation
import Signals

extension Site {
    /// The Broker's static view of the site: the capacity tree with auxiliary fractions, and the
    /// controllable (mining and inference) devices.
    public func plant() throws(LocatedError) -> Plant {
        var aux: [String: Double] = [:]
        for d in devices where d.deviceClass == .auxiliary {
            if let f = d.fractionOfIT, let n = d.nodeID { aux[n, default: 0] += f }
        }
        let specs = nodes.map { NodeSpec(id: $0.id, parentID: $0.parentID, capKw: $0.capKw, auxFraction: aux[$0.id] ?? 0) }
        let devs = devices.filter(\.isControllable).map { d in
            DeviceSpec(
                id: d.id, deviceClass: d.deviceClass == .mining ? .mining : .inference, nodeID: d.nodeID!,
                maxKw: d.limits!.maxKw, minStableKw: d.limits!.minStableKw, rampKwPerS: d.limits!.rampKwPerS,
                minOnS: d.limits!.minOnS, minOffS: d.limits!.minOffS, efficiencyJPerTH: d.efficiencyJPerTH,
                kwPerGpu: d.kwPerGpu, valueUsdPerMWh: d.valueUsdPerMWh)
        }
        do {
            return try Plant(
                nodes: specs, devices: devs, importLimitKw: importLimitKw, safetyMarginKw: safetyMarginKw,
                tickSeconds: tickSeconds, restoreRateKwPerTick: restoreRateKwPerTick, staleAfterS: staleAfterS)
        } catch {
            throw LocatedError(file: file, line: 1, column: 1, message: error.description)
        }
    }
}

/// Turns a site, a snapshot and signals at an instant into a Broker problem. `resolve` is the one mapping
/// from signals (prices, DR events, peak windows, contracts) to the broker's inputs: `dispatch`, the control
/// loop's signal sources (`serve`) and `replay` all go through it.
public enum SiteDispatch {
    /// - Parameters:
    ///   - signals: a separate signals file; when nil, the snapshot's embedded `signals` are used.
    ///   - at: the dispatch instant (seconds since 1970 UTC); when nil, the snapshot's `at`.
    public static func problem(
        site: Site, plant givenPlant: Plant? = nil, snapshot: SiteSnapshot, signals: SiteSignals? = nil, at: Double? = nil
    ) throws(LocatedError) -> DispatchProblem {
        let plant: Plant
        if let given = givenPlant { plant = given } else { plant = try site.plant() }
        func snapErr(_ key: String, _ msg: String) -> LocatedError {
            let (l, c) = snapshot.position(key)
            return LocatedError(file: snapshot.file, line: l, column: c, message: msg)
        }
        guard let t = at ?? snapshot.at else {
            throw LocatedError(
                file: snapshot.file, line: 1, column: 1,
                message: "the snapshot has no 'at' time and none was given (use --at 2026-07-15T14:00:00Z)")
        }
        guard let sig = signals ?? snapshot.signals else {
            throw LocatedError(
                file: snapshot.file, line: 1, column: 1,
                message: "no signals: give a signals file or a 'signals' section in the snapshot")
        }

        // Device states.
        for id in snapshot.devices.keys.sorted() where site.device(id) == nil {
            throw snapErr(id, "device '\(id)' is not in the site file \(site.file)")
        }
        for id in snapshot.nodeMeasuredKw.keys.sorted() where site.node(id) == nil {
            throw snapErr("node:" + id, "node '\(id)' is not in the site's capacity tree")
        }
        for id in snapshot.uncontrolledKw.keys.sorted() where site.node(id) == nil {
            throw snapErr("node:" + id, "node '\(id)' is not in the site's capacity tree")
        }
        var states: [DeviceState] = []
        states.reserveCapacity(plant.devices.count)
        for spec in plant.devices {
            if let s = snapshot.devices[spec.id] {
                guard let sp = s.setpointKw ?? s.measuredKw else {
                    throw snapErr(spec.id, "device '\(spec.id)' needs setpoint_kw (or at least measured_kw)")
                }
                states.append(
                    DeviceState(
                        measuredKw: s.measuredKw, setpointKw: max(0, sp), available: s.available, dataAgeS: s.ageS,
                        isOn: s.on ?? (sp > 0), stateForS: s.stateForS ?? .infinity))
            } else {
                // No data at all: unavailable, worst case (full power) held in the budget.
                states.append(
                    DeviceState(measuredKw: nil, setpointKw: spec.maxKw, available: false, dataAgeS: .infinity, inSnapshot: false))
            }
        }
        var measured: [Double?] = plant.nodes.map { _ in nil }
        var uncontrolled = plant.nodes.map { _ in 0.0 }
        for (i, n) in plant.nodes.enumerated() {
            if let m = snapshot.nodeMeasuredKw[n.id] {
                measured[i] = m
            } else if let meter = site.node(n.id)?.meter, let s = snapshot.devices[meter], s.available, let m = s.measuredKw {
                measured[i] = m
            }
            uncontrolled[i] = snapshot.uncontrolledKw[n.id] ?? 0
        }
        for d in site.devices where d.deviceClass == .auxiliary && d.fractionOfIT == nil {
            guard let n = d.nodeID, let i = plant.nodeIndex(n) else { continue }
            uncontrolled[i] += snapshot.devices[d.id]?.measuredKw ?? d.fixedKw ?? 0
        }
        let snap = Snapshot(
            devices: states, nodeMeasuredKw: measured, uncontrolledKw: uncontrolled,
            miningCurtailed: snapshot.miningCurtailed, miningCurtailedForS: snapshot.miningCurtailedForS)
        return DispatchProblem(plant: plant, snapshot: snap, signals: try resolve(site: site, plant: plant, signals: sig, at: t, snapshotFile: snapshot.file))
    }

    /// DispatchSignals as they stand at `t`.
    /// - Parameter contracts: the contract windows in force at `t`, when the caller has them already (a replay
    ///   expands its contracts once); nil: the site's contracts, then the signals', each resolved in its own time zone.
    public static func resolve(
        site: Site, plant: Plant, signals sig: SiteSignals, at t: Double, snapshotFile: String = "<signals>",
        contracts: [ContractWindow]? = nil
    ) throws(LocatedError) -> DispatchSignals {
        guard let now = sig.energyPrices.last(where: { $0.at <= t }) else {
            throw LocatedError(
                file: snapshotFile, line: 1, column: 1,
                message: "no energy price at or before \(ISO8601.format(t)); the signals need an energy_prices point at or before the dispatch time")
        }
        var out = DispatchSignals(energyPriceUsdPerMWh: now.usdPerMWh)
        out.priceForecast = sig.energyPrices.filter { $0.at > t }.map { ($0.at - t, $0.usdPerMWh) }
        let e = site.economics
        out.hashpriceUsdPerPHDay = sig.hashpriceSeries.last(where: { $0.at <= t })?.usdPerPHDay ?? sig.hashpriceUsdPerPHDay ?? e.hashpriceUsdPerPHDay
        out.miningValueUsdPerMWh = sig.miningValueUsdPerMWh ?? e.miningValueUsdPerMWh
        if sig.inferenceSpotUsdPerMWh != nil || sig.inferenceSpotUsdPerGpuHour != nil {
            out.inferenceSpotUsdPerMWh = sig.inferenceSpotUsdPerMWh
            out.inferenceSpotUsdPerGpuHour = sig.inferenceSpotUsdPerGpuHour
        } else {
            out.inferenceSpotUsdPerMWh = e.inferenceSpotUsdPerMWh
            out.inferenceSpotUsdPerGpuHour = e.inferenceSpotUsdPerGpuHour
        }
        if let s = e.strike {
            out.strike = StrikePolicy(strikeUsdPerMWh: s.priceUsdPerMWh, hysteresisUsdPerMWh: s.hysteresisUsdPerMWh, minOffS: s.minOffS)
        }
        for ev in sig.drEvents where isActive(ev, at: t) {
            switch ev.action {
            case .importCap(let kw): out.importCaps.append(ImportCap(label: "DR event \(ev.id)", capKw: kw))
            case .paidReduction(let usd, let b?):
                // One paid reduction at a time: the first active one in the file.
                if out.paidReduction == nil {
                    out.paidReduction = PaidReduction(label: "DR event \(ev.id)", baselineKw: b, usdPerMWh: usd)
                }
            case .paidReduction(_, nil), .price, .level:
                // A paid reduction waits for its baseline (measured, or the VTN's); prices come by the price feed.
                continue
            }
        }
        for w in sig.peakWindows where t >= w.start && t < w.end {
            switch w.kind {
            case .importCap(let kw): out.importCaps.append(ImportCap(label: "peak window \(w.id)", capKw: kw))
            case .adder(let usd): out.priceAdders.append(PriceAdder(label: "peak window \(w.id)", usdPerMWh: usd))
            }
        }
        let windows = contracts ?? ContractCalendar(contracts: site.contracts + sig.contracts).activeByContract(at: Date(timeIntervalSince1970: t))
        for c in windows {
            // The commitment is shared by the named devices in proportion to their max power.
            let devs = c.deviceIDs.compactMap { id in plant.deviceIndex(id).map { (id, plant.devices[$0].maxKw) } }
            let total = devs.reduce(0) { $0 + $1.1 }
            guard total > 0 else { continue }
            let rate = c.rateUSDPerMWh ?? spotValue(of: c.deviceIDs, site: site)
            for (id, mx) in devs {
                out.commitments.append(
                    Commitment(
                        contractID: c.contractID, deviceID: id, committedKw: min(mx, c.committedKW * mx / total),
                        rateUsdPerMWh: rate, penaltyUsdPerMWh: c.penaltyUSDPerMWhShort))
            }
        }
        return out
    }

    /// Whether a DR event is in force at `t` (loop seconds): `[start, end)`, open-ended without an end.
    public static func isActive(_ ev: DREvent, at t: Double) -> Bool {
        t >= ev.start.timeIntervalSince1970 && ev.end.map { t < $0.timeIntervalSince1970 } ?? true
    }

    /// A contract without a rate (a calendar's) earns its devices' mean spot value ($/MWh), as the broker values them.
    static func spotValue(of deviceIDs: [String], site: Site) -> Double {
        let spots = deviceIDs.compactMap { site.device($0) }.map { d -> Double in
            let e = site.economics
            if let v = d.valueUsdPerMWh { return v }
            if let v = e.inferenceSpotUsdPerMWh { return v }
            if let g = e.inferenceSpotUsdPerGpuHour, let k = d.kwPerGpu, k > 0 { return g / k * 1000 }
            return 0
        }
        return spots.isEmpty ? 0 : spots.reduce(0, +) / Double(spots.count)
    }
}
