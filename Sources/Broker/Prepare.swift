// Preparing a dispatch: the price and values in force, each device's range this tick (the ramp rule,
// dwell, the strike, stale data), fixed load and the effective caps.

import Safety

extension Engine {
    // MARK: preparation

    mutating func prepare() {
        price = sig.energyPriceUsdPerMWh + sig.priceAdders.reduce(0) { $0 + $1.usdPerMWh }
        restoreRate = plant.restoreRateKwPerTick.map { max(0, $0) } ?? .infinity

        // Strike rule.
        if let s = sig.strike {
            if price >= s.strikeUsdPerMWh {
                curtailNow = true
                strikeState = .atStrike
            } else if snap.miningCurtailed {
                if price >= s.strikeUsdPerMWh - s.hysteresisUsdPerMWh {
                    curtailNow = true
                    strikeState = .hysteresis
                } else if snap.miningCurtailedForS < s.minOffS {
                    curtailNow = true
                    strikeState = .minOff
                }
            }
        }

        // Values and commitments.
        value = Array(repeating: 0, count: nD)
        commitKw = Array(repeating: 0, count: nD)
        rate = Array(repeating: 0, count: nD)
        pen = Array(repeating: 0, count: nD)
        contractLabel = Array(repeating: nil, count: nD)
        let override = plant.valueOverride
        let eff = plant.efficiencyJPerTH
        let kpg = plant.kwPerGpu
        let mining = plant.isMining
        for d in 0..<nD {
            if !override[d].isNaN {
                value[d] = override[d]
            } else if mining[d] {
                if let v = sig.miningValueUsdPerMWh {
                    value[d] = v
                } else if let h = sig.hashpriceUsdPerPHDay, eff[d] > 0 {
                    value[d] = Broker.miningValue(hashpriceUsdPerPHDay: h, efficiencyJPerTH: eff[d])
                }
            } else {
                if let v = sig.inferenceSpotUsdPerMWh {
                    value[d] = v
                } else if let g = sig.inferenceSpotUsdPerGpuHour, kpg[d] > 0 {
                    value[d] = g / kpg[d] * 1000
                }
            }
        }
        for c in sig.commitments {
            guard let d = plant.deviceIndexByID[c.deviceID], c.committedKw > 0 else { continue }
            let old = commitKw[d]
            let new = old + c.committedKw
            rate[d] = (rate[d] * old + c.rateUsdPerMWh * c.committedKw) / new
            pen[d] = (pen[d] * old + c.penaltyUsdPerMWh * c.committedKw) / new
            commitKw[d] = new
            contractLabel[d] = contractLabel[d].map { $0 + "+" + c.contractID } ?? c.contractID
        }
        // When spot pays more than rate + penalty, the best use of the device is to sell spot and
        // pay the penalty: the committed kW then count at spot value (keeps value concave in kW).
        spotOverContract = (0..<nD).map { commitKw[$0] > 0 && value[$0] >= rate[$0] + pen[$0] }

        // Device ranges and status.
        lo = Array(repeating: 0, count: nD)
        hi = Array(repeating: 0, count: nD)
        minStable = Array(repeating: 0, count: nD)
        rampBase = Array(repeating: 0, count: nD)
        status = Array(repeating: .free, count: nD)
        offWhy = Array(repeating: .none, count: nD)
        startPrice = Array(repeating: price, count: nD)
        held = Array(repeating: 0, count: nD)
        stale = Array(repeating: false, count: nD)
        rampLimited = Array(repeating: false, count: nD)
        let tick = plant.tickSeconds
        let maxKw = plant.maxKw
        let msKw = plant.minStableKw
        let ramp = plant.rampKwPerS
        let minOn = plant.minOnS
        let minOff = plant.minOffS
        let staleAfter = plant.staleAfterS
        let forecast = !sig.priceForecast.isEmpty
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD {
                let st = states[d]
                minStable[d] = msKw[d]
                if !st.available {
                    status[d] = .pinned
                    held[d] = max(0, st.measuredKw ?? st.setpointKw)
                    lo[d] = held[d]
                    hi[d] = held[d]
                    continue
                }
                let on = st.isOn && st.setpointKw > 0
                let s = on ? min(st.setpointKw, maxKw[d]) : 0
                rampBase[d] = s
                var h = RampRule.ceilingKw(fromKw: s, maxKw: maxKw[d], minStableKw: msKw[d], rampKwPerS: ramp[d], tickS: tick)
                rampLimited[d] = h < maxKw[d] - eps
                let isStale = st.dataAgeS > staleAfter
                stale[d] = isStale
                if isStale { h = on ? min(h, s) : 0 }
                let dwellOn = on && msKw[d] > 0 && st.stateForS < minOn[d]
                let dwellOff = !on && msKw[d] > 0 && st.stateForS < minOff[d]
                let struck = mining[d] && curtailNow
                if dwellOn {
                    status[d] = .forcedOn
                    lo[d] = msKw[d]
                    hi[d] = struck ? lo[d] : max(h, lo[d])
                    if struck { offWhy[d] = .strike }
                } else if dwellOff {
                    status[d] = .forcedOff
                    offWhy[d] = .minOff
                } else if struck {
                    status[d] = .forcedOff
                    offWhy[d] = .strike
                } else if isStale && !on {
                    status[d] = .forcedOff
                    offWhy[d] = .stale
                } else if h < msKw[d] - eps || h <= eps {
                    status[d] = .forcedOff
                    offWhy[d] = isStale ? .stale : .cannotReachMinStable
                } else {
                    status[d] = .free
                    hi[d] = h
                    // The start rule: a device held on for its minimum on time once started (only
                    // devices with a min-stable power have dwell) pays for its start block at the
                    // worse of the price now and the forecast average over that time.
                    if forecast && !on && minOn[d] > 0 && msKw[d] > 0 {
                        startPrice[d] = max(price, windowAverage(minOn[d]))
                        if startPrice[d] > price { anyStartSurcharge = true }
                    }
                }
            }
        }

