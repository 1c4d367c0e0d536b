import Foundation
import HardwareProfiles
import Modbus
import Safety
import Signals
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// The follow judgement on its own, on numbers: a device with first-order lag tracking its ramp is
/// following; one that does not move is not, within the ramp time plus the grace period.
@Suite("Follow judgement (pure)")
struct FollowTrackerTests {
    /// A device ramping at `ramp` kW/s toward `sp` with a first-order lag of `lag` s, judged every `tick` s.
    func run(from: Double, to sp: Double, ramp: Double, lag: Double, tick: Double, seconds: Double, stuck: Bool = false,
             model: FollowModel, settings: FollowSettings = .init()) -> (FollowTracker, [(Double, FollowTransition)]) {
        var tr = FollowTracker()
        var ref = from, p = from
        var t = 0.0
        var out: [(Double, FollowTransition)] = []
        tr.observe(measuredKW: p, demandKW: nil, at: t, model: model, settings: settings, device: "d")
        tr.wrote(sp, at: t, model: model)
        let dt = 0.1
        while t < seconds {
            for _ in 0..<Int((tick / dt).rounded()) {
                if !stuck {
                    ref += max(-ramp * dt, min(ramp * dt, sp - ref))
                    p += (ref - p) * (1 - exp(-dt / lag))
                }
                t += dt
            }
            if let x = tr.observe(measuredKW: p, demandKW: nil, at: t, model: model, settings: settings, device: "d") { out.append((t, x)) }
        }
        return (tr, out)
    }

    @Test func aLaggingDeviceThatFollowsIsNeverFlagged() {
        // Demo site: ASIC 900 kW at 50 kW/s, 1 s tick; HIL: 1000 kW at 500 kW/s. Lag 2 s (the simulator's).
        for (maxKW, ramp, tick) in [(900.0, 50.0, 1.0), (1000, 500, 1), (1000, 500, 5), (800, 100, 1)] {
            let m = FollowModel(maxKW: maxKW, rampKWPerS: ramp, ceiling: false)
            for (a, b) in [(maxKW, 0.0), (0, maxKW), (maxKW, maxKW / 2)] {
                let (tr, notes) = run(from: a, to: b, ramp: ramp, lag: 2, tick: tick, seconds: 120, model: m)
                #expect(notes.isEmpty, "\(maxKW) kW at \(ramp) kW/s, \(a)→\(b): \(notes.map(\.1.message))")
                #expect(tr.state == .following)
            }
        }
    }

    @Test func aStuckDeviceIsFlaggedWithinTheRampTimePlusGrace() throws {
        let settings = FollowSettings()
        for (maxKW, ramp) in [(900.0, 50.0), (1000, 500)] {
            let m = FollowModel(maxKW: maxKW, rampKWPerS: ramp, ceiling: false)
            let (tr, notes) = run(from: maxKW, to: 0, ramp: ramp, lag: 2, tick: 1, seconds: 120, stuck: true, model: m)
            let first = try #require(notes.first)
            #expect(first.1.state == .notFollowing)
            let bound = maxKW / ramp + settings.graceS + Double(settings.confirmPolls) + 1
            #expect(first.0 <= bound, "flagged after \(first.0) s, bound \(bound) s")
            #expect(notes.count == 1, "one sentence per change of verdict")
            #expect(first.1.message.contains("setpoint 0 kW") && first.1.message.contains("measured \(fmtKW(maxKW))"), "\(first.1.message)")
            #expect(tr.state == .notFollowing)
        }
    }

    @Test func inferenceBelowItsSetpointOnLowDemandIsFollowing() {
        let m = FollowModel(maxKW: 800, rampKWPerS: 100, ceiling: true)
        var tr = FollowTracker()
        tr.observe(measuredKW: 300, demandKW: 300, at: 0, model: m, settings: .init(), device: "gpu")
        tr.wrote(800, at: 0, model: m)
        for t in 1...60 {
            #expect(tr.observe(measuredKW: 300, demandKW: 300, at: Double(t), model: m, settings: .init(), device: "gpu") == nil)
        }
        #expect(tr.state == .following)
        // Demand rises and the container stays capped at 300: it does not follow.
        var flagged = false
        for t in 61...90 {
            if tr.observe(measuredKW: 300, demandKW: 700, at: Double(t), model: m, settings: .init(), device: "gpu")?.state == .notFollowing { flagged = true }
        }
        #expect(flagged)
    }

