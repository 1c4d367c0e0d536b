// The offer curve and configuration hash as the hub reads them from a site's metrics (FleetMetricName), and what a
// fleet shed would start from (FleetModel.shedInputs).

import Hub
import Sparkplug
import Testing

/// A site's offer as the edge node publishes it: the steps in use, then every slot (null when not in use).
func offerMetrics(_ steps: [(kw: Double, usd: Double)]) -> [SparkplugMetric] {
    var m = [SparkplugMetric(name: FleetMetricName.offerSteps, value: .int32(Int32(steps.count)))]
    for k in 1...FleetMetricName.offerMaxSteps {
        if k <= steps.count {
            m.append(SparkplugMetric(name: FleetMetricName.offerStepKW(k), value: .double(steps[k - 1].kw)))
            m.append(SparkplugMetric(name: FleetMetricName.offerStepUSDPerHour(k), value: .double(steps[k - 1].usd)))
        } else {
            m.append(SparkplugMetric(name: FleetMetricName.offerStepKW(k), null: .double))
            m.append(SparkplugMetric(name: FleetMetricName.offerStepUSDPerHour(k), null: .double))
        }
    }
    return m
}

@Suite struct FleetOfferTests {
    let sha = String(repeating: "ab", count: 32)

    @Test func theOfferAndConfigHashAreReadFromBirthAndData() {
        var model = FleetModel()
        var a = NodeScript(group: "ERCOT", edge: "site-a")
        let birth = siteMetrics + offerMetrics([(2_000, 60), (3_000, 150)])
            + [SparkplugMetric(name: FleetMetricName.configSHA256, value: .string(sha))]
        _ = model.take(a.nbirth(bdSeq: 0, at: 1_000, birth), now: 1_000)
        var row = model.status(now: 1_000)[0]
        #expect(row.offer == [OfferStep(mw: 2, dollarsPerHour: 60), OfferStep(mw: 3, dollarsPerHour: 150)])
        #expect(row.configSHA256 == sha)

        // Data changes a step and drops to one step in use: the offer follows.
        _ = model.take(a.ndata(at: 2_000, [SparkplugMetric(name: FleetMetricName.offerSteps, value: .int32(1)),
                                           SparkplugMetric(name: FleetMetricName.offerStepKW(1), value: .double(1_500))]), now: 2_000)
        row = model.status(now: 2_000)[0]
        #expect(row.offer == [OfferStep(mw: 1.5, dollarsPerHour: 60)])

        let inputs = model.shedInputs(region: "ERCOT", now: 2_000)
        #expect(inputs.missing.isEmpty)
        #expect(inputs.sites[a.key]?.importKW == 31_000)
        #expect(inputs.sites[a.key]?.offer.steps == [OfferStep(mw: 1.5, dollarsPerHour: 60)])
        #expect(model.shedInputs(region: "PJM", now: 2_000).sites.isEmpty)
    }

    @Test func aSiteWithoutAUsableOfferIsLeftOutWithTheReason() {
        var model = FleetModel()
        var plain = NodeScript(group: "ERCOT", edge: "no-offer")
        var bad = NodeScript(group: "ERCOT", edge: "bad-offer")
        var missingStep = NodeScript(group: "ERCOT", edge: "short-offer")
        var good = NodeScript(group: "ERCOT", edge: "good")
        _ = model.take(plain.nbirth(bdSeq: 0, at: 0, siteMetrics), now: 0)
        _ = model.take(bad.nbirth(bdSeq: 0, at: 0, siteMetrics + offerMetrics([(-5, 10)])), now: 0)
        // Two steps claimed, one published.
        _ = model.take(missingStep.nbirth(bdSeq: 0, at: 0, siteMetrics + offerMetrics([(1_000, 10)]).map {
            $0.name == FleetMetricName.offerSteps ? SparkplugMetric(name: $0.name!, value: .int32(2)) : $0
        }), now: 0)
        _ = model.take(good.nbirth(bdSeq: 0, at: 0, siteMetrics + offerMetrics([(1_000, 10)])), now: 0)
        let rows = Dictionary(uniqueKeysWithValues: model.status(now: 0).map { ($0.edge, $0) })
        #expect(rows["no-offer"]?.offer == nil)
        #expect(rows["bad-offer"]?.offer == nil)
        #expect(rows["short-offer"]?.offer == nil)
        var inputs = model.shedInputs(region: "ERCOT", now: 0)
        #expect(Set(inputs.sites.keys) == [good.key])
        #expect(inputs.missing == [plain.key: "no offer curve", bad.key: "no offer curve", missingStep.key: "no offer curve"])

        // Stale: left out as stale, not used with an old offer.
        let later = FleetModel.Configuration().staleAfterMS + 1
        inputs = model.shedInputs(region: "ERCOT", now: later)
        #expect(inputs.sites.isEmpty)
        #expect(inputs.missing[good.key] == "stale")
    }
}
