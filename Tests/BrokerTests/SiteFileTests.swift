import Basics
import Broker
import Foundation
import Signals
import Site
import Testing
import TestSupport

/// The site file loader, the snapshot/signals files, and the mapping into a Broker problem.
@Suite("Site files")
struct SiteFileTests {
    static let examples = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples")

    static let minimal = """
        site:
          id: t
          import_limit_kw: 5000
          safety_margin_kw: 100
        tree:
          id: site
          cap_kw: 5000
          meter: m1
          children:
            - id: pdu-1
              cap_kw: 3000
        devices:
          - id: m1
            class: meter
            profile: sdm630
            address: {rtu: {device: /dev/ttyUSB0, baud: 9600, parity: E, data_bits: 8, stop_bits: 1}, unit: 3}
          - id: asic-1
            class: mining
            profile: ref-asic-container
            node: pdu-1
            address: {tcp: "127.0.0.1:15020", unit: 1}
            limits: {max_kw: 1300, min_stable_kw: 400, ramp_kw_per_s: 50, min_on_s: 300, min_off_s: 600}
            efficiency_j_per_th: 20
          - id: gpu-1
            class: inference
            node: pdu-1
            address: {tcp: "127.0.0.1:15021"}
            limits: {max_kw: 1000}
            gpus: 800
            kw_per_gpu: 1.25
          - id: cooling
            class: auxiliary
            node: site
            fraction_of_it: 0.05
        economics:
          hashprice_usd_per_ph_day: 50
          strike: {price_usd_per_mwh: 150, hysteresis_usd_per_mwh: 20, min_off_s: 900}
          inference_spot: {usd_per_gpu_hour: 0.2}
        contracts:
          - id: acme
            devices: [gpu-1]
            committed_kw: 600
            rate_usd_per_mwh: 200
            penalty_usd_per_mwh: 300
            daily: {from: "14:00", to: "22:00"}
        """