        devConst = (0..<nD).map {
            DevConst(
                k0: Int32(plant.nodePathStart[plant.deviceNode[$0]]),
                k1: Int32(plant.nodePathStart[plant.deviceNode[$0] + 1]), rampBase: rampBase[$0],
                minStable: minStable[$0])
        }

        // Fixed load per node: declared uncontrollable load plus what meters see that the
        // devices below them do not explain.
        var own = Array(repeating: 0.0, count: nN)
        var explained = Array(repeating: 0.0, count: nN)
        for n in 0..<nN { own[n] = max(0, snap.uncontrolledKw[n]) }
        for n in 0..<nN { explained[n] = own[n] }
        let devNode = plant.deviceNode
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD { explained[devNode[d]] += max(0, states[d].measuredKw ?? 0) }
        }
        // Auxiliary load that follows IT load (cooling) is modelled, so the meters' share of it is
        // explained too: aux fraction x the measured IT load below the node.
        var itBelow = Array(repeating: 0.0, count: nN)
        snap.devices.withUnsafeBufferPointer { states in
            for d in 0..<nD { itBelow[devNode[d]] += max(0, states[d].measuredKw ?? 0) }
        }
        for n in stride(from: nN - 1, through: 1, by: -1) { itBelow[plant.nodeParent[n]] += itBelow[n] }
        for n in 0..<nN where plant.nodes[n].auxFraction > 0 {
            explained[n] += plant.nodes[n].auxFraction * itBelow[n]
        }
        for n in stride(from: nN - 1, through: 0, by: -1) {
            if let m = snap.nodeMeasuredKw[n], m > explained[n] {
                own[n] += m - explained[n]
                explained[n] = m
            }
            let p = plant.nodeParent[n]
            if p >= 0 { explained[p] += explained[n] }
        }
        // Fixed load also scales with auxiliary fractions? No: auxiliary fractions follow IT load
        // of controllable devices only. Fixed load is counted as is at its node and above.
        fixedSub = own
        for n in stride(from: nN - 1, through: 1, by: -1) {
            let p = plant.nodeParent[n]
            if p >= 0 { fixedSub[p] += fixedSub[n] }
        }

        // Effective caps.
        // The safety margin applies to every cap, as the safety governor applies it: a plan the
        // governor would trim is never proposed.
        let margin = plant.safetyMarginKw
        effCap = plant.nodes.map { $0.capKw - margin }
        rootCapLabel = "\(plant.nodes[0].id) cap \(Fmt.mw(plant.nodes[0].capKw)) − margin \(Fmt.mw(margin))"
        let importCap = plant.importLimitKw - margin
        if importCap < effCap[0] {
            effCap[0] = importCap
            rootCapLabel = "site import limit \(Fmt.mw(plant.importLimitKw)) − margin \(Fmt.mw(margin))"
        }
        for c in sig.importCaps where c.capKw - margin < effCap[0] {
            effCap[0] = c.capKw - margin
            rootCapLabel = "\(c.label) import cap \(Fmt.mw(c.capKw)) − margin \(Fmt.mw(margin))"
        }
        // Inference headroom that the safety governor lends (docs/governor.md): kW that inference
        // containers are told but do not draw, covered by mining that can be shed. Not while a paid
        // reduction is in force: its baseline is metered import, which headroom does not change.
        if let credit = snap.headroomCreditKw, credit.count == nN, sig.paidReduction == nil, credit.contains(where: { $0 > 0 }) {
            headroomLent = credit.map { max(0, $0) }
            for n in 0..<nN { effCap[n] += headroomLent[n] }
            if headroomLent[0] > 0 { rootCapLabel += " + inference headroom \(Fmt.mw(headroomLent[0]))" }
        }
    }

    /// Average price (with adders) over the next `seconds`, from the forecast step function.
    func windowAverage(_ seconds: Double) -> Double {
        let adders = price - sig.energyPriceUsdPerMWh
        var t = 0.0
        var p = sig.energyPriceUsdPerMWh
        var acc = 0.0
        for f in sig.priceForecast where f.offsetS > 0 {
            let end = min(f.offsetS, seconds)
            if end > t {
                acc += p * (end - t)
                t = end
            }
            if t >= seconds { break }
            p = f.usdPerMWh
        }
        if t < seconds { acc += p * (seconds - t) }
        return acc / seconds + adders
    }
}
