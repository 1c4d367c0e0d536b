import Broker
import Foundation
import TestSupport
import Testing

/// Reasons that are true: every comparison a reason prints holds for the numbers it prints, and
/// the texts issue 13 found false are now true.
@Suite("Broker reasons")
struct ReasonTests {
    // MARK: reading printed comparisons back

    enum Tok: Equatable {
        case num(Double)
        case word(String)
        case op(String)  // + − > < ≥ ≤ =
        case unit(String)
        case stop  // punctuation that ends an expression
    }

    static let units: Set<String> = ["$/MWh", "kW", "MW", "%", "s", "MW/tick", "kW/s"]

    static func tokens(_ s: String) -> [Tok] {
        var out: [Tok] = []
        for raw in s.split(separator: " ", omittingEmptySubsequences: true) {
            var w = String(raw)
            var trailing: [Tok] = []
            var leading: [Tok] = []
            while let f = w.first, "(".contains(f) {
                leading.append(.stop)
                w.removeFirst()
            }
            while let l = w.last, ":;,)".contains(l) {
                trailing.insert(.stop, at: 0)
                w.removeLast()
            }
            out += leading
            if w.isEmpty {
            } else if ["+", "−", ">", "<", "≥", "≤", "="].contains(w) {
                out.append(.op(w))
            } else if let v = Double(w), w.first != "+" {
                out.append(.num(v))
            } else if units.contains(w) {
                out.append(.unit(w))
            } else if w.hasSuffix("%"), let v = Double(w.dropLast()) {
                out.append(.num(v))
                out.append(.unit("%"))
            } else {
                out.append(.word(w))
            }
            out += trailing
        }
        return out
    }

    /// Decimal places of a printed number (for the tolerance of restated equalities).
    static func value(_ t: [Tok], from i: Int, backward: Bool) -> (sum: Double, terms: Int)? {
        // A term: label words, a number, an optional unit; terms joined by + or −.
        var sum = 0.0
        var terms = 0
        var k = i
        if backward {
            while true {
                if k >= 0, case .unit = t[k] { k -= 1 }
                guard k >= 0, case .num(let v) = t[k] else { return terms > 0 ? (sum, terms) : nil }
                k -= 1
                while k >= 0, case .word = t[k] { k -= 1 }
                if k >= 0, case .op(let o) = t[k], o == "+" || o == "−" {
                    sum += o == "−" ? -v : v
                    terms += 1
                    k -= 1
                    continue
                }
                sum += v
                terms += 1
                return (sum, terms)
            }
        } else {
            var sign = 1.0
            while true {
                while k < t.count, case .word = t[k] { k += 1 }
                guard k < t.count, case .num(let v) = t[k] else { return terms > 0 ? (sum, terms) : nil }
                sum += sign * v
                terms += 1
                k += 1
                if k < t.count, case .unit = t[k] { k += 1 }
                if k < t.count, case .op(let o) = t[k], o == "+" || o == "−" {
                    sign = o == "−" ? -1 : 1
                    k += 1
                    continue
                }
                return (sum, terms)
            }
        }
    }

    /// Every "A REL B" in `s`: whether it holds for the printed numbers. Returns the failures.
    static func falseComparisons(_ s: String) -> [String] {
        let t = tokens(s)
        var bad: [String] = []
        for (i, tok) in t.enumerated() {
            guard case .op(let rel) = tok, [">", "<", "≥", "≤", "="].contains(rel) else { continue }
            guard let l = value(t, from: i - 1, backward: true), let r = value(t, from: i + 1, backward: false) else {
                bad.append("unreadable comparison '\(rel)' in: \(s)")
                continue
            }
            let a = (l.sum * 1e6).rounded() / 1e6
            let b = (r.sum * 1e6).rounded() / 1e6
            let ok: Bool
            switch rel {
            case ">": ok = a > b
            case "<": ok = a < b
            case "≥": ok = a >= b
            case "≤": ok = a <= b
            default: ok = a == b
            }
            if !ok { bad.append("\(l.sum) \(rel) \(r.sum) is false in: \(s)") }
        }
        // "X cap C MW − margin M MW binding (load L MW)": the load is the cap less the margin.
        if let range = s.range(of: " binding (load ") {
            let before = tokens(String(s[..<range.lowerBound]))
            let after = tokens(String(s[range.upperBound...]))
            if case .num(let load)? = after.first,
                let capEnd = before.lastIndex(where: { if case .num = $0 { return true } else { return false } })
            {
                // Margin form: "... C MW − margin M MW"; baseline form: "... baseline C MW (paid ...)".
                if let cap = value(before, from: capEnd + (capEnd + 1 < before.count ? 1 : 0), backward: true) {
                    if abs(cap.sum - load) > 0.0015 && !s.contains("(paid") {
                        bad.append("binding, but load \(load) MW is not cap − margin \(cap.sum) MW: \(s)")
                    }
                }
            }
        }
        if let range = s.range(of: "/tick binding (ramp-up ") {
            let rate = tokens(String(s[..<range.lowerBound])).reversed().compactMap { if case .num(let v) = $0 { return v } else { return nil } }.first
            let after = tokens(String(s[range.upperBound...]))
            if let rate, case .num(let used)? = after.first, abs(rate - used) > 0.0015 {
                bad.append("restore named binding with \(rate - used) MW left: \(s)")
            }
        }
        return bad
    }

