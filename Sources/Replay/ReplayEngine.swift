// One replay run: the real control loop (poller → broker or baseline → governor → actuators)
// on virtual time against the simulated site, over the price trace. The money is counted from
// what the simulated site actually did in each physics step, not from the broker's estimate.
// See docs/replay.md for every definition.

import Basics
import Broker
import Control
import Foundation
import HardwareProfiles
import Modbus
import Simulation
import Site
import enum Signals.MeasuredBaseline

/// One control tick's interval, as it happened (averages over the interval; money in $).
public struct TickSample: Sendable, Equatable {
    public var at: Double
    public var seconds: Double
    /// Energy price with peak adders ($/MWh).
    public var priceUsdPerMWh: Double
    /// Mining value of the fleet ($/MWh: hashprice over capacity-weighted J/TH, or the configured value).
    public var miningValueUsdPerMWh: Double
    public var siteKW: Double
    public var miningKW: Double
    public var inferenceKW: Double
    public var auxiliaryKW: Double
    public var miningUsd: Double
    public var inferenceUsd: Double
    public var energyUsd: Double
    public var drCreditUsd: Double
    public var penaltyUsd: Double
    public var netUsd: Double { miningUsd + inferenceUsd - energyUsd + drCreditUsd - penaltyUsd }
}

/// One of the most expensive hours, and what the controller did in it.
public struct HourNote: Sendable, Equatable, Codable {
    public var hourStart: Double
    public var averagePriceUsdPerMWh: Double
    public var siteMW: Double
    public var miningMW: Double
    public var inferenceMW: Double
    public var energyCostUsd: Double
    public var netUsd: Double
    /// What the controller did, from the tick with the highest price in the hour.
    public var actions: [String]
}

/// The totals of one run.
public struct RunSummary: Sendable, Equatable, Codable {
    public var id: String
    public var label: String
    public var hours: Double
    public var miningRevenueUsd: Double
    public var inferenceRevenueUsd: Double
    /// Of the inference revenue: committed kW delivered, at the contract rate.
    public var inferenceContractUsd: Double
    /// Of the inference revenue: the rest, at the spot value.
    public var inferenceSpotUsd: Double
    public var energyCostUsd: Double
    public var drCreditsUsd: Double
    public var penaltiesUsd: Double
    public var netUsd: Double
    public var importMWh: Double
    public var miningMWh: Double
    public var inferenceMWh: Double
    public var auxiliaryMWh: Double
    /// Share of container-time each class was running (device-hours on ÷ device-hours), 0…1.
    public var miningUptime: Double
    public var inferenceUptime: Double
    /// Energy the class could have drawn and did not: mining max − drawn; inference min(max, demand) − drawn.
    public var curtailedMiningMWh: Double
    public var curtailedInferenceMWh: Double
    public var capViolations: Int
    public var breakerTrips: Int
    public var peakSiteKW: Double
    /// Energy cost ÷ import ($/MWh).
    public var averagePriceUsdPerMWh: Double
}

public struct RunResult: Sendable {
    public var summary: RunSummary
    public var samples: [TickSample]
    /// The ten hours with the highest average price, highest first.
    public var topHours: [HourNote]
    /// Breaker trips and the first cap violations, in words.
    public var incidents: [String]
    /// The measured baseline of each paid reduction that brought none (kW, and how it was found).
    public var measuredBaselines: [String: MeasuredBaseline.Settled] = [:]
}

