// Control and simulation benchmarks:
//   sim-day     one simulated day of examples/large-site.yaml at 1 s steps (goal ≤ 10 s)
//   fast-path   DR event → every container of the large site written and read back over loopback (goal p99 ≤ 100 ms)
//   steady      the 1 Hz loop over 1,000 devices behind Modbus TCP gateways, CPU and RSS (goal ≤ 25 % of a core, ≤ 100 MB)

import Basics
import Broker
import Control
import Foundation
import HardwareProfiles
import Modbus
import Signals
import Simulation
import Site

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }


/// The numeric fields of /proc/self/status: kB for the memory ones (`VmRSS`, `RssAnon`, `RssFile`), a count for `Threads`.
func procStatus() -> [String: Double] {
    var fields: [String: Double] = [:]
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return fields }
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":")
        guard parts.count == 2, let value = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap({ Double($0) }) else { continue }
        fields[String(parts[0])] = value
    }
    return fields
}

/// Where the resident memory is: anonymous (heap, stacks) and file-backed (the binary's and libraries' pages, shared
/// with any other Swift process), from a `procStatus()` reading.
func memoryBreakdown(_ status: [String: Double]) -> String {
    func mb(_ key: String) -> Double { status[key].map { $0 / 1024 } ?? .nan }
    return String(format: "memory: RSS %.1f MB = anonymous %.1f MB (heap, stacks) + file-backed %.1f MB (the binary's and shared libraries' pages); %d threads",
                  mb("VmRSS"), mb("RssAnon"), mb("RssFile"), Int(status["Threads"] ?? 0))
}

/// glibc's own account of its heap, arena by arena (system bytes, in-use bytes), on standard error. Swift's Glibc
/// module does not export <malloc.h>; `malloc_stats` takes and returns nothing, so it can be named directly.
@_silgen_name("malloc_stats") func mallocStats()

func loadSite(_ path: String) throws -> (Site, [String: DeviceProfile]) {
    let site = try Site.load(path: path)
    let registry = ProfileRegistry(searchPaths: [URL(fileURLWithPath: "hardware-profiles")])
    return (site, try loadProfiles(for: site, registry: registry))
}

func runSimDayBenchmark(arguments: [String]) throws {
    let path = arguments.first ?? "examples/large-site.yaml"
    let (site, profiles) = try loadSite(path)
    let spec = try SimSiteSpec(site: site, profiles: profiles)
    let sim = try SiteSimulator(spec: spec, seed: 1)
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<86_400 { sim.step(.seconds(1)) }
    let wall = seconds(clock.now - start)
    let containers = spec.devices.filter { $0.role == .asicContainer || $0.role == .gpuContainer }.count
    print("sim-day: \(path): \(spec.devices.count) devices (\(containers) containers), 86,400 steps of 1 s: \(String(format: "%.2f", wall)) s wall (goal ≤ 10 s), \(String(format: "%.0f", 86_400 / wall))× real time; trips \(sim.trips.count)")
}

/// A quiet variant of a site for the fast-path benchmark: no dwell, no ramp or restore limits,
/// so every container changes on every event and the figure is the write fan-out itself.
func unconstrained(_ site: Site) -> Site {
    var s = site
    s.restoreRateKwPerTick = nil
    for i in s.devices.indices where s.devices[i].limits != nil {
        s.devices[i].limits!.minOnS = 0
        s.devices[i].limits!.minOffS = 0
        s.devices[i].limits!.rampKwPerS = 1e6
    }
    s.economics.strike = nil
    return s
}


/// Starts `sim-serve` (this binary) on a generated gateway site in a second process and waits until it serves.
func startSimProcess(site path: String, basePort: Int, perGateway: Int) throws -> Process {
    let sim = Process()
    sim.executableURL = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
    sim.arguments = ["sim-serve", path, "\(basePort)", "\(perGateway)"]
    let out = Pipe()
    sim.standardOutput = out
    try sim.run()
    var buffer = Data()
    while !String(decoding: buffer, as: UTF8.self).contains("switchyard sim:") {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { throw BenchError("simulator exited") }
        buffer.append(chunk)
    }
    return sim
}

