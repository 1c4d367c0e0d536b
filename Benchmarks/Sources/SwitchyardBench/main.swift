// The benchmark harness's Swift side. Run through Benchmarks/run.sh (make bench),
// which also runs the C and pymodbus baselines and prints the ratios.
//
//   SwitchyardBench serve SERVERS            start SERVERS Modbus TCP servers, print "READY p1,p2,…"
//   SwitchyardBench poll DEVICES SECONDS REGISTERS PORTS [READS]  poll like the baselines, print one JSON line
//                                            (with READS: exactly that many reads in all, for callgrind)
//   SwitchyardBench broker [ARGS]            the broker dispatch benchmark (10,000 devices)
//   SwitchyardBench broker-300 [ARGS]        the exact search's time at 300 devices, and the MILP's
//   SwitchyardBench broker-sweep [ARGS]      the broker against the exact MILP, 2,000 sites per size class
//   SwitchyardBench sim-day [SITE]           one simulated day at 1 s steps
//   SwitchyardBench fast-path [SITE [N]]     DR event → all containers written over loopback
//   SwitchyardBench steady [N [SECONDS]]     the 1 Hz loop over N containers behind gateways
//   SwitchyardBench replay PRICES [SITE]     a backtest (controller + 3 baselines), timed
//   SwitchyardBench fleet-uplink [SITE]      bytes/s the Sparkplug edge node publishes, steady and in a price spike
//   SwitchyardBench fleet-ticks [SITE [RUNS [TICKS [PERIOD_MS]]]]  tick p50/p99 without / with the edge node / broker hung
//   SwitchyardBench hub-store [SAMPLES [BATCHES]]  the hub's PostgreSQL store: insert samples/s by batch size, disk per site-day
//   SwitchyardBench hub-ingest [SECONDS [SITES [METRICS_PER_S [CLIENTS]]]]  Sparkplug publishers → host → store: lag, CPU, disk
//   SwitchyardBench fleet-status [REQUESTS [SITES [METRICS_PER_S]]]  GET /v1/fleet/status p50/p99 for 100 sites
//   SwitchyardBench fleet-command [ROUNDS [EVENT_S [GAP_S [FLEET]]]]  fleet shed → every site's acknowledgement, and metered compliance

import Foundation
import Modbus

#if canImport(Glibc)
import Glibc
#endif

func cpuSeconds() -> Double {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6 + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
}

func serve(_ count: Int) throws -> Never {
    var servers: [ModbusTCPServer] = []
    for _ in 0..<count {
        let s = ModbusTCPServer(units: [1: ServerUnitLayout(holding: 0..<125)])
        s.set(unit: 1, .holding, address: 0, (0..<125).map { UInt16($0) })
        try s.start()
        servers.append(s)
    }
    // Unbuffered, so the orchestrator sees it while we keep running.
    FileHandle.standardOutput.write(Data(("READY " + servers.map { String($0.port) }.joined(separator: ",") + "\n").utf8))
    while true { sleep(3600) }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var tx = 0, errors = 0
    func add(_ t: Int, _ e: Int) { lock.lock(); tx += t; errors += e; lock.unlock() }
}

