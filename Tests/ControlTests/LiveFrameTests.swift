import Broker
import Foundation
import HardwareProfiles
import Modbus
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// 2026-07-15T14:09:00Z: the demo signals' price spike.
private let spikeAt = 1_784_124_540.0

/// A tick report with plain values, changed by `edit`.
private func report(at t: Double = spikeAt, _ edit: (inout TickReport) -> Void = { _ in }) -> TickReport {
    var r = TickReport(at: t, fastPath: nil, siteKW: 30_000, limitKW: 40_000, miningKW: 24_000, inferenceKW: 4_500,
                       priceUsdPerMWh: 32, hashpriceUsdPerPHDay: 50, events: [], setpointsKW: [:], reasons: [:],
                       interventions: [], writes: [], mode: .normal, brokerFeasible: true, objective: Objective(),
                       nodeKW: [:], nodeLimitKW: [:])
    edit(&r)
    return r
}

/// The line of `frame` that starts with `label` (after the indent).
private func line(_ frame: String, _ label: String) -> String? {
    frame.split(separator: "\n").map(String.init).first { $0.hasPrefix("  " + label) }
}

private let demoStrike = StrikePolicy(strikeUsdPerMWh: 180, hysteresisUsdPerMWh: 25, minOffS: 900)

@Suite("Live view: the frame")
struct LiveFrameTests {
    @Test func firstFrameWaitsForTheFirstPoll() {
        let f = LiveFrame.render(report(at: spikeAt) {
            $0.siteKW = nil
            $0.miningKW = 0
            $0.inferenceKW = 0
            $0.mode = .starting
            $0.startup = StartupProgress(answered: 12, total: 38, waiting: ["site-meter", "asic-01", "asic-02", "asic-03", "asic-04"],
                                         endsAt: spikeAt + 10)
        }, site: "demo")
        #expect(line(f, "starting")
                == "  starting     waiting for first poll (12/38 devices); not yet: site-meter, asic-01, asic-02, asic-03 and 1 more", "\(f)")
        #expect(line(f, "site import") == "  site import     n/a    / cap  40.00 MW  (site meter not read yet)", "\(f)")
        #expect(line(f, "mining") == "  mining         0.00 MW  (devices read so far)", "\(f)")
        #expect(f.contains("mode: starting"))
        #expect(line(f, "binding") == "  binding      none reported yet (waiting for first poll)", "\(f)")
        #expect(!f.contains("comm"), "start-up is not comm loss: \(f)")
        // Once start-up is over the line is gone, and a device still silent is named.
        let later = LiveFrame.render(report { $0.neverAnswered = ["asic-07"] }, site: "demo")
        #expect(line(later, "starting") == nil)
        #expect(line(later, "comm loss") == "  comm loss    1 device(s) never answered since start: asic-07", "\(later)")
        #expect(line(later, "site import")?.contains("[██████████████████████████████··········] 75%") == true, "\(later)")
    }

    @Test func strikeSaysWhyAndWhenItCanEnd() {
        func frame(_ hold: StrikeHold, price: Double, since: Double, at t: Double) -> String {
            let left = max(0, since + 900 - t)
            return LiveFrame.render(report(at: t) {
                $0.strike = StrikeReport(status: StrikeStatus(hold: hold, priceUsdPerMWh: price, policy: demoStrike, minOffLeftS: left,
                                                              reason: "curtailed"),
                                         since: since, earliestEnd: t + left)
            }, site: "demo")
        }
        #expect(line(frame(.atStrike, price: 950, since: spikeAt, at: spikeAt + 15), "strike")
                == "  strike       mining off: price $950 ≥ strike $180, since 14:09:00Z; can end 14:24:00Z at the earliest "
                + "(900 s minimum off time), once the price is below $155")
        #expect(line(frame(.hysteresis, price: 170, since: spikeAt, at: spikeAt + 200), "strike")
                == "  strike       mining off (hysteresis): price $170 is below the strike $180 but not below $155 (strike − $25), "
                + "since 14:09:00Z; can end 14:24:00Z at the earliest (900 s minimum off time), once the price is below $155")
        #expect(line(frame(.minOffTime, price: 38, since: spikeAt, at: spikeAt + 240), "strike")
                == "  strike       mining off (minimum off time): price $38 is below $155, since 14:09:00Z; "
                + "ends 14:24:00Z (900 s minimum off time, 11 min left) if the price stays below $155")
        // Past the minimum off time, only the price holds it.
        #expect(line(frame(.atStrike, price: 400, since: spikeAt, at: spikeAt + 1000), "strike")
                == "  strike       mining off: price $400 ≥ strike $180, since 14:09:00Z; ends once the price is below $155 (900 s minimum off time over)")
        #expect(line(LiveFrame.render(report(), site: "demo"), "strike") == "  strike       not curtailing (price below the strike)")
    }

    @Test func dwellCountsTheHoldsAndTheirReleaseTimes() {
        let f = LiveFrame.render(report {
            $0.dwell = [
                DwellRelease(device: "asic-01", kind: .minOn, until: spikeAt - 179),
                DwellRelease(device: "asic-02", kind: .minOn, until: spikeAt - 140),
                DwellRelease(device: "gpu-01", kind: .minOn, until: spikeAt - 150),
                DwellRelease(device: "asic-03", kind: .minOff, until: spikeAt + 600),
                DwellRelease(device: "asic-04", kind: .minOff, until: spikeAt + 600),
            ]
        }, site: "demo")
        #expect(line(f, "dwell") == "  dwell        5 container(s) held: 3 on (minimum on time) released 14:06:01Z … 14:06:40Z; "
                + "2 off (minimum off time) until 14:19:00Z", "\(f)")
        #expect(line(LiveFrame.render(report(), site: "demo"), "dwell") == "  dwell        no container held by its minimum on or off time")
    }

    @Test func bindingShowsWhatBindsAndWhoSaysSo() {
        let f = LiveFrame.render(report {
            $0.binding = [
                BindingConstraint(.governor, "pdu-2b cap 8.0 MW − margin 500 kW"),
                BindingConstraint(.broker, "DR ercot-ers-demo import cap 22.0 MW − margin 500 kW binding (load 21.5 MW)"),
                BindingConstraint(.broker, "site restore rate 6.0 MW/tick binding (ramp-up 6.0 MW)"),
                BindingConstraint(.broker, "xfmr-2 cap 17.5 MW − margin 500 kW binding (load 17.0 MW)"),
            ]
        }, site: "demo")
        let lines = f.split(separator: "\n").map(String.init)
        let i = try! #require(lines.firstIndex { $0.hasPrefix("  binding") })
        #expect(Array(lines[i...(i + 3)]) == [
            "  binding      pdu-2b cap 8.0 MW − margin 500 kW  [governor]",
            "               DR ercot-ers-demo import cap 22.0 MW − margin 500 kW binding (load 21.5 MW)  [broker]",
            "               site restore rate 6.0 MW/tick binding (ramp-up 6.0 MW)  [broker]",
            "               (+1 more)",
        ])
        #expect(line(LiveFrame.render(report(), site: "demo"), "binding") == "  binding      none: every setpoint is where its value puts it")
    }

    @Test func topThreeInterventions() {
        let notes = ["site: metered 41.2 MW is over the import limit 40.0 MW: not under the cap yet",
                     "pdu-2b: predicted 8.7 MW > pdu-2b cap 8.0 MW − margin 500 kW; shed least valuable first: asic-24 1.2 MW→0 kW",
                     "restore staggered: 6.0 MW ramp-up per tick used",
                     "inference headroom: 300 kW of inference setpoints budgeted at measured draw + reserve",
                     "fast path: sheds only"]
        let f = LiveFrame.render(report { $0.interventions = notes }, site: "demo")
        #expect(f.contains("\n  governor (top 3 of 5):\n   • \(notes[0])\n   • \(notes[1])\n   • \(notes[2])\n\n"), "\(f)")
        #expect(!f.contains(notes[3]) && !f.contains(notes[4]))
        let two = LiveFrame.render(report { $0.interventions = Array(notes.prefix(2)) }, site: "demo")
        #expect(two.contains("\n  governor (2):\n   • \(notes[0])\n   • \(notes[1])\n"), "\(two)")
        #expect(!LiveFrame.render(report(), site: "demo").contains("governor ("))
    }
}