    @Test func theSameReadingSeenTwiceIsOneObservation() {
        // A fast-path pass between polls sees the same telemetry again: it must not count as a second poll.
        let m = FollowModel(maxKW: 1000, rampKWPerS: 500, ceiling: false)
        var tr = FollowTracker()
        tr.observe(measuredKW: 1000, demandKW: nil, at: 0, model: m, settings: .init(), device: "d")
        tr.wrote(0, at: 0, model: m)
        // Settled at 2 s (1000 kW at 500 kW/s); the allowance shrinks over the 10 s grace: 930 + 30 kW at 3 s.
        #expect(tr.observe(measuredKW: 1000, demandKW: nil, at: 2, model: m, settings: .init(), device: "d") == nil)
        #expect(tr.observe(measuredKW: 1000, demandKW: nil, at: 3, model: m, settings: .init(), device: "d") == nil)  // behind once
        #expect(tr.observe(measuredKW: 1000, demandKW: nil, at: 3, model: m, settings: .init(), device: "d") == nil)  // the same reading
        #expect(tr.state != .notFollowing)
        #expect(tr.observe(measuredKW: 1000, demandKW: nil, at: 3.5, model: m, settings: .init(), device: "d")?.state == .notFollowing)
    }

    @Test func backoffDoublesUpToTheCap() {
        let s = FollowSettings(retryFirstS: 2, retryMaxS: 60)
        var tr = FollowTracker()
        var gaps: [Double] = []
        var t = 0.0
        for _ in 0..<8 {
            tr.retried(at: t, settings: s)
            gaps.append(tr.retryAt - t)
            t = tr.retryAt
        }
        // The verdict schedules the first re-write 2 s later; after each re-write the wait doubles.
        #expect(gaps == [4, 8, 16, 32, 60, 60, 60, 60])
    }
}

