// The benchmark harness's Swift side. Run through Benchmarks/run.sh (make bench),
// which also runs the C and pymodbus baselines and prints the ratios.
//
//   (the Modbus polling benchmark's server and client are ModbusPollBench, Benchmarks/Sources/ModbusPollBench)
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

import Basics
import Foundation
import Modbus

#if canImport(Glibc)
import Glibc
#endif

func cpuSeconds() -> Double { ProcessCPU.ownSeconds() }

let args = CommandLine.arguments
do {
    switch args.count > 1 ? args[1] : "" {
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
        FileHandle.standardError.write(Data("usage: SwitchyardBench broker | broker-300 | broker-sweep | sim-day | fast-path | steady | replay PRICES [SITE] | fleet-uplink [SITE] | fleet-ticks [SITE [RUNS [TICKS [PERIOD_MS]]]] | hub-store [SAMPLES [BATCHES]] | hub-ingest [SECONDS [SITES [METRICS_PER_S [CLIENTS]]]] | fleet-status [REQUESTS [SITES [METRICS_PER_S]]] | fleet-command [ROUNDS [EVENT_S [GAP_S [FLEET]]]]\n".utf8))
        exit(64)
    }
} catch {
    // A bad argument or a failed run: one line, not a crash report.
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
