import Broker
import Testing

/// Hand-made situations with known answers and reason texts.
@Suite("Broker scenarios")
struct ScenarioTests {
    static func plant(
        _ devices: [DeviceSpec], xfmr2Cap: Double = 100_000, rootCap: Double = 100_000, aux: Double = 0,
        restore: Double? = nil
    ) -> Plant {
        try! Plant(
            nodes: [
                NodeSpec(id: "site", parentID: nil, capKw: rootCap, auxFraction: aux),
                NodeSpec(id: "xfmr-1", parentID: "site", capKw: 100_000),
                NodeSpec(id: "xfmr-2", parentID: "site", capKw: xfmr2Cap),
            ], devices: devices, tickSeconds: 10, restoreRateKwPerTick: restore, staleAfterS: 30)
    }

    static func asic(_ id: String, node: String = "xfmr-1", max: Double = 1000, ms: Double = 0, ramp: Double = 0, minOn: Double = 0, minOff: Double = 0) -> DeviceSpec {
        DeviceSpec(
            id: id, deviceClass: .mining, nodeID: node, maxKw: max, minStableKw: ms, rampKwPerS: ramp, minOnS: minOn,
            minOffS: minOff, efficiencyJPerTH: 20)
    }

    static func problem(_ plant: Plant, _ states: [DeviceState], _ sig: DispatchSignals, uncontrolled: Double = 0, curtailed: Bool = false, curtailedFor: Double = 0) -> DispatchProblem {
        DispatchProblem(
            plant: plant,
            snapshot: Snapshot(
                devices: states, nodeMeasuredKw: plant.nodes.map { _ in nil },
                uncontrolledKw: plant.nodes.map { $0.parentID == nil ? uncontrolled : 0 }, miningCurtailed: curtailed,
                miningCurtailedForS: curtailedFor),
            signals: sig)
    }

    @Test func miningValueFromHashprice() {
        #expect(abs(Broker.miningValue(hashpriceUsdPerPHDay: 50, efficiencyJPerTH: 20) - 104.1667) < 1e-3)
    }

    @Test func curtailedOnPriceWithReason() {
        let p = Self.problem(
            Self.plant([Self.asic("asic-1")]), [DeviceState(setpointKw: 1000)],
            DispatchSignals(energyPriceUsdPerMWh: 212, hashpriceUsdPerPHDay: 50))
        let plan = Broker.dispatch(p)
        #expect(plan.setpointsKw == [0])
        #expect(plan.reasons[0] == "curtailed: price 212 > mining value 104 $/MWh")
        #expect(plan.feasible)
    }

    @Test func cheapHourRunsFull() {
        let p = Self.problem(
            Self.plant([Self.asic("asic-1")]), [DeviceState(setpointKw: 1000)],
            DispatchSignals(energyPriceUsdPerMWh: 35, hashpriceUsdPerPHDay: 50))
        let plan = Broker.dispatch(p)
        #expect(plan.setpointsKw == [1000])
        #expect(plan.reasons[0] == "full 1000 kW: mining value 104 > price 35 $/MWh")
        #expect(abs(plan.objective.mining - 104.1667) < 1e-3)
        #expect(abs(plan.objective.energy + 35) < 1e-9)
    }

    @Test func transformerCapBindsHigherValueFirst() {
        let gpu = DeviceSpec(id: "gpu-1", deviceClass: .inference, nodeID: "xfmr-2", maxKw: 20_000, valueUsdPerMWh: 300)
        let a = Self.asic("asic-1", node: "xfmr-2", max: 10_000)
        let p = Self.problem(
            Self.plant([a, gpu], xfmr2Cap: 24_500), [DeviceState(setpointKw: 10_000), DeviceState(setpointKw: 20_000)],
            DispatchSignals(energyPriceUsdPerMWh: 40, hashpriceUsdPerPHDay: 50))
        let plan = Broker.dispatch(p)
        #expect(plan.setpointsKw[1] == 20_000)
        #expect(abs(plan.setpointsKw[0] - 4_500) < 1e-6)
        #expect(plan.reasons[0].contains("xfmr-2 cap 24.5 MW − margin 0.0 MW binding"))
        #expect(plan.binding.contains { $0.hasPrefix("xfmr-2 cap 24.5 MW − margin 0.0 MW binding") })
    }