    @Test func parsesAMinimalSite() throws {
        let s = try Site.parse(yaml: Self.minimal, file: "t.yaml")
        #expect(s.id == "t" && s.importLimitKw == 5000 && s.safetyMarginKw == 100 && s.tickSeconds == 10)
        #expect(s.nodes.map(\.id) == ["site", "pdu-1"])
        #expect(s.nodes[1].parentID == "site" && s.nodes[0].meter == "m1")
        #expect(s.device("m1")?.address == .rtu(device: "/dev/ttyUSB0", baud: 9600, parity: .even, dataBits: 8, stopBits: 1, unit: 3))
        #expect(s.device("gpu-1")?.address == .tcp(host: "127.0.0.1", port: 15021, unit: 1))
        #expect(s.device("asic-1")?.limits == DeviceLimits(maxKw: 1300, minStableKw: 400, rampKwPerS: 50, minOnS: 300, minOffS: 600))
        #expect(s.economics.strike == StrikeConfig(priceUsdPerMWh: 150, hysteresisUsdPerMWh: 20, minOffS: 900))
        #expect(s.contracts[0].weekly == [WeeklyWindow(days: Set(1...7), from: 14 * 3600, until: 22 * 3600)] && s.contracts[0].windows.isEmpty
                && s.contracts[0].timeZone == TimeZone(identifier: "UTC"))
        let plant = try s.plant()
        #expect(plant.devices.map(\.id) == ["asic-1", "gpu-1"])
        #expect(plant.nodes[0].auxFraction == 0.05)
    }

    /// (YAML with one defect, expected line, expected column, words the message must contain)
    static let badCases: [(String, Int, Int, String)] = [
        (minimal.replacingOccurrences(of: "  safety_margin_kw: 100", with: "  safety_margin_kw: 100\n  colour: red"), 5, 3,
         "unknown key 'colour' in 'site'"),
        (minimal.replacingOccurrences(of: "cap_kw: 3000", with: "cap_kw: lots"), 11, 15, "cap_kw of node 'pdu-1' should be a number"),
        (minimal.replacingOccurrences(of: "class: mining", with: "class: bitcoin"), 18, 12, "has class 'bitcoin'"),
        (minimal.replacingOccurrences(of: "node: pdu-1\n    address: {tcp: \"127.0.0.1:15020\"", with: "node: pdu-9\n    address: {tcp: \"127.0.0.1:15020\""),
         17, 5, "names node 'pdu-9', which is not in the tree"),
        (minimal.replacingOccurrences(of: "min_stable_kw: 400,", with: "min_stable_kw: 1400,"), 22, 43,
         "min_stable_kw (1400.0) of device 'asic-1' is more than max_kw (1300.0)"),
        (minimal.replacingOccurrences(of: "127.0.0.1:15021", with: "127.0.0.1"), 27, 20, "should look like host:port"),
        (minimal.replacingOccurrences(of: "meter: m1", with: "meter: asic-1"), 8, 10, "a node's meter must have class meter"),
        (minimal.replacingOccurrences(of: "devices: [gpu-1]", with: "devices: [gpu-7]"), 41, 15,
         "contract 'acme' names device 'gpu-7'"),
        (minimal.replacingOccurrences(of: "    efficiency_j_per_th: 20\n", with: ""), 17, 5, "needs efficiency_j_per_th"),
        (minimal.replacingOccurrences(of: "  - id: gpu-1", with: "  - id: asic-1"), 24, 5, "device id 'asic-1' is used twice"),
        (minimal.replacingOccurrences(of: "parity: E", with: "parity: X"), 16, 63, "parity of device 'm1' must be N, E or O"),
        (minimal.replacingOccurrences(of: "    limits: {max_kw: 1000}\n", with: ""), 24, 5, "is missing 'limits'"),
        ("site: [unclosed\n", 2, 1, "not valid YAML"),
    ]

    @Test("bad site files name file:line:column and what is wrong", arguments: badCases.indices)
    func badInput(_ i: Int) {
        let (yaml, line, column, words) = Self.badCases[i]
        do {
            _ = try Site.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("case \(i): no error")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect((error.line, error.column) == (line, column), "case \(i): \(error)")
            #expect(error.message.contains(words), "case \(i): \(error)")
            #expect(error.description.hasPrefix("bad.yaml:\(line):\(column): "))
        }
    }

    @Test func unreadableFileSaysSo() {
        #expect(throws: LocatedError.self) { try Site.load(path: "/nonexistent/site.yaml") }
        do { _ = try Site.load(path: "/nonexistent/site.yaml") } catch {
            #expect(error.description == "/nonexistent/site.yaml:1:1: cannot read the site file (No such file or directory)" || error.description.contains("no such file"))
        }
    }

    @Test func snapshotErrorsHavePositions() throws {
        let site = try Site.parse(yaml: Self.minimal, file: "t.yaml")
        let text = """
            {
              "at": "2026-07-15T15:00:00Z",
              "devices": {
                "asic-1": {"measured_kw": 900, "setpoint_kw": 900, "on_for_s": 100},
                "asic-9": {"setpoint_kw": 0}
              },
              "signals": {"energy_prices": [{"at": "2026-07-15T14:00:00Z", "usd_per_mwh": 30}]}
            }
            """
        let snap = try SiteSnapshot.parse(text: text, file: "s.json")
        do {
            _ = try SiteDispatch.problem(site: site, snapshot: snap)
            Issue.record("no error")
        } catch {
            #expect(error.description == "s.json:5:5: device 'asic-9' is not in the site file t.yaml")
        }
        do {
            _ = try SiteSnapshot.parse(text: "{\"at\": \"noon\"}", file: "s.json")
            Issue.record("no error")
        } catch {
            #expect(error.line == 1 && error.column == 8 && error.message.contains("ISO 8601"))
        }
        do {
            _ = try SiteSnapshot.parse(text: "{\"devices\": {\"asic-1\": {\"setpoint\": 5}}}", file: "s.json")
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("unknown key 'setpoint'"))
            #expect(error.line == 1 && error.column == 25)
        }
    }

    @Test func mapsSiteSnapshotAndSignalsAtAnInstant() throws {
        let site = try Site.parse(yaml: Self.minimal, file: "t.yaml")
        let text = """
            {
              "at": "2026-07-15T15:00:00Z",
              "devices": {
                "asic-1": {"measured_kw": 900, "setpoint_kw": 900, "on_for_s": 100, "age_s": 3},
                "gpu-1": {"measured_kw": 500, "setpoint_kw": 500, "on": true},
                "m1": {"measured_kw": 1600}
              },
              "uncontrolled_kw": {"pdu-1": 20},
              "signals": {
                "energy_prices": [{"at": "2026-07-15T14:00:00Z", "usd_per_mwh": 30},
                                  {"at": "2026-07-15T15:30:00Z", "usd_per_mwh": 90}],
                "dr_events": [{"id": "e1", "start": "2026-07-15T14:30:00Z", "end": "2026-07-15T16:00:00Z", "import_cap_kw": 1200},
                              {"id": "e2", "start": "2026-07-15T16:00:00Z", "end": "2026-07-15T17:00:00Z", "import_cap_kw": 10}],
                "peak_windows": [{"id": "4cp", "start": "2026-07-15T14:00:00Z", "end": "2026-07-15T18:00:00Z", "adder_usd_per_mwh": 15}]
              }
            }
            """
        let snap = try SiteSnapshot.parse(text: text, file: "s.json")
        let p = try SiteDispatch.problem(site: site, snapshot: snap)
        #expect(p.signals.energyPriceUsdPerMWh == 30)
        #expect(p.signals.priceForecast.count == 1 && p.signals.priceForecast[0].offsetS == 1800)
        #expect(p.signals.importCaps == [ImportCap(label: "DR event e1", capKw: 1200)])
        #expect(p.signals.priceAdders == [PriceAdder(label: "peak window 4cp", usdPerMWh: 15)])
        #expect(p.signals.commitments == [
            Commitment(contractID: "acme", deviceID: "gpu-1", committedKw: 600, rateUsdPerMWh: 200, penaltyUsdPerMWh: 300)
        ])
        #expect(p.signals.strike == StrikePolicy(strikeUsdPerMWh: 150, hysteresisUsdPerMWh: 20, minOffS: 900))
        #expect(p.snapshot.devices[0].isOn && p.snapshot.devices[0].stateForS == 100 && p.snapshot.devices[0].dataAgeS == 3)
        #expect(p.snapshot.nodeMeasuredKw[0] == 1600)  // from the root's meter device
        #expect(p.snapshot.uncontrolledKw[1] == 20)
        // At 22:30 the contract window (14:00-22:00) and DR event e1 are over; the later price applies.
        let later = try SiteDispatch.problem(site: site, snapshot: snap, at: ISO8601.parse("2026-07-15T22:30:00Z"))
        #expect(later.signals.energyPriceUsdPerMWh == 90)
        #expect(later.signals.importCaps.isEmpty && later.signals.commitments.isEmpty)
        // Missing devices are held at worst case.
        let bare = try SiteSnapshot.parse(text: "{\"at\": \"2026-07-15T15:00:00Z\", \"signals\": {\"energy_prices\": [{\"at\": \"2026-07-15T00:00:00Z\", \"usd_per_mwh\": 1}]}}")
        let pb = try SiteDispatch.problem(site: site, snapshot: bare)
        #expect(pb.snapshot.devices.allSatisfy { !$0.available })
        let bareplan = Broker.dispatch(pb)
        #expect(bareplan.setpointsKw == [1300, 1000])
        // Its max, not a draw: the reason says where the number comes from.
        #expect(bareplan.reason(0) == "not in the snapshot: budgeted at max 1300 kW; not commanded")
        #expect(bareplan.reason(1) == "not in the snapshot: budgeted at max 1000 kW; not commanded")
        // A device that is in the snapshot but does not answer keeps its last measured draw.
        let dead = try SiteSnapshot.parse(
            text: """
                {"at": "2026-07-15T15:00:00Z", "devices": {"asic-1": {"available": false, "measured_kw": 950, "setpoint_kw": 1000},
                 "gpu-1": {"measured_kw": 0, "setpoint_kw": 0}},
                 "signals": {"energy_prices": [{"at": "2026-07-15T00:00:00Z", "usd_per_mwh": 1}]}}
                """)
        let pd = try SiteDispatch.problem(site: site, snapshot: dead)
        #expect(Broker.dispatch(pd).reason(0) == "unavailable: last known draw 950 kW held in the budget; not commanded")
    }

    @Test func iso8601() {
        #expect(ISO8601.parse("1970-01-01T00:00:00Z") == 0)
        #expect(ISO8601.parse("2026-07-15T14:00:00Z") == 1_784_124_000)
        #expect(ISO8601.parse("2026-07-15T16:00:00+02:00") == 1_784_124_000)
        #expect(ISO8601.parse("2026-07-15T14:00:00.5Z") == 1_784_124_000.5)
        #expect(ISO8601.parse("2026-02-30T00:00:00Z") == nil)
        #expect(ISO8601.parse("2026-07-15T14:00:00") == nil)
        #expect(ISO8601.format(1_784_124_000) == "2026-07-15T14:00:00Z")
    }

    // MARK: the committed examples

    static func run(_ snapshot: String) throws -> (DispatchPlan, DispatchProblem) {
        let site = try Site.load(path: examples.appendingPathComponent("demo-site.yaml").path)
        let snap = try SiteSnapshot.load(path: examples.appendingPathComponent("snapshots/\(snapshot)").path)
        let p = try SiteDispatch.problem(site: site, snapshot: snap)
        return (Broker.dispatch(p), p)
    }

    static func kw(_ plan: DispatchPlan, _ p: DispatchProblem, _ id: String) -> Double {
        plan.setpointsKw[p.plant.deviceIndex(id)!]
    }

    @Test func demoSiteShape() throws {
        let site = try Site.load(path: Self.examples.appendingPathComponent("demo-site.yaml").path)
        #expect(site.devices.filter { $0.deviceClass == .mining }.count == 24)
        #expect(site.devices.filter { $0.deviceClass == .inference }.count == 6)
        #expect(site.nodes.count == 7)
        var ports = Set<Int>()
        for d in site.devices {
            guard case .tcp(let h, let port, let unit)? = d.address else { continue }
            #expect(h == "127.0.0.1" && unit == 1 && port >= 15020)
            ports.insert(port)
        }
        #expect(ports.count == site.devices.count)
        let large = try Site.load(path: Self.examples.appendingPathComponent("large-site.yaml").path)
        #expect(large.devices.filter(\.isControllable).count == 300)
        #expect(large.nodes[0].capKw >= 90_000)
    }

    @Test func cheapHourFillsToTheCaps() throws {
        let (plan, p) = try Self.run("cheap-hour.json")
        #expect(plan.feasible)
        #expect(plan.setpointsKw.filter { $0 > 0 }.count >= 28)
        #expect(plan.binding.contains { $0.hasPrefix("xfmr-2 cap 17.5 MW − margin 0.5 MW binding") })
        let x2 = p.plant.nodeIndex("xfmr-2")!
        #expect(plan.nodeLoadKw[x2] <= 17_500 + 1e-6)
    }

    @Test func priceSpikeCurtailsMining() throws {
        let (plan, p) = try Self.run("price-spike.json")
        #expect(plan.miningCurtailed)
        for (i, d) in p.plant.devices.enumerated() where d.deviceClass == .mining {
            if d.id == "asic-05" || d.id == "asic-17" {
                #expect(plan.setpointsKw[i] == 400)  // inside minimum on time
                #expect(plan.reason(i).hasPrefix("held on at min-stable 400 kW"))
            } else {
                #expect(plan.setpointsKw[i] == 0)
                #expect(plan.reason(i) == "curtailed: price 212 ≥ strike 180 $/MWh")
            }
        }
        #expect(Self.kw(plan, p, "gpu-03") == 0)
    }

    @Test func drEventCapIsMet() throws {
        let (plan, p) = try Self.run("dr-event.json")
        #expect(plan.feasible)
        #expect(plan.nodeLoadKw[0] <= 15_000 + 1e-6)
        #expect(plan.binding.first?.hasPrefix("DR event ercot-ers-0717 import cap 15.0 MW − margin 0.5 MW binding") == true)
        #expect(Self.kw(plan, p, "gpu-01") >= 800 && Self.kw(plan, p, "gpu-02") >= 800)
    }

    @Test func contractWindowKeepsCommitment() throws {
        let (plan, p) = try Self.run("contract-window.json")
        #expect(Self.kw(plan, p, "gpu-01") == 800 && Self.kw(plan, p, "gpu-02") == 800)
        #expect(Self.kw(plan, p, "gpu-03") == 0)
        #expect(plan.objective.penalty == 0)
        #expect(plan.reason(p.plant.deviceIndex("gpu-01")!).hasPrefix("contract acme-inference"))
    }

    /// A site file's `daily` UTC window is now a contract in time zone UTC (the Signals vocabulary). Its meaning is
    /// unchanged: against the old rule (second of the UTC day within [from, to), wrapping midnight when to < from,
    /// empty when equal), at 500 random instants per window, including 00:00, 24:00 and a wrap.
    @Test(arguments: [("14:00", "22:00"), ("22:00", "06:00"), ("00:00", "24:00"), ("18:30", "24:00"), ("24:00", "03:00"),
                      ("09:00", "09:00"), ("00:00", "00:00"), ("23:59", "00:01")])
    func aUTCDailyWindowKeepsItsMeaning(from: String, to: String) throws {
        let yaml = Self.minimal.replacingOccurrences(of: "daily: {from: \"14:00\", to: \"22:00\"}", with: "daily: {from: \"\(from)\", to: \"\(to)\"}")
        let site = try Site.parse(yaml: yaml, file: "t.yaml")
        let plant = try site.plant()
        func seconds(_ s: String) -> Double { let p = s.split(separator: ":"); return Double(Int(p[0])! * 3600 + Int(p[1])! * 60) }
        let (f, u) = (seconds(from), seconds(to))
        var signals = SiteSignals()
        signals.energyPrices = [PricePoint(at: 0, usdPerMWh: 30)]
        var rng = SeededRandom(seed: 14)
        let day0 = ISO8601.parse("2026-03-06T00:00:00Z")!
        var instants = (0..<500).map { _ in day0 + rng.range(0, 5 * 86_400).rounded() }
        for d in 0..<5 { for x in [f, u, f - 1, u - 1, 0, 86_399] { instants.append(day0 + Double(d) * 86_400 + x) } }
        for t in instants {
            let x = ISO8601.secondOfDay(t)
            let old = f <= u ? (x >= f && x < u) : (x >= f || x < u)
            let sig = try SiteDispatch.resolve(site: site, plant: plant, signals: signals, at: t)
            #expect(!sig.commitments.isEmpty == old, "\(ISO8601.format(t)) in daily \(from)–\(to)")
        }
    }

}
