// The Modbus polling benchmark's Swift side: a libmodbus server and our client, and nothing else.
// Benchmarks/modbus_bench.py (CPU per transaction against raw C and pymodbus) and
// Benchmarks/modbus_callgrind.py (instructions per transaction) run it.
//
//   ModbusPollBench serve SERVERS                              start SERVERS Modbus TCP servers, print "READY p1,p2,…"
//   ModbusPollBench poll DEVICES SECONDS REGISTERS PORTS [READS]  poll like the baselines, print one JSON line
//                                                              (with READS: exactly that many reads in all, for callgrind)
//
// It is its own small executable (only the Modbus target) with a synchronous main, so that valgrind 3.19 can run
// it (see `poll` below); SwitchyardBench's async main cannot be run under it.

import Basics
import Foundation
import Modbus

func cpuSeconds() -> Double { ProcessCPU.ownSeconds() }

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
    // BENCH_PLAN=k: read k requests per call with `read(plan:)`, as the poller does for a device's plan.
    let planLength = max(1, Int(ProcessInfo.processInfo.environment["BENCH_PLAN"] ?? "") ?? 1)
    let plan = Array(repeating: ReadRequest(table: .holding, address: 0, count: registers), count: planLength)
    // BENCH_INTO: read into the task's own buffer (`read(_:unit:address:into:)`), allocating nothing per request.
    let into = ProcessInfo.processInfo.environment["BENCH_INTO"] != nil
    await withTaskGroup(of: Void.self) { group in
        for (k, c) in clients.enumerated() {
            group.addTask(executorPreference: hop ? nil : c.preferredExecutor()) {
                var tx = 0, errors = 0
                var buffer = [UInt16](repeating: 0, count: registers)
                // With a read count, each device does its share of it (the C baseline's round-robin).
                let share = reads.map { $0 / devices + (k < $0 % devices ? 1 : 0) }
                // A counted run tests a plain integer (as the C baseline's loop does); a timed one reads the clock.
                let limit = share ?? Int.max
                while tx + errors < limit && (share != nil || ContinuousClock.now < deadline) {
                    if planLength > 1 {
                        // As the poller reads a device: its read plan in one call (`read(plan:)`), one request each.
                        let n = min(planLength, share.map { $0 - tx - errors } ?? planLength)
                        for r in await c.read(plan: n == planLength ? plan : Array(plan.prefix(n)), unit: 1) {
                            if case .success(let words) = r, words.count == registers { tx += 1 } else { errors += 1 }
                        }
                        continue
                    }
                    if into {
                        do {
                            try await c.read(.holding, unit: 1, address: 0, into: &buffer)
                            tx += 1
                        } catch { errors += 1 }
                        continue
                    }
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
switch args.count > 1 ? args[1] : "" {
case "serve":
    do { try serve(args.count > 2 ? Int(args[2]) ?? 2 : 2) } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        exit(1)
    }
case "poll" where args.count >= 6:
    // A synchronous main that waits on a semaphore, not top-level `await`: an async main parks the main thread
    // in libdispatch's dispatch_main (sigsuspend), and valgrind 3.19 dies there ("VALGRIND INTERNAL ERROR …
    // signal 11") as the first worker threads start.
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        await poll(devices: Int(args[2]) ?? 1, seconds: Double(args[3]) ?? 3, registers: Int(args[4]) ?? 16,
                   ports: args[5].split(separator: ",").compactMap { Int($0) }, reads: args.count > 6 ? Int(args[6]) : nil)
        done.signal()
    }
    done.wait()
default:
    FileHandle.standardError.write(Data("usage: ModbusPollBench serve N | poll DEVICES SECONDS REGISTERS PORTS [READS]\n".utf8))
    exit(64)
}