    @Test func strikeHysteresisAndMinimumOff() {
        let plant = Self.plant([Self.asic("asic-1")])
        var sig = DispatchSignals(energyPriceUsdPerMWh: 160, hashpriceUsdPerPHDay: 200)  // mining value 417: price alone would not curtail
        sig.strike = StrikePolicy(strikeUsdPerMWh: 150, hysteresisUsdPerMWh: 20, minOffS: 600)
        let on = [DeviceState(setpointKw: 1000)]
        let off = [DeviceState(setpointKw: 0, isOn: false)]
        // 1. Price crosses the strike: curtail.
        var plan = Broker.dispatch(Self.problem(plant, on, sig))
        #expect(plan.miningCurtailed && plan.setpointsKw == [0])
        #expect(plan.reasons[0] == "curtailed: price 160 ≥ strike 150 $/MWh")
        // 2. Price 140 is below the strike but not below strike - hysteresis: stay curtailed.
        sig.energyPriceUsdPerMWh = 140
        plan = Broker.dispatch(Self.problem(plant, off, sig, curtailed: true, curtailedFor: 900))
        #expect(plan.miningCurtailed && plan.setpointsKw == [0])
        #expect(plan.reasons[0].contains("hysteresis"))
        // 3. Price 120 but the minimum off time has not elapsed.
        sig.energyPriceUsdPerMWh = 120
        plan = Broker.dispatch(Self.problem(plant, off, sig, curtailed: true, curtailedFor: 300))
        #expect(plan.miningCurtailed && plan.setpointsKw == [0])
        #expect(plan.reasons[0].contains("300 s left"))
        // 4. Both conditions met: release.
        plan = Broker.dispatch(Self.problem(plant, off, sig, curtailed: true, curtailedFor: 700))
        #expect(!plan.miningCurtailed && plan.setpointsKw == [1000])
    }