public enum ReplayEngine {
    /// Runs one policy over the whole range. `progress` gets the simulated time every few hundred ticks.
    public static func run(_ config: ReplayConfig, policy: ReplayPolicy, recordActions: Bool = true,
                           progress: (@Sendable (Double) -> Void)? = nil) async throws(ReplayError) -> RunResult {
        // The site as the replay runs it: ramp limits and the restore budget per replay tick.
        var site = config.site
        let siteTick = site.tickSeconds > 0 ? site.tickSeconds : 1
        site.tickSeconds = config.tickS
        if let r = site.restoreRateKwPerTick { site.restoreRateKwPerTick = r * config.tickS / siteTick }
        let plant: Plant
        do { plant = try site.plant() } catch { throw ReplayError(ReplayInputs.siteError(error)) }

        // The simulated site: cold start, noise as configured, inference demand on the UTC clock.
        var spec: SimSiteSpec
        do { spec = try SimSiteSpec(site: site, profiles: config.profiles, servePortsFromSite: false) } catch {
            throw ReplayError("\(site.file): error: cannot simulate the site: \(error)")
        }
        let offsetH = (config.from / 3600).truncatingRemainder(dividingBy: 24)
        for i in spec.devices.indices {
            if let n = config.noiseFraction { spec.devices[i].noiseFraction = n }
            if spec.devices[i].role == .asicContainer || spec.devices[i].role == .gpuContainer {
                spec.devices[i].initialSetpointKW = 0
                spec.devices[i].commWatchdogS = 0
            }
            if spec.devices[i].role == .gpuContainer {
                spec.devices[i].demandCurve = rotate(config.inferenceDemand ?? SimDevice.defaultDemandCurve, byHours: offsetH)
            }
        }
        let sim: SiteSimulator
        do { sim = try SiteSimulator(spec: spec, seed: config.seed) } catch {
            throw ReplayError("\(site.file): error: cannot simulate the site: \(error)")
        }
        var buses: [String: any RegisterBus] = [:]
        for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id) }
        let source = ReplaySignalSource(config: config, site: site, plant: plant)
        let loop: ControlLoop
        do {
            var options = ControlOptions(commWatchdogS: 0, policy: policy.proposal())
            options.serialPolling = true  // in-memory devices: no gain from concurrency, only task switches
            options.explainEveryTick = false  // reasons are rendered only for the ticks the report shows
            loop = try ControlLoop(site: site, profiles: config.profiles, buses: buses, signals: source, options: options)
        } catch { throw ReplayError("\(site.file): error: \(error)") }

        // Static facts per plant device.
        let nD = plant.devices.count
        let ids = plant.devices.map(\.id)
        let isMining = plant.devices.map { $0.deviceClass == .mining }
        let maxKW = plant.devices.map(\.maxKw)
        let siteDevices = ids.map { site.device($0)! }
        let override = siteDevices.map(\.valueUsdPerMWh)
        let effs = plant.devices.map { $0.efficiencyJPerTH ?? 0 }
        let miningMax = zip(isMining, maxKW).reduce(0) { $0 + ($1.0 ? $1.1 : 0) }
        let fleetJPerTH = miningMax > 0 ? zip(isMining.indices, maxKW).reduce(0) { $0 + (isMining[$1.0] ? effs[$1.0] * $1.1 : 0) } / miningMax : 0
        let nMining = isMining.filter { $0 }.count, nInference = nD - nMining
        let miningPerDevice = plant.devices.indices.contains { isMining[$0] && override[$0] != nil }
        // Hard caps: every tree node; the root also the import limit.
        let capNodes = site.nodes.map { n in
            (id: n.id, cap: n.parentID == nil ? min(n.capKw, site.importLimitKw) : n.capKw, sim: spec.nodes.firstIndex { $0.id == n.id })
        }
        // Plant device → simulator device index.
        let simIndex = ids.map { sim.index(of: $0) ?? -1 }
        let rootID = site.nodes.first { $0.parentID == nil }?.id ?? "site"
        // A new, lower import cap is met within the slowest container's full-scale ramp, plus its lag.
        let graceS = spec.devices.filter { $0.role == .asicContainer || $0.role == .gpuContainer }
            .map { $0.maxKW / max($0.rampKWPerS, 1e-9) + 5 * $0.lagSeconds }.max() ?? 0
        var capSince: [String: Double] = [:]

        var acc = Accumulator()
        var samples: [TickSample] = []
        samples.reserveCapacity(Int((config.to - config.from) / config.tickS) + 2)
        var hours = HourTracker(keep: 10)
        var incidents: [String] = []
        var t = config.from
        var tickCount = 0
        var devOnHours = [Double](repeating: 0, count: nD)

        while t < config.to - 1e-9 {
            source.settleBaselines(at: t, samples: samples)
            let report = await loop.tick(now: t)
            let sig = source.signals(at: t)
            let (basePrice, priceEnd) = source.price(at: t)
            let dt = min(config.tickS, priceEnd - t, config.to - t)
            let adders = sig.priceAdders.reduce(0) { $0 + $1.usdPerMWh }
            let price = basePrice + adders
            let hp = sig.hashpriceUsdPerPHDay
            let miningValue = sig.miningValueUsdPerMWh ?? hp.map { fleetJPerTH > 0 ? $0 / (0.024 * fleetJPerTH) : 0 } ?? 0
            // Commitments and values per device this tick (as the broker weighs them).
            var commit = [Double](repeating: 0, count: nD), rate = commit, pen = commit, spot = commit
            for c in sig.commitments {
                guard let d = plant.deviceIndex(c.deviceID), c.committedKw > 0 else { continue }
                let n = commit[d] + c.committedKw
                rate[d] = (rate[d] * commit[d] + c.rateUsdPerMWh * c.committedKw) / n
                pen[d] = (pen[d] * commit[d] + c.penaltyUsdPerMWh * c.committedKw) / n
                commit[d] = n
            }
            for d in 0..<nD where !isMining[d] {
                if let v = override[d] { spot[d] = v }
                else if let v = sig.inferenceSpotUsdPerMWh { spot[d] = v }
                else if let g = sig.inferenceSpotUsdPerGpuHour, let k = plant.devices[d].kwPerGpu, k > 0 { spot[d] = g / k * 1000 }
            }
            let importCap = sig.importCaps.map(\.capKw).min()
            for c in sig.importCaps where capSince[c.label] == nil { capSince[c.label] = t }
            for k in Array(capSince.keys) where !sig.importCaps.contains(where: { $0.label == k }) { capSince[k] = nil }
            let capStart = sig.importCaps.compactMap { capSince[$0.label] }.max() ?? t

            var s = TickSample(at: t, seconds: dt, priceUsdPerMWh: price, miningValueUsdPerMWh: miningValue, siteKW: 0, miningKW: 0,
                               inferenceKW: 0, auxiliaryKW: 0, miningUsd: 0, inferenceUsd: 0, energyUsd: 0, drCreditUsd: 0, penaltyUsd: 0)
            let steps = max(1, Int((dt / config.physicsStepS).rounded(.up)))
            let h = dt / Double(steps)
            let hh = h / 3600
            var violated = false
            for k in 0..<steps {
                sim.step(.seconds(h))
                let now = t + Double(k + 1) * h
                let sum = sim.readings()
                s.siteKW += sum.siteKW * h / dt
                s.miningKW += sum.miningKW * h / dt
                s.inferenceKW += sum.inferenceKW * h / dt
                s.auxiliaryKW += sum.auxiliaryKW * h / dt
                s.energyUsd += sum.siteKW * hh / 1000 * price
                if let pr = sig.paidReduction { s.drCreditUsd += max(0, pr.baselineKw - sum.siteKW) * hh / 1000 * pr.usdPerMWh }
                acc.peakSiteKW = max(acc.peakSiteKW, sum.siteKW)
                // Mining: hashrate × hashprice; devices with a value of their own (or no hashprice): energy × value.
                if let hp, !miningPerDevice {
                    s.miningUsd += sum.hashrateTHs / 1000 * hp * hh / 24
                } else {
                    for d in 0..<nD where isMining[d] {
                        if let v = override[d] {
                            s.miningUsd += Self.power(sum, simIndex[d]) * hh / 1000 * v
                        } else if let hp {
                            s.miningUsd += (simIndex[d] >= 0 ? sum.hashrateTHsByDevice[simIndex[d]] : 0) / 1000 * hp * hh / 24
                        } else {
                            s.miningUsd += Self.power(sum, simIndex[d]) * hh / 1000 * miningValue
                        }
                    }
                }
                for d in 0..<nD {
                    let p = Self.power(sum, simIndex[d])
                    if p > 0.01 * maxKW[d] { devOnHours[d] += hh }
                    if isMining[d] {
                        acc.curtailedMining += max(0, maxKW[d] - p) * hh / 1000
                        continue
                    }
                    let demand = min(maxKW[d], simIndex[d] >= 0 ? sum.demandKW[simIndex[d]] : 0)
                    acc.curtailedInference += max(0, demand - p) * hh / 1000
                    if commit[d] > 0, spot[d] < rate[d] + pen[d] {
                        let served = min(p, commit[d])
                        acc.contract += served * hh / 1000 * rate[d]
                        acc.spot += (p - served) * hh / 1000 * spot[d]
                        s.inferenceUsd += (served * rate[d] + (p - served) * spot[d]) * hh / 1000
                        s.penaltyUsd += (commit[d] - served) * hh / 1000 * pen[d]
                    } else {
                        // No commitment, or spot pays more than rate + penalty: sell spot, pay any penalty in full.
                        acc.spot += p * hh / 1000 * spot[d]
                        s.inferenceUsd += p * hh / 1000 * spot[d]
                        s.penaltyUsd += commit[d] * hh / 1000 * pen[d]
                    }
                }
                // Caps: the hard tree caps always; an import cap once its grace (the ramp time) has passed.
                for n in capNodes {
                    let load = n.id == rootID ? sum.siteKW : n.sim.map { sum.nodeKW[$0] } ?? 0
                    if load > n.cap + 1e-6 {
                        violated = true
                        if incidents.count < 20 { incidents.append("\(ISO8601.format(now)): \(n.id) at \(Int(load)) kW over its \(Int(n.cap)) kW cap") }
                    }
                }
                if let cap = importCap, now - capStart >= graceS, sum.siteKW > cap + 1e-6 {
                    violated = true
                    if incidents.count < 20 { incidents.append("\(ISO8601.format(now)): site at \(Int(sum.siteKW)) kW over the import cap \(Int(cap)) kW") }
                }
            }
            if violated { acc.capViolations += 1 }
            acc.add(s)
            samples.append(s)
            hours.add(s, actions: recordActions ? { actions(report, ids: ids, isMining: isMining) } : nil)
            t += dt
            tickCount += 1
            if tickCount % 256 == 0 { progress?(t) }
        }
        progress?(config.to)
        let trips = sim.trips
        incidents = trips.map(\.description) + incidents
        let totalH = (config.to - config.from) / 3600
        let miningUp = nMining > 0 ? devOnHours.indices.filter { isMining[$0] }.reduce(0) { $0 + devOnHours[$1] } / (Double(nMining) * totalH) : 0
        let infUp = nInference > 0 ? devOnHours.indices.filter { !isMining[$0] }.reduce(0) { $0 + devOnHours[$1] } / (Double(nInference) * totalH) : 0
        let summary = RunSummary(
            id: policy.id, label: policy.label, hours: totalH, miningRevenueUsd: acc.mining, inferenceRevenueUsd: acc.inference,
            inferenceContractUsd: acc.contract, inferenceSpotUsd: acc.spot, energyCostUsd: acc.energy, drCreditsUsd: acc.dr,
            penaltiesUsd: acc.penalty, netUsd: acc.mining + acc.inference - acc.energy + acc.dr - acc.penalty,
            importMWh: acc.importMWh, miningMWh: acc.miningMWh, inferenceMWh: acc.inferenceMWh, auxiliaryMWh: acc.auxMWh,
            miningUptime: miningUp, inferenceUptime: infUp, curtailedMiningMWh: acc.curtailedMining,
            curtailedInferenceMWh: acc.curtailedInference, capViolations: acc.capViolations, breakerTrips: trips.count,
            peakSiteKW: acc.peakSiteKW, averagePriceUsdPerMWh: acc.importMWh > 0 ? acc.energy / acc.importMWh : 0)
        return RunResult(summary: summary, samples: samples, topHours: hours.finish(), incidents: incidents,
                         measuredBaselines: source.measuredBaselines)
    }

    static func power(_ r: SimReadings, _ i: Int) -> Double { i >= 0 ? r.powerKW[i] : 0 }

    /// A daily curve (24 values, or any count per day) shifted so that index 0 is `hours` after midnight.
    static func rotate(_ curve: [Double], byHours hours: Double) -> [Double] {
        guard !curve.isEmpty, hours != 0 else { return curve }
        let n = curve.count
        let perHour = Double(n) / 24
        return (0..<n).map { k in
            let x = (Double(k) + hours * perHour).truncatingRemainder(dividingBy: Double(n))
            let i0 = Int(x) % n, i1 = (i0 + 1) % n
            let f = x - Double(Int(x))
            return curve[i0] * (1 - f) + curve[i1] * f
        }
    }

    /// What the controller did at a tick, per class, in a few lines.
    static func actions(_ r: TickReport, ids: [String], isMining: [Bool]) -> [String] {
        var out: [String] = []
        for (cls, mining) in [("mining", true), ("inference", false)] {
            let idx = ids.indices.filter { isMining[$0] == mining }
            guard !idx.isEmpty else { continue }
            let on = idx.filter { (r.setpointsKW[ids[$0]] ?? 0) > 0 }.count
            let kw = idx.reduce(0) { $0 + (r.setpointsKW[ids[$1]] ?? 0) }
            var counts: [String: Int] = [:]
            var firstSeen: [String: Int] = [:]
            for i in idx {
                let why = r.reason(for: ids[i]) ?? ""
                counts[why, default: 0] += 1
                if firstSeen[why] == nil { firstSeen[why] = i }
            }
            let top = counts.max { a, b in a.value != b.value ? a.value < b.value : firstSeen[a.key]! > firstSeen[b.key]! }
            var line = "\(cls): \(on)/\(idx.count) on, \(fmt1(kw / 1000)) MW set"
            if let top, !top.key.isEmpty { line += " — " + (top.value > 1 ? "\(top.value)× " : "") + top.key }
            out.append(line)
        }
        out += r.interventions.prefix(3)
        out += r.events.prefix(3)
        return out
    }
}

