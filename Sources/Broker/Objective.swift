// The objective a plan is worth: revenue by device, energy cost, DR credits, contract penalties.

extension Engine {
    // MARK: objective

    /// Committed kW that the plan tries to serve (0 when selling spot pays more).
    func servedCommit(_ d: Int) -> Double { spotOverContract[d] ? 0 : commitKw[d] }

    func revenue(_ d: Int, _ x: Double) -> Double {
        let c = servedCommit(d)
        if c > 0 { return (rate[d] * min(x, c) + value[d] * max(0, x - c)) / 1000 }
        return value[d] * x / 1000
    }

    func objective(_ x: [Double]) -> Objective {
        var o = Objective()
        var site = fixedSub[0]
        let rootMult = plant.rootMult
        let mining = plant.isMining
        for d in 0..<nD {
            let xd = x[d]
            site += xd * rootMult[d]
            let c = commitKw[d]
            var r: Double
            if c > 0 {
                if spotOverContract[d] {
                    r = value[d] * xd / 1000
                    o.penalty -= pen[d] * c / 1000
                } else {
                    r = (rate[d] * min(xd, c) + value[d] * max(0, xd - c)) / 1000
                    o.penalty -= pen[d] * max(0, c - xd) / 1000
                }
            } else {
                r = value[d] * xd / 1000
            }
            if mining[d] { o.mining += r } else { o.inference += r }
        }
        o.energy = -price * site / 1000
        if let pr = sig.paidReduction { o.drCredit = pr.usdPerMWh * max(0, pr.baselineKw - site) / 1000 }
        return o
    }
}