    @Test func dwellTimesHold() {
        let a = Self.asic("asic-on", ms: 300, minOn: 600)
        let b = Self.asic("asic-off", ms: 300, minOff: 600)
        let states = [
            DeviceState(setpointKw: 900, isOn: true, stateForS: 100),
            DeviceState(setpointKw: 0, isOn: false, stateForS: 100),
        ]
        // Expensive: asic-on would go off, but must stay on at min-stable.
        var plan = Broker.dispatch(Self.problem(Self.plant([a, b]), states, DispatchSignals(energyPriceUsdPerMWh: 500, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [300, 0])
        #expect(plan.reasons[0].hasPrefix("held on at min-stable 300 kW: minimum on time, 500 s left"))
        // Cheap: asic-off would start, but its minimum off time has 500 s left.
        plan = Broker.dispatch(Self.problem(Self.plant([a, b]), states, DispatchSignals(energyPriceUsdPerMWh: 10, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [1000, 0])
        #expect(plan.reasons[1] == "off: minimum off time, 500 s left")
    }

    @Test func rampAndStartBlock() {
        let a = Self.asic("asic-1", ms: 300, ramp: 10)  // 100 kW per 10 s tick
        let b = Self.asic("asic-2", ms: 300, ramp: 10)
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant([a, b]), [DeviceState(setpointKw: 500), DeviceState(setpointKw: 0, isOn: false)],
                DispatchSignals(energyPriceUsdPerMWh: 10, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [600, 300])
        #expect(plan.reasons[0].hasPrefix("ramping 500 kW → 600 kW (ramp 10 kW/s × 10 s)"))
    }

    @Test func restoreRateCapsTotalRampUp() {
        let devs = (1...3).map { Self.asic("asic-\($0)") }
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant(devs, restore: 1500), devs.map { _ in DeviceState(setpointKw: 0, isOn: false) },
                DispatchSignals(energyPriceUsdPerMWh: 10, hashpriceUsdPerPHDay: 50)))
        #expect(abs(plan.setpointsKw.reduce(0, +) - 1500) < 1e-6)
        #expect(plan.setpointsKw == [1000, 500, 0])  // tie broken by id
        #expect(plan.binding.contains { $0.hasPrefix("site restore rate 1.5 MW/tick binding") })
    }

    @Test func infeasibleDRCapGivesSafestSetpoints() {
        let a = Self.asic("asic-1", ms: 800, minOn: 600)
        let b = Self.asic("asic-2")
        var sig = DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)
        sig.importCaps = [ImportCap(label: "DR event dr-7", capKw: 1000)]
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant([a, b]), [DeviceState(setpointKw: 1000, stateForS: 60), DeviceState(setpointKw: 1000)], sig,
                uncontrolled: 500))
        #expect(!plan.feasible)
        #expect(plan.setpointsKw == [800, 0])
        #expect(plan.infeasibleReason?.contains("DR event dr-7 import cap 1.0 MW") == true)
        #expect(plan.infeasibleReason?.contains("must-stay-on minimum 0.8 MW") == true)
    }

    @Test func feasibleDRCapIsMetByShedding() {
        let devs = (1...3).map { Self.asic("asic-\($0)") }
        var sig = DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)
        sig.importCaps = [ImportCap(label: "DR event dr-7", capKw: 2000)]
        let plan = Broker.dispatch(
            Self.problem(Self.plant(devs), devs.map { _ in DeviceState(setpointKw: 1000) }, sig, uncontrolled: 250))
        #expect(plan.feasible)
        #expect(abs(plan.nodeLoadKw[0] - 2000) < 1e-6)
        #expect(plan.binding.first?.hasPrefix("DR event dr-7 import cap 2.0 MW − margin") == true)
    }

    @Test func contractCommitmentRunsThroughPriceSpike() {
        let gpu = DeviceSpec(id: "gpu-1", deviceClass: .inference, nodeID: "xfmr-1", maxKw: 1000, kwPerGpu: 1)
        var sig = DispatchSignals(energyPriceUsdPerMWh: 200, inferenceSpotUsdPerMWh: 80)
        sig.commitments = [Commitment(contractID: "acme", deviceID: "gpu-1", committedKw: 600, rateUsdPerMWh: 150, penaltyUsdPerMWh: 400)]
        let plan = Broker.dispatch(Self.problem(Self.plant([gpu]), [DeviceState(setpointKw: 1000)], sig))
        #expect(plan.setpointsKw == [600])
        #expect(plan.objective.penalty == 0)
        #expect(abs(plan.objective.inference - 90) < 1e-9)
        #expect(plan.reasons[0].hasPrefix("contract acme (600 kW committed at 150 $/MWh, penalty 400)"))
    }

    @Test func paidReductionBelowBaseline() {
        var sig = DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)
        sig.paidReduction = PaidReduction(label: "DR event dr-9", baselineKw: 500, usdPerMWh: 500)
        let plan = Broker.dispatch(Self.problem(Self.plant([Self.asic("asic-1")]), [DeviceState(setpointKw: 1000)], sig))
        #expect(plan.setpointsKw == [0])
        #expect(abs(plan.objective.drCredit - 250) < 1e-9)
        // A small credit is not worth stopping for.
        sig.paidReduction = PaidReduction(label: "DR event dr-9", baselineKw: 500, usdPerMWh: 50)
        let plan2 = Broker.dispatch(Self.problem(Self.plant([Self.asic("asic-1")]), [DeviceState(setpointKw: 1000)], sig))
        #expect(plan2.setpointsKw == [1000])
    }

    @Test func unavailableDeviceHeldInBudget() {
        let devs = [Self.asic("asic-1"), Self.asic("asic-2")]
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant(devs, rootCap: 1500),
                [DeviceState(measuredKw: 900, setpointKw: 1000, available: false), DeviceState(setpointKw: 1000)],
                DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [900, 600])
        #expect(plan.commanded == [false, true])
        #expect(plan.reasons[0].hasPrefix("unavailable"))
    }

    @Test func staleDeviceIsNotRampedUp() {
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant([Self.asic("asic-1")]), [DeviceState(setpointKw: 400, dataAgeS: 45)],
                DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [400])
        #expect(plan.reasons[0].contains("stale data"))
    }

    @Test func auxiliaryFractionCountsAtTheRoot() {
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant([Self.asic("asic-1")], rootCap: 2000, aux: 0.1), [DeviceState(setpointKw: 1000)],
                DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [1000])
        #expect(abs(plan.nodeLoadKw[0] - 1100) < 1e-9)
        #expect(abs(plan.objective.energy + 33) < 1e-9)
    }

    @Test func minStableBlockThatDoesNotFitIsExplained() {
        let a = Self.asic("asic-1", node: "xfmr-2", max: 1000)
        var b = Self.asic("asic-2", node: "xfmr-2", max: 1000, ms: 400)
        b.efficiencyJPerTH = 60  // value 35 $/MWh: not worth displacing asic-1
        let plan = Broker.dispatch(
            Self.problem(
                Self.plant([a, b], xfmr2Cap: 1300), [DeviceState(setpointKw: 1000), DeviceState(setpointKw: 0, isOn: false)],
                DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)))
        #expect(plan.setpointsKw == [1000, 0])
        #expect(plan.reasons[1] == "off: min-stable 400 kW does not fit (xfmr-2 cap 1.3 MW − margin 0.0 MW: room 300 kW < 400 kW)")
    }

    /// Issue 13's hand-reduced case: the optimum admits a's 600 kW min-stable block by trimming c's
    /// continuous kW a little (500 → 480). Whole-block moves alone never find it: admitting a first
    /// leaves no room for b's block, and turning b off loses more than a brings.
    @Test func trimToAdmitAMinStableBlock() {
        func dev(_ id: String, max: Double, ms: Double, value: Double) -> DeviceSpec {
            DeviceSpec(id: id, deviceClass: .mining, nodeID: "xfmr-1", maxKw: max, minStableKw: ms, valueUsdPerMWh: value)
        }
        let devs = [dev("a", max: 600, ms: 600, value: 81.7), dev("b", max: 750, ms: 750, value: 120), dev("c", max: 500, ms: 300, value: 130)]
        let plant = Self.plant(devs, rootCap: 1830)
        let states = [DeviceState(setpointKw: 0, isOn: false), DeviceState(setpointKw: 750), DeviceState(setpointKw: 500)]
        let plan = Broker.dispatch(Self.problem(plant, states, DispatchSignals(energyPriceUsdPerMWh: 30)))
        #expect(plan.setpointsKw.map { ($0 * 1000).rounded() / 1000 } == [600, 750, 480], "\(plan.setpointsKw)")
        // 600 × 51.7 + 750 × 90 + 480 × 100 = 146,520 $/MWh·kW → 146.52 $/h.
        #expect(abs(plan.objective.total - 146.52) < 1e-6, "\(plan.objective.total)")
        #expect(plan.gapBoundUsdPerH < 1e-6)
        #expect(plan.reasons[2].contains("site cap 1.83 MW − margin 0.0 MW binding"), "\(plan.reasons[2])")
    }
}