func fmt1(_ v: Double) -> String { String(format: "%.1f", v) }

struct Accumulator {
    var mining = 0.0, inference = 0.0, contract = 0.0, spot = 0.0, energy = 0.0, dr = 0.0, penalty = 0.0
    var importMWh = 0.0, miningMWh = 0.0, inferenceMWh = 0.0, auxMWh = 0.0
    var curtailedMining = 0.0, curtailedInference = 0.0
    var capViolations = 0
    var peakSiteKW = 0.0

    mutating func add(_ s: TickSample) {
        mining += s.miningUsd
        inference += s.inferenceUsd
        energy += s.energyUsd
        dr += s.drCreditUsd
        penalty += s.penaltyUsd
        let h = s.seconds / 3600 / 1000
        importMWh += s.siteKW * h
        miningMWh += s.miningKW * h
        inferenceMWh += s.inferenceKW * h
        auxMWh += s.auxiliaryKW * h
    }
}

/// Hour buckets (UTC), keeping the `keep` with the highest average price and, for those, the actions
/// at the hour's most expensive tick. Ties: the earlier hour ranks higher.
struct HourTracker {
    let keep: Int
    var current: Double?
    var sumPriceS = 0.0, sumS = 0.0, siteKWs = 0.0, miningKWs = 0.0, inferenceKWs = 0.0, cost = 0.0, net = 0.0
    var maxPrice = -Double.infinity
    var actions: [String] = []
    var top: [HourNote] = []