/// Hardware in the loop: a container that accepts its setpoint and ignores it.
@Suite("Actuation verified by the device following", .serialized)
struct ActuationTests {
    @Test(arguments: [false, true])
    func ignoringContainerIsNotFollowingBudgetedAtItsDrawAndRetried(wire: Bool) async throws {
        let rig = try await Rig.make(wire: wire)
        var t = t0
        for _ in 0..<15 { await rig.tick(t); t += 1 }
        #expect(rig.miningSetpoints().allSatisfy { $0 > 900 })
        rig.sim.inject(.ignoreSetpoint, device: "asic-2")
        let stuckAt = rig.sim.powerKW("asic-2")
        // A DR cap that needs asic-2 shed: it accepts 0 kW (read-back verified) and keeps drawing.
        let cap = 1200.0
        let fp = await rig.loop.fastPath(now: t, reason: "DR event ers-2",
                                         event: DREvent.operatorCap(id: "ers-2", capKW: cap, from: t, until: t + 3600, reason: "test"))
        #expect(fp.writes.first { $0.device == "asic-2" }?.verified == true, "the write itself is verified by read-back")
        await rig.host?.settle()
        rig.sim.step(.seconds(1))
        t += 1
        var reports: [TickReport] = [fp]
        var flaggedAt: Double?
        var overAfterSettle = 0
        let start = t
        for _ in 0..<90 {
            let r = await rig.tick(t)
            reports.append(r)
            if flaggedAt == nil, rig.loop.actuator.followState("asic-2") == .notFollowing { flaggedAt = t }
            for id in ["asic-1", "asic-3", "gpu-1"] {
                #expect(rig.loop.actuator.followState(id) != .notFollowing, "\(id) judged not following at \(t - start) s")
            }
            // Once the verdict is in and the others had their ramp time, the site is under the cap.
            if let f = flaggedAt, t > f + 5, rig.sim.nodeLoadKW("site") > cap { overAfterSettle += 1 }
            t += 1
        }
        let f = try #require(flaggedAt, "asic-2 never judged not following")
        // 1000 kW at 500 kW/s is 2 s of ramp; the grace is 10 s; two polls confirm.
        #expect(f - start <= 2 + 10 + 3, "judged after \(f - start) s")
        #expect(abs(rig.sim.powerKW("asic-2") - stuckAt) < 30, "the fault lets it move")
        #expect(overAfterSettle == 0, "the site stayed over the \(cap) kW cap for \(overAfterSettle) s with asic-2 budgeted at its setpoint")
        let notes = reports.flatMap(\.interventions).filter { $0.contains("asic-2 not-following") }
        #expect(notes.count == 1, "\(notes)")
        #expect(notes.first?.contains("setpoint 0 kW") == true, "\(notes)")
        // Retried with backoff: re-writes of the same setpoint (not keep-alives) at growing intervals.
        let retries = reports.flatMap { r in r.writes.filter { $0.device == "asic-2" && !$0.keepAlive && $0.kw == 0 }.map { _ in r.at } }
            .filter { $0 > f }
        // Re-writes 2, 6, 14, 30 and 62 s after the verdict (waits of 2, 4, 8, 16, 32 s).
        #expect(retries.map { $0 - f } == [2, 6, 14, 30, 62], "re-writes at \(retries.map { $0 - f })")
        let gaps = zip(retries.dropFirst(), retries).map { $0 - $1 }
        #expect(gaps == gaps.sorted() && (gaps.last ?? 0) > (gaps.first ?? 0), "gaps \(gaps)")
        // The event ends while asic-2 still ignores its setpoint: it is not raised (the others are), and no
        // note blames stale data for holding it.
        #expect(rig.loop.cancelEvent("ers-2"))
        var held: [String] = []
        for _ in 0..<10 { held += await rig.tick(t).interventions; t += 1 }
        #expect(!held.contains { $0.contains("stale") }, "\(held)")
        #expect(rig.sim.setpointKW("asic-2") == 0)
        #expect(rig.sim.setpointKW("asic-1") > 0)
        // Cleared, it follows again: one sentence, and the verdict flips back.
        rig.sim.inject(nil, device: "asic-2")
        var back: [String] = []
        for _ in 0..<30 { back += await rig.tick(t).interventions.filter { $0.contains("asic-2 following again") }; t += 1 }
        #expect(back.count == 1, "\(back)")
        #expect(rig.loop.actuator.followState("asic-2") == .following)
        #expect(rig.sim.trips.isEmpty)
        await rig.stop()
    }

    /// At the demo site's real settings (1 s tick, 50 kW/s ASIC and 100 kW/s GPU ramps, 30 s stale limit),
    /// a price spike and a DR cap curtail every container and nothing is judged not following, and no
    /// meter frozen or inconsistent.
    @Test func demoSiteCurtailmentRaisesNoFalseVerdicts() async throws {
        // Containers just started must run min_on_s (300 s) first: the spike curtails from then on.
        let rig = try await DemoRig.make(prices: [(t0 - 3600, 30), (t0 + 60, 900), (t0 + 900, 30)])
        var t = t0
        var notes: [String] = []
        var curtailed = false
        for k in 0..<480 {
            if k == 420 {
                rig.loop.addEvent(DREvent.operatorCap(id: "dr-demo", capKW: 15_000, from: t, until: t + 3600, reason: "test"))
            }
            let r = await rig.loop.tick(now: t)
            rig.sim.step(.seconds(1))
            notes += r.interventions.filter { $0.contains("not-following") || $0.contains("frozen") || $0.contains("inconsistent") }
            #expect(rig.loop.actuator.notFollowing.isEmpty, "at \(k) s: \(rig.loop.actuator.notFollowing)")
            if k == 400 { curtailed = rig.sim.readings().miningKW < 100 }
            t += 1
        }
        #expect(curtailed, "the spike did not curtail mining; the test lost its point")
        #expect(notes.isEmpty, "\(notes)")
        #expect(rig.loop.meterWatch.suspect.isEmpty)
    }
}