func poll(devices: Int, seconds: Double, registers: Int, ports: [Int], reads: Int? = nil) async {
    let clients = (0..<devices).map { i in
        ModbusClient(endpoint: .tcp(host: "127.0.0.1", port: ports[i % ports.count]), options: .init(responseTimeout: .seconds(2)))
    }
    // Connect first, outside the timed window, as the baselines do.
    for c in clients { _ = try? await c.read(.holding, unit: 1, address: 0, count: 1) }
    let counter = Counter()
    let c0 = cpuSeconds()
    let t0 = ContinuousClock.now
    let deadline = t0 + .milliseconds(Int(seconds * 1000))
    // Each device's loop on its connection's thread (as the poller does), unless BENCH_HOP is set: then every
    // request hops from the pool to the connection's thread and back (the engine before issue 15).
    let hop = ProcessInfo.processInfo.environment["BENCH_HOP"] != nil
    await withTaskGroup(of: Void.self) { group in
        for (k, c) in clients.enumerated() {
            group.addTask(executorPreference: hop ? nil : c.preferredExecutor()) {
                var tx = 0, errors = 0
                // With a read count, each device does its share of it (the C baseline's round-robin).
                let share = reads.map { $0 / devices + (k < $0 % devices ? 1 : 0) }
                while share.map({ tx + errors < $0 }) ?? (ContinuousClock.now < deadline) {
                    do {
                        let words = try await c.read(.holding, unit: 1, address: 0, count: registers)
                        if words.count == registers { tx += 1 } else { errors += 1 }
                    } catch { errors += 1 }
                }
                counter.add(tx, errors)
            }
        }
    }
    let wall = ContinuousClock.now - t0
    let cpu = cpuSeconds() - c0
    let w = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
    print("{\"client\":\"swift-switchyard\",\"devices\":\(devices),\"tx\":\(counter.tx),\"errors\":\(counter.errors),\"wall_s\":\(String(format: "%.3f", w)),\"cpu_s\":\(String(format: "%.3f", cpu))}")
    for c in clients { await c.close() }
}

let args = CommandLine.arguments
do {
    switch args.count > 1 ? args[1] : "" {
    case "serve":
        try serve(args.count > 2 ? Int(args[2]) ?? 2 : 2)
    case "poll" where args.count >= 6:
        await poll(devices: Int(args[2]) ?? 1, seconds: Double(args[3]) ?? 3, registers: Int(args[4]) ?? 16,
                   ports: args[5].split(separator: ",").compactMap { Int($0) }, reads: args.count > 6 ? Int(args[6]) : nil)
    case "broker":
        try runBrokerBenchmark(arguments: Array(args.dropFirst(2)))
    case "broker-300":
        try runBrokerExactTiming(arguments: Array(args.dropFirst(2)))
    case "broker-sweep":
        try runBrokerSweep(arguments: Array(args.dropFirst(2)))
    case "sim-day":
        try runSimDayBenchmark(arguments: Array(args.dropFirst(2)))
    case "fast-path":
        try await runFastPathBenchmark(arguments: Array(args.dropFirst(2)))
    case "sim-serve":
        try await runSimServe(arguments: Array(args.dropFirst(2)))
    case "replay":
        try await runReplayBenchmark(arguments: Array(args.dropFirst(2)))
    case "steady":
        try await runSteadyBenchmark(arguments: Array(args.dropFirst(2)))
    case "fleet-uplink":
        try await runFleetUplinkBenchmark(arguments: Array(args.dropFirst(2)))
    case "fleet-ticks":
        try await runFleetTicksBenchmark(arguments: Array(args.dropFirst(2)))
    case "hub-store":
        try await runHubStoreBenchmark(arguments: Array(args.dropFirst(2)))
    case "hub-ingest":
        try await runHubIngestBenchmark(arguments: Array(args.dropFirst(2)))
    case "fleet-status":
        try await runFleetStatusBenchmark(arguments: Array(args.dropFirst(2)))
    case "fleet-command":
        try await runFleetCommandBenchmark(arguments: Array(args.dropFirst(2)))
    case "hub-publish":
        try await runHubPublish(arguments: Array(args.dropFirst(2)))
    default:
        FileHandle.standardError.write(Data("usage: SwitchyardBench serve N | poll DEVICES SECONDS REGISTERS PORTS | broker | broker-300 | broker-sweep | sim-day | fast-path | steady | replay PRICES [SITE] | fleet-uplink [SITE] | fleet-ticks [SITE [RUNS [TICKS [PERIOD_MS]]]] | hub-store [SAMPLES [BATCHES]] | hub-ingest [SECONDS [SITES [METRICS_PER_S [CLIENTS]]]] | fleet-status [REQUESTS [SITES [METRICS_PER_S]]] | fleet-command [ROUNDS [EVENT_S [GAP_S [FLEET]]]]\n".utf8))
        exit(64)
    }
} catch {
    // A bad argument or a failed run: one line, not a crash report.
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
