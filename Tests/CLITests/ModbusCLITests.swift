import Foundation
import Testing
import TestSupport

/// `switchyard modbus read|write` run as a process against pymodbus.
@Suite("switchyard modbus CLI", .serialized)
struct ModbusCLITests {
    let exe = switchyardExecutable()

    @Test func readsFloat32InCDABFromPymodbus() async throws {
        let peer = try await PeerProcess.python("pymodbus_server.py", ["tcp"])
        defer { peer.stop() }
        // pymodbus_server.py: float32 1234.5625 in CDAB order at 1000 + 100*1 + 4*6.
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--unit", "1",
                                           "--table", "holding", "--address", "1124", "--type", "float32", "--order", "CDAB"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("[1124] 1234.5625"), "\(r.stdout)")

        let j = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--table", "input",
                                           "--address", "0x464", "--type", "float32", "--order", "CDAB", "--json"])
        #expect(j.status == 0, "\(j.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect((obj?["values"] as? [Double]) == [1234.5625])
        #expect((obj?["order"] as? String) == "CDAB")

        // Every other order of the same value, and a 64-bit int.
        for (o, order) in ["ABCD", "CDAB", "BADC", "DCBA"].enumerated() {
            let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--address", "\(1000 + 100 * o + 24)",
                                               "--type", "float32", "--order", order, "--json"])
            #expect(r.stdout.contains("\"values\":[1234.5625]"), "\(order): \(r.stdout)")
        }
        let i64 = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--address", "1320",
                                             "--type", "int64", "--order", "DCBA"])
        #expect(i64.stdout.hasPrefix("[1320] -1234567890123456789"), "\(i64.stdout)")
    }

    @Test func writeThenRead() async throws {
        let peer = try await PeerProcess.python("pymodbus_server.py", ["tcp"])
        defer { peer.stop() }
        let w = try await runCommand(exe, ["modbus", "write", "--tcp", "127.0.0.1:\(peer.port)", "--address", "20",
                                           "--type", "float32", "--order", "CDAB", "--", "-17.5", "99"])
        #expect(w.status == 0, "\(w.stderr)")
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--address", "20",
                                           "--type", "float32", "--order", "CDAB", "--count", "2", "--json"])
        #expect(r.stdout.contains("\"values\":[-17.5,99]"), "\(r.stdout)")
        let c = try await runCommand(exe, ["modbus", "write", "--tcp", "127.0.0.1:\(peer.port)", "--table", "coil", "--address", "40", "true"])
        #expect(c.status == 0, "\(c.stderr)")
        let cr = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--table", "coil", "--address", "40"])
        #expect(cr.stdout.hasPrefix("[40] 1"), "\(cr.stdout)")
    }

    @Test func modbusExceptionIsOneLineAndNonZero() async throws {
        let peer = try await PeerProcess.python("pymodbus_server.py", ["tcp"])
        defer { peer.stop() }
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:\(peer.port)", "--address", "5000", "--count", "2"])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("FC03 read holding registers @5000+2: Modbus exception 2 (ILLEGAL DATA ADDRESS)"), "\(r.stderr)")
    }

    @Test func unreachableHostExits69() async throws {
        // Port 1 on loopback: nothing listens there.
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:1", "--address", "0"])
        #expect(r.status == 69, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("connection refused"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test(arguments: [
        (["--address", "70000"], "--address"),
        (["--address", "0", "--type", "float16"], "--type"),
        (["--address", "0", "--order", "ABDC"], "--order"),
        (["--address", "0", "--count", "63", "--type", "float32"], "--count"),
        (["--address", "0", "--table", "coils"], "--table"),
        (["--address", "0", "--parity", "X"], "--parity"),
    ])
    func badArgumentsAreRejectedBeforeAnyIO(args: [String], mentions: String) async throws {
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:1"] + args)
        #expect(r.status != 0)
        #expect(r.stderr.contains(mentions), "\(r.stderr)")
        #expect(!r.stderr.contains("connection refused"))
    }

    @Test func versionPrints() async throws {
        let r = try await runCommand(exe, ["--version"])
        #expect(r.status == 0)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    }
}

/// `switchyard serve` and `sim` reject bad input before touching any device.
@Suite("serve and sim input errors")
struct ServeInputTests {
    let exe = switchyardExecutable()

    @Test func badPriceFileNamesFileAndLine() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-serve-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let csv = dir.appendingPathComponent("prices.csv").path
        // An ERCOT real-time file without its price column.
        try "\"Delivery Date\",\"Delivery Hour\",\"Delivery Interval\",\"Settlement Point Name\"\n\"08/14/2025\",\"1\",\"1\",\"HB_NORTH\"\n"
            .write(toFile: csv, atomically: true, encoding: .utf8)
        let r = try await runCommand(exe, ["serve", "--site", packageRoot.appendingPathComponent("examples/demo-site.yaml").path,
                                           "--prices", csv, "--state-dir", dir.appendingPathComponent("state").path])
        #expect(r.status == 65, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("prices.csv:1"), "\(r.stderr)")
    }

    @Test func badSiteFileNamesLineAndColumn() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-sim-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let site = dir.appendingPathComponent("site.yaml").path
        try "site: {id: x, import_limit_kw: 100, safety_margin_kw: 5, tick_s: 1}\ntree: {id: site, cap_kw: -3}\ndevices: []\n"
            .write(toFile: site, atomically: true, encoding: .utf8)
        let r = try await runCommand(exe, ["sim", "--site", site, "--duration", "1"])
        #expect(r.status == 65, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("site.yaml:2:"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// `sim` takes one site (--site) or a simulated fleet (--fleet), never both or neither; a bad fleet file names
    /// its line.
    @Test func simTakesASiteOrAFleet() async throws {
        let neither = try await runCommand(exe, ["sim", "--duration", "1"])
        #expect(neither.status == 64 && neither.stderr.contains("give --site FILE (one site) or --fleet FILE (a simulated fleet)"), "\(neither.stderr)")
        let demo = packageRoot.appendingPathComponent("examples/demo-site.yaml").path
        let both = try await runCommand(exe, ["sim", "--site", demo, "--fleet", packageRoot.appendingPathComponent("examples/fleet.yaml").path])
        #expect(both.status == 64 && both.stderr.contains("--site and --fleet cannot be given together"), "\(both.stderr)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-simfleet-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fleet = dir.appendingPathComponent("fleet.yaml").path
        try "template: \(demo)\nregions:\n  - {name: ERCOT, sites: 0}\n".write(toFile: fleet, atomically: true, encoding: .utf8)
        let bad = try await runCommand(exe, ["sim", "--fleet", fleet, "--duration", "1"])
        #expect(bad.status == 65 && bad.stderr.contains("fleet.yaml:3:26: sites should be 1–99, found 0"), "\(bad.stderr)")
    }
}