    /// The caps a reason names as binding: the text before each " binding" back to ": " or "; ".
    static func boundLabels(_ r: String) -> [String] {
        var out: [String] = []
        var rest = r[...]
        while let b = rest.range(of: " binding") {
            let head = rest[..<b.lowerBound]
            let cut = [head.range(of: ": ", options: .backwards), head.range(of: "; ", options: .backwards)]
                .compactMap { $0?.upperBound }.max() ?? head.startIndex
            out.append(String(head[cut...]))
            rest = rest[b.upperBound...]
        }
        return out
    }

    @Test("the reader itself")
    func readerSelfCheck() {
        #expect(Self.falseComparisons("curtailed: price 212 > mining value 104 $/MWh").isEmpty)
        #expect(!Self.falseComparisons("curtailed: price 54.2 > mining value 136 $/MWh").isEmpty)
        #expect(!Self.falseComparisons("idle: price 164 > rate 159 + penalty 196 $/MWh").isEmpty)
        #expect(Self.falseComparisons("curtailed: strike hysteresis, price 150 ≥ strike 180 − hysteresis 30 $/MWh").isEmpty)
        #expect(!Self.falseComparisons("curtailed: strike hysteresis, price 150 ≥ strike 180 − hysteresis 25 $/MWh").isEmpty)
        #expect(!Self.falseComparisons("site restore rate 1.75 MW/tick binding (ramp-up 1.73 MW)").isEmpty)
        #expect(Self.falseComparisons("xfmr-2 cap 17.5 MW − margin 0.5 MW binding (load 17.0 MW)").isEmpty)
        #expect(!Self.falseComparisons("xfmr-2 cap 17.5 MW − margin 0.5 MW binding (load 16.0 MW)").isEmpty)
        #expect(Self.falseComparisons("off: min-stable 400 kW does not fit (xfmr-2 cap 1.3 MW − margin 0.0 MW: room 300 kW < 400 kW)").isEmpty)
    }

    // MARK: the property

