// The site's offer to a fleet shed (Broker.shedOffer): a hand computation, and on random sites the curve's
// claims checked against the objective (`Broker.evaluate`) of the setpoints it describes.

import Broker
import Testing
import TestSupport

@Suite struct ShedOfferTests {
    /// By hand, at $40/MWh: ASIC a runs 1,000 kW (min-stable 600) at a mining value of $100/MWh, so each kW shed
    /// loses $60/MWh: 400 kW of trim ($24/h), then its 600 kW block ($36/h). GPU container b runs 800 kW at a
    /// spot value of $150/MWh with 500 kW committed at $200/MWh (penalty $100): its 300 kW above the commitment
    /// lose $110/MWh ($33/h), the committed 500 kW lose $200 + $100 − $40 = $260/MWh ($130/h). Cheapest first.
    @Test func handComputedSite() throws {
        let plant = try Plant(
            nodes: [NodeSpec(id: "site", parentID: nil, capKw: 10_000)],
            devices: [
                DeviceSpec(id: "a", deviceClass: .mining, nodeID: "site", maxKw: 1000, minStableKw: 600),
                DeviceSpec(id: "b", deviceClass: .inference, nodeID: "site", maxKw: 800),
            ],
            importLimitKw: 10_000, safetyMarginKw: 0, tickSeconds: 1, restoreRateKwPerTick: nil, staleAfterS: 10)
        let snap = Snapshot(devices: [DeviceState(setpointKw: 1000), DeviceState(setpointKw: 800)],
                            nodeMeasuredKw: [nil], uncontrolledKw: [0], miningCurtailed: false, miningCurtailedForS: 0)
        let sig = DispatchSignals(energyPriceUsdPerMWh: 40, miningValueUsdPerMWh: 100, inferenceSpotUsdPerMWh: 150,
                                  commitments: [Commitment(contractID: "acme", deviceID: "b", committedKw: 500,
                                                           rateUsdPerMWh: 200, penaltyUsdPerMWh: 100)])
        let offer = Broker.shedOffer(DispatchProblem(plant: plant, snapshot: snap, signals: sig), setpointsKw: [1000, 800])
        let got: [(ids: [String], kw: Double, usd: Double)] = offer.map {
            ($0.deviceIDs, ($0.importKw * 1e6).rounded() / 1e6, ($0.usdPerHour * 1e6).rounded() / 1e6) }
        #expect(got.count == 4)
        #expect(got.map(\.ids) == [["a"], ["a"], ["b"], ["b"]])
        #expect(got.map(\.kw) == [400, 600, 300, 500])
        #expect(got.map(\.usd) == [24, 36, 33, 130])
        let coarse = Broker.coarsened(offer, maxSteps: 3)
        #expect(coarse.count == 3)
        #expect(coarse[0].deviceIDs == ["a", "a"] && abs(coarse[0].importKw - 1000) < 1e-9 && abs(coarse[0].usdPerHour - 60) < 1e-9)
    }

    /// On random sites (2–40 devices, contracts, aux load, dwell, unavailable devices): the curve is convex, only
    /// available devices offer, no device offers more than it runs (nor its min-on floor), and shedding each
    /// prefix of the curve from the setpoints lowers the objective by the $/h it claims (wherever no step was
    /// clamped at $0) and the site import by the kW it claims.
    @Test func claimsMatchTheObjectiveOnRandomSites() {
        var rng = SeededRandom(seed: 0x0FFE12)
        var checked = 0
        for _ in 0..<300 {
            var o = InstanceOptions(devices: 2...40)
            o.paidReduction = 0
            o.forecast = 0
            let inst = Instance.random(&rng, o)
            let problem = inst.problem()
            let plan = Broker.dispatch(problem)
            guard plan.feasible else { continue }
            let x = plan.setpointsKw
            let offer = Broker.shedOffer(problem, setpointsKw: x)
            for (a, b) in zip(offer, offer.dropFirst()) { #expect(a.usdPerMWh <= b.usdPerMWh + 1e-9) }
            let ids = problem.plant.devices.map(\.id)
            var shed = [Double](repeating: 0, count: ids.count)
            for s in offer {
                #expect(s.usdPerHour >= 0 && s.importKw > 0)
                let d = ids.firstIndex(of: s.deviceIDs[0])!
                #expect(problem.snapshot.devices[d].available)
                shed[d] += s.deviceKw
            }
            for d in ids.indices { #expect(shed[d] <= x[d] + 1e-6) }
            // Prefix by prefix: take the steps in order (device kW from the top), compare with evaluate.
            let base = Broker.evaluate(problem, setpointsKw: x)
            var y = x, claimedKw = 0.0, claimedUsd = 0.0, clamped = false
            for s in offer {
                let d = ids.firstIndex(of: s.deviceIDs[0])!
                y[d] -= s.deviceKw
                claimedKw += s.importKw
                claimedUsd += s.usdPerHour
                if s.usdPerHour == 0 { clamped = true }
                let now = Broker.evaluate(problem, setpointsKw: y)
                let importDrop = (now.energy - base.energy) / (problem.signals.energyPriceUsdPerMWh + addersOf(problem)) * 1000
                if problem.signals.energyPriceUsdPerMWh + addersOf(problem) > 1 {
                    #expect(abs(importDrop - claimedKw) <= 1e-6 * max(1, claimedKw))
                }
                if !clamped {
                    let lost = (base.total - base.drCredit) - (now.total - now.drCredit)
                    #expect(abs(lost - claimedUsd) <= 1e-6 * max(1, abs(lost)), "lost \(lost), claimed \(claimedUsd)")
                    checked += 1
                }
            }
        }
        #expect(checked > 1000)
    }

    private func addersOf(_ p: DispatchProblem) -> Double { p.signals.priceAdders.reduce(0) { $0 + $1.usdPerMWh } }
}