extension ActuationTests {
    /// The same at the demo site's real settings: 1 s tick, 50 kW/s ASIC ramps, 30 s stale limit, 30 s watchdog.
    @Test func demoSiteIgnoringContainerIsJudgedWithinItsRampTime() async throws {
        let rig = try await DemoRig.make(prices: [(t0 - 3600, 30)])
        var t = t0
        for _ in 0..<60 { _ = await rig.loop.tick(now: t); rig.sim.step(.seconds(1)); t += 1 }
        // An ASIC of middling efficiency (22.5 J/TH) on a PDU that does not bind: at full power before the cap,
        // and among the first the broker sheds under it (least valuable first).
        let ignoring = "asic-12"
        let drawing = rig.sim.powerKW(ignoring)
        #expect(drawing > 1000)
        rig.sim.inject(.ignoreSetpoint, device: ignoring)
        // A DR cap of 15 MW on a ~34 MW site: most mining is shed, asic-12 with it, on paper.
        let cap = 15_000.0
        rig.loop.addEvent(DREvent.operatorCap(id: "dr-demo", capKW: cap, from: t, until: t + 3600, reason: "test"))
        let start = t
        var flaggedAt: Double?
        var notes: [String] = []
        var over = 0
        for _ in 0..<150 {
            let r = await rig.loop.tick(now: t)
            rig.sim.step(.seconds(1))
            notes += r.interventions.filter { $0.contains("not-following") }
            if flaggedAt == nil, rig.loop.actuator.followState(ignoring) == .notFollowing { flaggedAt = t }
            // Every other container sheds at 50 kW/s (1.3 MW in 26 s) once asic-12 is budgeted at its draw.
            if let f = flaggedAt, t > f + 30, rig.sim.nodeLoadKW("site") > cap { over += 1 }
            t += 1
        }
        let f = try #require(flaggedAt)
        // Ramp time 1200 kW / 50 kW/s = 24 s; the grace is 10 s; two polls confirm.
        #expect(f - start <= 24 + 10 + 3, "judged after \(f - start) s")
        #expect(notes.count == 1 && notes[0].hasPrefix("asic-12 not-following"), "\(notes)")
        #expect(rig.loop.actuator.notFollowing == [ignoring])
        #expect(over == 0, "site over the DR cap for \(over) s after the verdict")
        #expect(abs(rig.sim.powerKW(ignoring) - drawing) < 50)
        #expect(rig.sim.trips.isEmpty)
    }
}

/// The demo site (examples/demo-site.yaml) in memory, at its own settings.
struct DemoRig {
    let sim: SiteSimulator
    let loop: ControlLoop

    /// The demo site, its profiles and a simulator of it (seeded).
    static func demoSite(seed: UInt64 = 11) throws -> (site: Site, profiles: [String: DeviceProfile], spec: SimSiteSpec, sim: SiteSimulator) {
        let path = packageRoot.appendingPathComponent("examples/demo-site.yaml").path
        let site = try Site.parse(yaml: try String(contentsOfFile: path, encoding: .utf8), file: path)
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let profiles = try loadProfiles(for: site, registry: registry)
        let spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
        return (site, profiles, spec, try SiteSimulator(spec: spec, seed: seed))
    }

    static func make(prices: [(Double, Double)], options: ControlOptions = .init(commWatchdogS: 30)) async throws -> DemoRig {
        let (site, profiles, spec, sim) = try demoSite()
        var buses: [String: any RegisterBus] = [:]
        for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id)! }
        var sig = SiteSignals()
        sig.energyPrices = prices.map { PricePoint(at: $0.0, usdPerMWh: $0.1) }
        let source = try SiteSignalSource(site: site, signals: sig)
        var opts = options
        opts.serialPolling = true
        let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source, options: opts)
        return DemoRig(sim: sim, loop: loop)
    }
}