func gatewayBuses(_ site: Site) -> ([String: any RegisterBus], [ModbusClient]) {
    var clients: [ModbusEndpoint: ModbusClient] = [:]
    var buses: [String: any RegisterBus] = [:]
    for d in site.devices {
        guard case let .tcp(host, port, unit)? = d.address else { continue }
        let e = ModbusEndpoint.tcp(host: host, port: port)
        let c = clients[e] ?? ModbusClient(endpoint: e, options: .init(responseTimeout: .milliseconds(500),
                                                                          maxInFlight: site.maxConnections(host: host, port: port)))
        clients[e] = c
        buses[d.id] = c.bus(unit: unit, deviceName: d.id)
    }
    return (buses, Array(clients.values))
}

/// The fast-path benchmark's loop time: the wall clock, as the simulated site's physics (stepped at 1 s of wall
/// time in the other process) sees it. Advancing it by a whole second per event, as this benchmark once did, ran the
/// loop ahead of the physics: after some 20 events the loop judged containers not following ("setpoint 0 kW
/// accepted 2 s ago, measured 1000 kW") and most shed events wrote 30 or 60 containers instead of 300.
func loopTime(after t: Double) -> Double { max(t + 0.001, Date().timeIntervalSince1970) }

func runFastPathBenchmark(arguments: [String]) async throws {
    let n = arguments.count > 0 ? Int(arguments[0]) ?? 300 : 300
    let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 40 : 40
    let perGateway = arguments.count > 2 ? Int(arguments[2]) ?? 10 : 10
    // max_connections of every gateway (the site file's `gateways:`), default 1.
    let connections = arguments.count > 3 ? Int(arguments[3]) ?? 1 : 1
    let basePort = 27_000
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("fastpath-\(n).yaml").path
    try writeGatewaySite(n: n, perGateway: perGateway, basePort: basePort, to: path, connections: connections)
    let sim = try startSimProcess(site: path, basePort: basePort, perGateway: perGateway)
    defer { sim.terminate(); sim.waitUntilExit() }
    let (loaded, profiles) = try loadSite(path)
    let site = unconstrained(loaded)
    let (buses, clients) = gatewayBuses(site)
    var sig = SiteSignals()
    sig.energyPrices = [PricePoint(at: 0, usdPerMWh: 30)]
    let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: try SiteSignalSource(site: site, signals: sig),
                               options: ControlOptions(commWatchdogS: 0, deadbandKW: 1))
    let clock = ContinuousClock()
    var t = Date().timeIntervalSince1970
    for _ in 0..<3 { _ = await loop.tick(now: t); t += 1 }
    let reachable = loop.plant.devices.filter { loop.poller.telemetry($0.id)?.consecutiveFailures == 0 }.count
    if reachable < loop.plant.devices.count {
        let bad = loop.plant.devices.first { loop.poller.telemetry($0.id)?.consecutiveFailures != 0 }!
        throw BenchError("only \(reachable) of \(loop.plant.devices.count) containers answer; \(bad.id): \(loop.poller.telemetry(bad.id)?.lastError?.description ?? "?")")
    }
    var shed: [Double] = [], restore: [Double] = []
    var shedWritten: [Int] = []
    var shedTiming: [PassTiming] = []
    let verbose = ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil
    var lastPoll = -Double.infinity
    // CPU spent while the shed events ran: this process (the controller) and the simulated site's.
    var shedCPU = (controller: 0.0, simulator: 0.0)
    for k in 0..<iterations {
        // Between events the poller runs as in production (not timed): once a second of wall time, the rate the
        // simulated site refreshes its registers at. The fast path acts on the latest telemetry, as it does in
        // `serve`. (Polling before every event, some 70 times a second, made the meter-health check judge the
        // site meter frozen, "unchanged for 73 polls", and the loop go to comm-loss mode with nothing to shed.)
        if t - lastPoll >= 1 { await loop.poller.poll(now: t); lastPoll = t }
        let cpuBefore = (cpuSeconds(), ProcessCPU.seconds(pid: sim.processIdentifier))
        let start = clock.now
        if k % 2 == 0 {
            let r = await loop.fastPath(now: t, reason: "DR", event: DREvent.operatorCap(id: "dr", capKW: 0, from: t, until: t + 3600, reason: "bench"))
            shed.append(seconds(clock.now - start) * 1000)
            shedCPU.controller += cpuSeconds() - cpuBefore.0
            shedCPU.simulator += ProcessCPU.seconds(pid: sim.processIdentifier) - cpuBefore.1
            shedWritten.append(r.writes.filter(\.verified).count)
            shedTiming.append(r.timing)
            if verbose {
                let errs = r.writes.compactMap(\.error)
                print(String(format: "  event %d: %.1f ms, %d written, %d errors%@", k, shed.last!, shedWritten.last!, errs.count, errs.first.map { " (first: \($0))" } ?? ""))
            }
        } else {
            _ = loop.cancelEvent("dr")
            _ = await loop.fastPath(now: t, reason: "DR end")
            restore.append(seconds(clock.now - start) * 1000)
            // A fast path never ramps up: one tick (not timed) brings the containers back, so that every
            // shed event has all of them to write (without it only the first shed wrote anything).
            t = loopTime(after: t)
            let up = await loop.tick(now: t, poll: false)
            if verbose { print(String(format: "  event %d: %.1f ms (restore), %d containers up", k, restore.last!, up.setpointsKW.values.filter { $0 > 0 }.count), up.mode, up.interventions.prefix(2), up.binding.prefix(2).map(\.text)) }
        }
        t = loopTime(after: t)
    }
    print("fast-path: \(n) containers behind \(clients.count) Modbus TCP gateways (\(perGateway) units each) in a second process on loopback;")
    print("  event received → broker + governor → every changed setpoint written and read back (one FC23 read/write transaction per container, as its profile allows)")
    print(String(format: "  shed (DR cap 0):  p50 %.1f ms  p99 %.1f ms  max %.1f ms  over %d events, %d–%d containers written each, %d of them wrote all %d (goal p99 ≤ 20 ms)",
                 percentile(shed.sorted(), 0.5), percentile(shed.sorted(), 0.99), shed.max() ?? .nan, shed.count,
                 shedWritten.min() ?? 0, shedWritten.max() ?? 0, shedWritten.filter { $0 == n }.count, n))
    let events = Double(max(1, shed.count))
    print(String(format: "  CPU per shed event (getrusage, /proc): controller %.2f ms, simulated site %.2f ms; %.2f ms in all against a %.2f ms p50 wall on 2 cores",
                 shedCPU.controller / events * 1000, shedCPU.simulator / events * 1000, (shedCPU.controller + shedCPU.simulator) / events * 1000,
                 percentile(shed.sorted(), 0.5)))
    print(String(format: "  restore (DR end): p50 %.1f ms  p99 %.1f ms  max %.1f ms  over %d events",
                 percentile(restore.sorted(), 0.5), percentile(restore.sorted(), 0.99), restore.max() ?? .nan, restore.count))
    // The shed events' latency budget, phase by phase (each phase's own p50/p99/max over the events).
    print("  shed, phase by phase (ms; max_connections \(connections), \(shedTiming.first?.write.lanes ?? 0) connections written over):")
    print("    | phase | p50 | p99 | max |")
    print("    |---|---:|---:|---:|")
    let phases: [(String, (PassTiming) -> Duration)] = [
        ("waiting for the writer (queueing before the pass)", { $0.waitForWriter }),
        ("inputs (telemetry → snapshot)", { $0.inputs }),
        ("broker", { $0.broker }),
        ("governor", { $0.governor }),
        ("writes, all devices (wall)", { $0.writes }),
        ("  busiest connection's wire time (its devices' FC23 write+read-backs, serialised)", { $0.write.busiestLaneWire }),
        ("  longest wait of a device's write task to start (queueing)", { $0.write.longestQueueWait }),
        ("  longest one device's wire time", { $0.write.longestWire }),
        ("  verification (read-back compare, summed over devices)", { $0.write.verify }),
        ("after (record, report)", { $0.after }),
    ]
    for (name, f) in phases {
        let v = shedTiming.map { seconds(f($0)) * 1000 }.sorted()
        print(String(format: "    | %@ | %.2f | %.2f | %.2f |", name, percentile(v, 0.5), percentile(v, 0.99), v.last ?? .nan))
    }
    for c in clients { await c.close() }
}