/// The demo (`make run`) in process: the demo site simulated from its fallback setpoints, the loop on the
/// demo signals, on a ManualClock, ticking each second as `serve` does. The first pass runs before the
/// first poll has finished (serve polls on its own schedule). With SWITCHYARD_CAPTURE_DIR set, the first
/// frame, a frame in the DR window and the price spike frame are written there.
@Suite("Live view: frames from the demo run")
struct LiveFrameDemoRunTests {
    @Test func demoRunFrames() async throws {
        let sitePath = packageRoot.appendingPathComponent("examples/demo-site.yaml").path
        let site = try Site.load(path: sitePath)
        let registry = ProfileRegistry(searchPaths: [packageRoot.appendingPathComponent("hardware-profiles")])
        let profiles = try loadProfiles(for: site, registry: registry)
        let spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false, start: .fallback)
        let sim = try SiteSimulator(spec: spec, seed: 1)
        var buses: [String: any RegisterBus] = [:]
        for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id)! }
        let signals = try SiteSignals.load(path: packageRoot.appendingPathComponent("examples/demo-signals.json").path)
        var options = ControlOptions(commWatchdogS: 30)
        options.serialPolling = true
        let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: try SiteSignalSource(site: site, signals: signals),
                                   options: options)
        let clock = ManualClock()
        let start = try #require(ISO8601.parse("2026-07-15T14:01:00Z"))
        let time = LoopTime(clock: clock, startingAt: start)
        let captures = ProcessInfo.processInfo.environment["SWITCHYARD_CAPTURE_DIR"]
        func capture(_ name: String, _ frame: String) throws {
            guard let captures else { return }
            try FileManager.default.createDirectory(atPath: captures, withIntermediateDirectories: true)
            try frame.write(toFile: captures + "/" + name, atomically: true, encoding: .utf8)
        }

        // The first frame: no device has answered yet.
        let first = await loop.tick(now: time.now, poll: false)
        let firstFrame = LiveFrame.render(first, site: site.id)
        try capture("first-frame.txt", firstFrame)
        #expect(first.mode == .starting)
        #expect(first.startup == StartupProgress(answered: 0, total: 38, waiting: first.startup?.waiting ?? [], endsAt: start + 10))
        #expect(line(firstFrame, "starting")?.hasPrefix("  starting     waiting for first poll (0/38 devices)") == true, "\(firstFrame)")
        #expect(!firstFrame.contains("comm") && !firstFrame.contains("infeasible"), "\(firstFrame)")
        // Nodes over their limits only because unread devices count at their maximum: one note, not an overload.
        let gaps = first.interventions.filter { $0.hasPrefix("starting: ") && $0.hasSuffix(" not checked yet: the devices not read yet are counted at their maximum until they answer") }
        #expect(gaps.count == 1 && first.brokerFeasible, "\(first.interventions)")
        // The simulator starts every container at its fallback setpoint: mining and inference draw nothing yet.
        #expect(sim.readings().miningKW == 0 && sim.readings().inferenceKW == 0)

        var drBinding: String?
        var beforeDR: Double?
        var spikeFrame: String?
        var r = first
        while r.at < spikeAt + 30 {
            sim.step(.seconds(1))
            clock.advance(by: .seconds(1))
            r = await loop.tick(now: time.now)
            #expect(r.startup == nil && r.mode != .commLoss, "at \(r.at - start) s: \(r.mode)")
            // In the DR window (14:03–14:07) the binding constraint is the DR cap, said by the broker or the governor.
            // Containers found at rest and told to wait for the restore budget were not switched off:
            // no minimum off time holds them (the only dwell a minute in is the starts' minimum on time).
            if r.at == start + 60 { #expect(!r.dwell.isEmpty && r.dwell.allSatisfy { $0.kind == .minOn }, "\(r.dwell)") }
            if r.at == start + 119 { beforeDR = r.siteKW }
            if r.at == start + 180 {
                drBinding = line(LiveFrame.render(r, site: site.id), "binding")
                try capture("dr-frame.txt", LiveFrame.render(r, site: site.id))
            }
        }
        spikeFrame = LiveFrame.render(r, site: site.id)
        try capture("price-spike-frame.txt", spikeFrame!)
        // Ramped up from rest in the two minutes before the DR cap (README: about 33 MW).
        #expect((30_000...36_000).contains(beforeDR ?? 0), "site import before the DR cap: \(beforeDR ?? -1) kW")
        #expect(drBinding?.contains("DR event ercot-ers-demo") == true, "\(drBinding ?? "no frame")")

        // The spike frame: 30 s into the $950 price, the strike holds mining off until 14:24:00Z at the earliest.
        let strike = try #require(r.strike)
        #expect(strike.status.hold == .atStrike && strike.since == spikeAt && strike.earliestEnd == spikeAt + 900)
        #expect(line(spikeFrame!, "strike")?.contains("mining off: price $950 ≥ strike $180, since 14:09:00Z; can end 14:24:00Z at the earliest") == true,
                "\(spikeFrame!)")
        #expect(r.binding.contains { $0.text.hasPrefix("strike: mining curtailed: price 950 ≥ strike 180") }, "\(r.binding)")
        // The mining containers that went off with the spike are held off by their minimum off time (600 s)
        // until 14:19:00Z; any turned off earlier (in the DR window) are released sooner.
        let off = r.dwell.filter { $0.kind == .minOff }
        #expect(off.contains { $0.until == spikeAt + 600 }, "\(r.dwell)")
        #expect(off.allSatisfy { $0.until <= spikeAt + 600 && $0.until > r.at && $0.device.hasPrefix("asic-") }, "\(r.dwell)")
        #expect(line(spikeFrame!, "dwell")?.contains("\(off.count) off (minimum off time)") == true, "\(spikeFrame!)")
        #expect(line(spikeFrame!, "dwell")?.contains("14:19:00Z") == true, "\(spikeFrame!)")
        // README's example lines ("Thirty seconds into the demo's price spike") are lines of this frame.
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let parts = readme.components(separatedBy: "Thirty seconds into the demo's price spike:\n\n```\n")
        try #require(parts.count == 2, "README has no spike example")
        let example = parts[1].components(separatedBy: "\n```")[0].split(separator: "\n").map(String.init)
        #expect(example.count == 3)
        let frameLines = spikeFrame!.split(separator: "\n").map(String.init)
        for l in example { #expect(frameLines.contains(l), "README line not in the spike frame: \(l)\n\(spikeFrame!)") }
        #expect(sim.trips.isEmpty)
    }
}
