import Broker
import Testing

/// Issue 12 §4: the broker plans mining into the inference headroom the safety governor lends.
@Suite("Broker: inference headroom credit")
struct HeadroomCreditTests {
    /// A 3 MW transformer with one 2 MW GPU container (told 2 MW) and two 1 MW ASICs.
    static func plant() -> Plant {
        try! Plant(
            nodes: [
                NodeSpec(id: "site", parentID: nil, capKw: 100_000),
                NodeSpec(id: "xfmr-1", parentID: "site", capKw: 3000),
            ],
            devices: [
                DeviceSpec(id: "gpu-1", deviceClass: .inference, nodeID: "xfmr-1", maxKw: 2000, valueUsdPerMWh: 400),
                DeviceSpec(id: "asic-1", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, efficiencyJPerTH: 20),
                DeviceSpec(id: "asic-2", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, efficiencyJPerTH: 20),
            ], tickSeconds: 1, staleAfterS: 30)
    }

    static func problem(credit: [Double]?, paid: PaidReduction? = nil) -> DispatchProblem {
        let p = plant()
        var sig = DispatchSignals(energyPriceUsdPerMWh: 30, hashpriceUsdPerPHDay: 50)
        sig.paidReduction = paid
        return DispatchProblem(
            plant: p,
            snapshot: Snapshot(
                devices: [DeviceState(measuredKw: 800, setpointKw: 2000), DeviceState(setpointKw: 1000), DeviceState(setpointKw: 0)],
                nodeMeasuredKw: [nil, nil], uncontrolledKw: [0, 0], headroomCreditKw: credit),
            signals: sig)
    }

    @Test func withoutCreditTheGPUsSetpointTakesTheRoom() {
        let plan = Broker.dispatch(Self.problem(credit: nil))
        #expect(plan.setpointsKw[0] == 2000)
        #expect(abs(plan.setpointsKw[1] + plan.setpointsKw[2] - 1000) < 1e-6)
    }

    @Test func creditIsPlannedAsMiningAndSaidInTheReason() {
        // The governor lends 1000 kW at xfmr-1 (and so at the site): GPU told 2000, draws 800, reserve 200.
        let plan = Broker.dispatch(Self.problem(credit: [1000, 1000]))
        #expect(plan.setpointsKw[0] == 2000)
        #expect(abs(plan.setpointsKw[1] + plan.setpointsKw[2] - 2000) < 1e-6)
        #expect(plan.binding.contains { $0.contains("xfmr-1 cap 3.0 MW") && $0.contains("+ inference headroom 1.0 MW") })
    }

    @Test func noCreditWhileAPaidReductionIsInForce() {
        let paid = PaidReduction(label: "DR x", baselineKw: 100_000, usdPerMWh: 1)
        let plan = Broker.dispatch(Self.problem(credit: [1000, 1000], paid: paid))
        #expect(abs(plan.setpointsKw[1] + plan.setpointsKw[2] - 1000) < 1e-6)
    }
}