/// Writes a site of `n` containers (80 % ASIC) under site → 4 transformers → 40 PDUs, addressed
/// behind gateways of `perGateway` units each from `basePort`, in the simulator's gateway order.
func writeGatewaySite(n: Int, perGateway: Int, basePort: Int, to path: String, connections: Int = 1) throws {
    var y = "site: {id: steady-\(n), import_limit_kw: \(n * 1100), safety_margin_kw: 1000, tick_s: 1, stale_after_s: 5}\n"
    y += "tree:\n  id: site\n  cap_kw: \(n * 1100)\n  meter: site-meter\n  children:\n"
    for x in 0..<4 {
        y += "    - id: xfmr-\(x)\n      cap_kw: \(n * 300)\n      meter: xfmr-\(x)-meter\n      children:\n"
        for p in 0..<10 { y += "        - {id: pdu-\(x)-\(p), cap_kw: \(n * 30)}\n" }
    }
    var served = 0
    func address() -> String {
        let port = basePort + served / perGateway, unit = served % perGateway + 1
        served += 1
        return "{tcp: \"127.0.0.1:\(port)\", unit: \(unit)}"
    }
    y += "devices:\n"
    y += "  - {id: site-meter, class: meter, profile: janitza-umg604, address: \(address())}\n"
    for x in 0..<4 { y += "  - {id: xfmr-\(x)-meter, class: meter, profile: janitza-umg604, address: \(address())}\n" }
    for i in 0..<n {
        let pdu = "pdu-\(i % 4)-\((i / 4) % 10)"
        if i % 5 == 4 {
            y += "  - {id: gpu-\(i), class: inference, profile: reference-gpu-container, node: \(pdu), address: \(address()), limits: {max_kw: 1000, min_stable_kw: 200, ramp_kw_per_s: 100, min_on_s: 0, min_off_s: 0}, gpus: 800, kw_per_gpu: 1.25}\n"
        } else {
            y += "  - {id: asic-\(i), class: mining, profile: reference-asic-container, node: \(pdu), address: \(address()), limits: {max_kw: 1000, min_stable_kw: 300, ramp_kw_per_s: 50, min_on_s: 0, min_off_s: 0}, efficiency_j_per_th: 18}\n"
        }
    }
    y += "economics: {hashprice_usd_per_ph_day: 50, inference_spot: {usd_per_mwh: 250}}\n"
    if connections > 1 {
        y += "gateways:\n"
        for g in 0..<((served + perGateway - 1) / perGateway) {
            y += "  - {tcp: \"127.0.0.1:\(basePort + g)\", max_connections: \(connections)}\n"
        }
    }
    try y.write(toFile: path, atomically: true, encoding: .utf8)
}