/// `serve --openadr` against the OpenADR 3 VTN stand-in and the simulated demo site: the VTN's
/// import-capacity event (12 MW from 2025-08-14T20:00Z) reaches the loop through the fast path,
/// and serve reports the curtailed load back to the VTN (POST /reports).
@Suite("serve with an OpenADR VTN", .serialized)
struct ServeOpenADRTests {
    let exe = switchyardExecutable()

    /// The simulated demo site with every container at full power (the sim otherwise starts at rest): the
    /// OpenADR tests measure baselines and curtailment on a loaded site.
    func loadedDemoSim() async throws -> (site: String, sim: PeerProcess) {
        let site = packageRoot.appendingPathComponent("examples/demo-site.yaml").path
        let sim = try await PeerProcess.start(exe, ["sim", "--site", site, "--quiet", "--start-power", "full-power"], readyPrefix: "switchyard sim:")
        return (site, sim)
    }

    @Test func vtnEventRunsTheFastPathAndCapsTheSite() async throws {
        let vtn = try await PeerProcess.python("vtn_standin.py", ["--client-id", "ven-1", "--client-secret", "pw"])
        defer { vtn.stop() }
        let (site, sim) = try await loadedDemoSim()
        defer { sim.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-adr-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("openadr.json").path
        try """
        {"vtn_url": "http://127.0.0.1:\(vtn.port)/openadr3/3.0.1", "token_url": "http://127.0.0.1:\(vtn.port)/auth/token",
         "client_id": "ven-1", "client_secret": "pw", "programs": ["ERCOT-ERS"], "poll_s": 1, "report_s": 2}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        // Bounded: `timeout` ends serve if the fast-path line never comes, and start() then throws.
        let stateDir = dir.appendingPathComponent("state").path
        let serve = try await PeerProcess.start("/usr/bin/timeout", ["60", exe, "serve", "--site", site, "--openadr", config,
                                                                      "--listen", "127.0.0.1:0",
                                                                      "--start-at", "2025-08-14T20:00:05Z", "--state-dir", stateDir],
                                                readyPrefix: "*FAST[OpenADR event")
        defer {
            serve.stop()
            // Make sure no controller outlives the test (its state dir is unique to this run).
            _ = try? Process.run(URL(fileURLWithPath: "/usr/bin/pkill"), arguments: ["-f", stateDir]).waitUntilExit()
        }
        #expect(serve.process.isRunning)
        let fast = try #require(serve.outputUntilReady.split(separator: "\n").first { $0.contains("FAST[OpenADR event") })
        #expect(fast.contains("cap  12.00 MW"), "\(fast)")
        // The fast path ran on the VTN's event; the stand-in saw our token and resource requests.
        let stats = try await runCommand("/usr/bin/env", ["python3", "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:\(vtn.port)/_test/stats').read().decode())"])
        #expect(stats.stdout.contains("token"), "\(stats.stdout)")

        // Progress reports while the event is in force: curtailed load = baseline − measured mean import.
        // The event was already in force at start, so the baseline is the import measured as serve took it on
        // (the demo site draws about 35 MW); the site then ramps down towards the 12 MW cap.
        try await waitUntil("a report with the site curtailed by 3 MW or more") {
            try await StoredReport.all(vtnPort: vtn.port).contains { $0.eventID == "evt-cap" && $0.baselineKW - $0.demandKW >= 3000 }
        }
        let reports = try await StoredReport.all(vtnPort: vtn.port).filter { $0.eventID == "evt-cap" }
        let r = try #require(reports.last)
        // Serve came up five seconds into the interval: the report covers what it measured, from then on.
        #expect(r.programID == "prog-ercot-dr" && r.intervalID == 0, "\(r)")
        #expect(r.start >= "2025-08-14T20:00:05Z" && r.start < "2025-08-14T20:00:15Z", "\(r)")
        #expect(r.name == "curtailment evt-cap#0 so far", "\(r)")
        #expect((25_000...40_000).contains(r.baselineKW), "\(r)")
        #expect(r.demandKW > 0 && r.deltaKWh < 0, "\(r)")
        // Reports cover the interval from its start up to the moment they are made: later ones are longer.
        #expect(reports.count >= 2 && reports.first!.duration != r.duration, "\(reports.map(\.duration))")
    }
}

/// A fresh directory under the system's temporary directory (the caller removes it).
func scratchDir(_ prefix: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