    @Test("every printed comparison holds for the numbers it prints", arguments: 0..<8)
    func comparisonsHold(batch: Int) {
        let kinds: [InstanceOptions] = [
            InstanceOptions(devices: 2...9, forecast: 0.3),
            InstanceOptions(devices: 5...30, restore: 0.6, paidReduction: 0.4, forecast: 0.3),
            .knapsack,
            InstanceOptions(devices: 3...12, dr: 0.5, paidReduction: 0.6, adder: 0.5, strike: 0.6, contracts: 0.6, forecast: 0.5),
        ]
        var checked = 0
        for i in 0..<100 {
            let seed = UInt64(70_000 + batch * 100 + i)
            var rng = SeededRandom(seed: seed)
            let inst = Instance.random(&rng, kinds[i % kinds.count])
            let plan = Broker.dispatch(inst.problem())
            for text in plan.reasons + plan.binding + [plan.optimality] {
                let bad = Self.falseComparisons(text)
                #expect(bad.isEmpty, "seed \(seed): \(bad)")
                checked += 1
            }
            // A cap a reason names as binding is full: it is in the plan's binding list.
            for r in plan.reasons where r.contains(" binding") {
                for label in Self.boundLabels(r) where !label.hasPrefix("site restore rate") {
                    #expect(
                        plan.binding.contains { $0.hasPrefix(label + " binding") },
                        "seed \(seed): '\(label)' named binding in '\(r)' but not in \(plan.binding)")
                }
            }
        }
        #expect(checked > 500)
    }

    // MARK: the four texts issue 13 found false

    static func site(_ devices: [DeviceSpec], rootCap: Double = 100_000, restore: Double? = nil) -> Plant {
        try! Plant(
            nodes: [NodeSpec(id: "site", parentID: nil, capKw: rootCap), NodeSpec(id: "xfmr-1", parentID: "site", capKw: 100_000)],
            devices: devices, tickSeconds: 10, restoreRateKwPerTick: restore, staleAfterS: 30)
    }

    static func problem(_ plant: Plant, _ states: [DeviceState], _ sig: DispatchSignals, curtailed: Bool = false) -> DispatchProblem {
        DispatchProblem(
            plant: plant,
            snapshot: Snapshot(
                devices: states, nodeMeasuredKw: plant.nodes.map { _ in nil }, uncontrolledKw: plant.nodes.map { _ in 0 },
                miningCurtailed: curtailed, miningCurtailedForS: 10_000),
            signals: sig)
    }

    @Test("a paid DR reduction: the price compared includes the payment forgone below the baseline")
    func paidReductionPriceIncludesThePayment() {
        let asic = DeviceSpec(id: "asic-1", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, valueUsdPerMWh: 136)
        var sig = DispatchSignals(energyPriceUsdPerMWh: 54.2)
        sig.paidReduction = PaidReduction(label: "DR event dr-9", baselineKw: 500, usdPerMWh: 200)
        let plan = Broker.dispatch(Self.problem(Self.site([asic]), [DeviceState(setpointKw: 1000)], sig))
        #expect(plan.setpointsKw == [0])
        #expect(plan.reasons[0] == "curtailed: price 254 > mining value 136 $/MWh (54.2 + DR payment 200 forgone below the baseline)")
        #expect(Self.falseComparisons(plan.reasons[0]).isEmpty)
    }

    @Test("a start blocked by the forecast: the forecast start price against rate + penalty")
    func forecastBlockedStart() {
        let gpu = DeviceSpec(
            id: "gpu-1", deviceClass: .inference, nodeID: "xfmr-1", maxKw: 1000, minStableKw: 400, minOnS: 600, valueUsdPerMWh: 80)
        var sig = DispatchSignals(energyPriceUsdPerMWh: 164, priceForecast: [(60, 500)])
        sig.commitments = [Commitment(contractID: "acme", deviceID: "gpu-1", committedKw: 600, rateUsdPerMWh: 159, penaltyUsdPerMWh: 196)]
        let plan = Broker.dispatch(Self.problem(Self.site([gpu]), [DeviceState(setpointKw: 0, isOn: false)], sig))
        #expect(plan.setpointsKw == [0])
        // Average over 600 s: 164 for 60 s, 500 for 540 s = 466.4.
        #expect(
            plan.reasons[0]
                == "contract acme (600 kW committed at 159 $/MWh, penalty 196): idle: forecast price 466 > rate 159 + penalty 196 $/MWh (average over its 600 s minimum on time; price now 164)"
        )
        #expect(Self.falseComparisons(plan.reasons[0]).isEmpty)
    }

    @Test("price at or above the strike: it is the strike, not the hysteresis")
    func strikeNotHysteresis() {
        let asic = DeviceSpec(id: "asic-1", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, valueUsdPerMWh: 400)
        var sig = DispatchSignals(energyPriceUsdPerMWh: 234)
        sig.strike = StrikePolicy(strikeUsdPerMWh: 180, hysteresisUsdPerMWh: 46, minOffS: 600)
        let plan = Broker.dispatch(Self.problem(Self.site([asic]), [DeviceState(setpointKw: 0, isOn: false)], sig, curtailed: true))
        #expect(plan.reasons[0] == "curtailed: price 234 ≥ strike 180 $/MWh")
        sig.energyPriceUsdPerMWh = 150
        let held = Broker.dispatch(Self.problem(Self.site([asic]), [DeviceState(setpointKw: 0, isOn: false)], sig, curtailed: true))
        #expect(held.reasons[0] == "curtailed: strike hysteresis, price 150 ≥ strike 180 − hysteresis 46 $/MWh")
    }

    @Test("the restore rate: named binding only when spent, and no kW left that a device could take")
    func restoreBindingOnlyWhenSpent() {
        // Two starts of 1 MW blocks and a continuous device: 1.75 MW of budget.
        let a = DeviceSpec(id: "asic-a", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, minStableKw: 1000, valueUsdPerMWh: 150)
        let b = DeviceSpec(id: "asic-b", deviceClass: .mining, nodeID: "xfmr-1", maxKw: 1000, minStableKw: 1000, valueUsdPerMWh: 140)
        let c = DeviceSpec(id: "gpu-c", deviceClass: .inference, nodeID: "xfmr-1", maxKw: 1000, valueUsdPerMWh: 100)
        let plan = Broker.dispatch(
            Self.problem(
                Self.site([a, b, c], restore: 1750), [DeviceState(setpointKw: 0, isOn: false), DeviceState(setpointKw: 0, isOn: false), DeviceState(setpointKw: 0, isOn: false)],
                DispatchSignals(energyPriceUsdPerMWh: 30)))
        #expect(plan.setpointsKw == [1000, 0, 750])
        #expect(plan.binding == ["site restore rate 1.75 MW/tick binding (ramp-up 1.75 MW)"])
        for t in plan.reasons + plan.binding { #expect(Self.falseComparisons(t).isEmpty, "\(t)") }
        #expect(plan.reasons[1] == "off: min-stable 1000 kW does not fit (site restore rate 1.75 MW/tick: left 0 kW < 1000 kW of ramp-up)")
    }
}