    init(keep: Int) { self.keep = keep }

    mutating func add(_ s: TickSample, actions make: (() -> [String])?) {
        let hour = (s.at / 3600).rounded(.down) * 3600
        if current != hour { flush(); current = hour }
        sumPriceS += s.priceUsdPerMWh * s.seconds
        sumS += s.seconds
        siteKWs += s.siteKW * s.seconds
        miningKWs += s.miningKW * s.seconds
        inferenceKWs += s.inferenceKW * s.seconds
        cost += s.energyUsd
        net += s.netUsd
        if s.priceUsdPerMWh > maxPrice {
            maxPrice = s.priceUsdPerMWh
            // Only worth rendering if this hour can still make the list.
            if let make, top.count < keep || s.priceUsdPerMWh >= (top.last?.averagePriceUsdPerMWh ?? -.infinity) { actions = make() }
        }
    }

    mutating func flush() {
        defer {
            sumPriceS = 0; sumS = 0; siteKWs = 0; miningKWs = 0; inferenceKWs = 0; cost = 0; net = 0
            maxPrice = -.infinity; actions = []
        }
        guard let hour = current, sumS > 0 else { return }
        let avg = sumPriceS / sumS
        let note = HourNote(hourStart: hour, averagePriceUsdPerMWh: avg, siteMW: siteKWs / sumS / 1000, miningMW: miningKWs / sumS / 1000,
                            inferenceMW: inferenceKWs / sumS / 1000, energyCostUsd: cost, netUsd: net, actions: actions)
        // Ranked by average price; at the same price, by cost impact (energy cost), so ties are not
        // broken by the order of the hours.
        func above(_ a: HourNote, _ b: HourNote) -> Bool {
            a.averagePriceUsdPerMWh != b.averagePriceUsdPerMWh ? a.averagePriceUsdPerMWh > b.averagePriceUsdPerMWh : a.energyCostUsd > b.energyCostUsd
        }
        if top.count < keep || above(note, top.last!) {
            let at = top.firstIndex { above(note, $0) } ?? top.count
            top.insert(note, at: at)
            if top.count > keep { top.removeLast() }
        }
    }

    mutating func finish() -> [HourNote] {
        flush()
        current = nil
        return top
    }
}