func runSteadyBenchmark(arguments: [String]) async throws {
    let n = arguments.count > 0 ? Int(arguments[0]) ?? 1000 : 1000
    let duration = arguments.count > 1 ? Double(arguments[1]) ?? 30 : 30
    let basePort = 26_000
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("steady-\(n).yaml").path
    // Unit ids stop at 247, so 200 devices per gateway.
    try writeGatewaySite(n: n, perGateway: 200, basePort: basePort, to: path)
    let sim = try startSimProcess(site: path, basePort: basePort, perGateway: 200)
    defer { sim.terminate(); sim.waitUntilExit() }
    let (site, profiles) = try loadSite(path)
    let (buses, clientList) = gatewayBuses(site)
    let source = try SiteSignalSource(site: site, signals: {
        var s = SiteSignals()
        s.energyPrices = [PricePoint(at: 0, usdPerMWh: 35)]
        return s
    }())
    // Where the memory goes, stage by stage (BENCH_MEMORY_STAGES=1).
    let stages = ProcessInfo.processInfo.environment["BENCH_MEMORY_STAGES"] != nil
    if stages { print("  after loading the site and starting \(clientList.count) clients: " + memoryBreakdown(procStatus())) }
    let loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: source, options: ControlOptions(commWatchdogS: 60))
    if stages { print("  after building the control loop: " + memoryBreakdown(procStatus())) }
    let clock = ContinuousClock()
    // Warm up for 5 ticks (connections, configuration writes), then measure.
    var next = clock.now
    var t = Date().timeIntervalSince1970
    for _ in 0..<5 { _ = await loop.tick(now: t); t += 1; next = next.advanced(by: .seconds(1)); try await clock.sleep(until: next) }
    if stages {
        print("  after 5 warm-up ticks: " + memoryBreakdown(procStatus()))
        mallocStats()
    }
    let cpu0 = cpuSeconds(), wall0 = clock.now
    var tickMs: [Double] = []
    var polled = 0
    let ticks = Int(duration)
    for _ in 0..<ticks {
        let s = clock.now
        let r = await loop.tick(now: t)
        tickMs.append(seconds(clock.now - s) * 1000)
        polled += site.devices.filter { loop.poller.telemetry($0.id)?.lastSuccess == t }.count
        _ = r
        t += 1
        next = next.advanced(by: .seconds(1))
        try await clock.sleep(until: next)
    }
    let cpu = cpuSeconds() - cpu0, wall = seconds(clock.now - wall0)
    let status = procStatus()
    print("steady: \(site.devices.count) devices (\(n) containers) behind \(clientList.count) Modbus TCP gateways (simulated in a second process) on loopback, 1 Hz for \(ticks) s")
    print(String(format: "  CPU %.1f %% of one core (goal ≤ 25 %%), RSS %.1f MB (goal ≤ 100 MB), tick p50 %.1f ms p99 %.1f ms, %.1f %% of device polls fresh each tick",
                 100 * cpu / wall, (status["VmRSS"] ?? .nan) / 1024, percentile(tickMs.sorted(), 0.5), percentile(tickMs.sorted(), 0.99),
                 100 * Double(polled) / Double(ticks * site.devices.count)))
    print("  " + memoryBreakdown(status))
    for c in clientList { await c.close() }
}

/// The simulator side of the steady benchmark: serve a site behind gateways, step 1 s per second.
func runSimServe(arguments: [String]) async throws {
    guard arguments.count >= 3, let base = Int(arguments[1]), let per = Int(arguments[2]) else { throw BenchError("sim-serve SITE BASEPORT UNITS") }
    let (site, profiles) = try loadSite(arguments[0])
    let sim = try SiteSimulator(spec: try SimSiteSpec(site: site, profiles: profiles), seed: 1)
    let host = try WireHost(simulator: sim, basePort: base, gateway: true, unitsPerGateway: per)
    FileHandle.standardOutput.write(Data("switchyard sim: \(host.endpoints.count) devices\n".utf8))
    let clock = ContinuousClock()
    var next = clock.now
    while true {
        sim.step(.seconds(1))
        host.publish()
        next = next.advanced(by: .seconds(1))
        try await clock.sleep(until: next)
    }
}
