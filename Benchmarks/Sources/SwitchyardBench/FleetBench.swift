// The fleet edge node's figures (issue 17):
//   fleet-uplink [SITE]                          what the Sparkplug edge node publishes, in bytes per second, for the
//                                                demo site in steady state and during a price spike ($40 → $1500/MWh)
//   fleet-ticks [SITE [RUNS [TICKS [PERIOD_MS [FLOOD_PER_S]]]]] tick p50/p99 without the edge node, with it publishing,
//                                                with a second client flooding it with commands (FLOOD_PER_S, default 500:
//                                                valid, invalid and replayed NCMD/DCMD), and with the broker hung (SIGSTOP),
//                                                alternating, median of RUNS ratios
//
// Both run the control loop in-process on the simulator's in-memory buses (as replay does) at the site's 1 s tick
// of loop time, Debian's mosquitto on a free loopback port, and the real `EdgeNodeService` fed through its tick
// hook (`offer`). The site file is SITE with a `fleet:` section appended that points at that broker.

import API
import Control
import FleetEdge
import Foundation
import HardwareProfiles
import Logging
import Modbus
import ServiceLifecycle
import Simulation
import Site
import Sparkplug
import Store
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The demo site (or SITE) with a `fleet:` section for a broker on `port`, loaded with its profiles.
func fleetSite(_ path: String, port: Int, extra: String = "") throws -> (Site, [String: DeviceProfile]) {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let copy = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-bench-\(getpid()).yaml").path
    try (text + "\nfleet:\n  broker: {host: 127.0.0.1, port: \(port)}\n  group_id: bench\n" + extra).write(toFile: copy, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: copy) }
    return try loadSite(copy)
}

/// The control loop over the simulated site (in-memory buses, cold start) and its signals.
struct FleetBenchSite {
    let site: Site
    let sim: SiteSimulator
    let loop: ControlLoop
    let signals: SiteSignalSource

    init(site: Site, profiles: [String: DeviceProfile], prices: [PricePoint]) throws {
        var spec = try SimSiteSpec(site: site, profiles: profiles, servePortsFromSite: false)
        for i in spec.devices.indices where spec.devices[i].role == .asicContainer || spec.devices[i].role == .gpuContainer {
            spec.devices[i].initialSetpointKW = 0
            spec.devices[i].commWatchdogS = 0
        }
        sim = try SiteSimulator(spec: spec, seed: 1)
        var buses: [String: any RegisterBus] = [:]
        for d in spec.devices where d.profile != nil { buses[d.id] = SimulatedBus(simulator: sim, device: d.id) }
        var s = SiteSignals()
        s.energyPrices = prices
        signals = try SiteSignalSource(site: site, signals: s)
        var options = ControlOptions(commWatchdogS: 0)
        options.serialPolling = true
        loop = try ControlLoop(site: site, profiles: profiles, buses: buses, signals: signals, options: options)
        self.site = site
    }
}

/// Counts every message on `spBv1.0/#` as the broker delivers it to a subscriber, by the loop time of its metrics.
final class UplinkTap: Sendable {
    struct Message: Sendable {
        var kind: String
        /// Bytes of the PUBLISH packet the edge node sent: fixed header, topic, payload (QoS 0: no packet id).
        var bytes: Int
        /// The newest metric timestamp in the payload (the tick's loop time, ms), if any.
        var at: UInt64?
    }
    let client: MQTTClient
    let messages = Mutex<[Message]>([])
    let kinds: AsyncStream<String>
    let kindsIn: AsyncStream<String>.Continuation

    init(port: Int) {
        client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "fleet-bench-tap-\(getpid())"))
        (kinds, kindsIn) = AsyncStream.makeStream(of: String.self)
    }

    /// MQTT 3.1.1 PUBLISH size: 1 byte of fixed header, the remaining length (1–4 bytes), 2 bytes of topic length,
    /// the topic, a 2-byte packet id when QoS > 0, the payload.
    static func publishBytes(topic: Int, payload: Int, qos: Int) -> Int {
        let remaining = 2 + topic + (qos > 0 ? 2 : 0) + payload
        let lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4
        return 1 + lengthBytes + remaining
    }

    /// Connects, subscribes to `spBv1.0/#` and counts from then on (on a task of its own).
    func start() async throws {
        let (connected, connectedIn) = AsyncStream.makeStream(of: Void.self)
        let events = client.events
        Task.detached { [self] in
            for await e in events {
                switch e {
                case .connected: connectedIn.yield()
                case .message(let m):
                    let parts = m.topic.split(separator: "/")
                    let kind = parts.count > 2 ? String(parts[2]) : "?"
                    let payload = try? SparkplugPayload(decoding: m.payload, knownType: { _ in .double })
                    let at = payload?.metrics.compactMap(\.timestamp).max()
                    // The node publishes births and data at QoS 0 and NDEATH at QoS 1; a subscriber gets min(pub, sub),
                    // so the node's QoS is taken from the kind.
                    let qos = kind == "NDEATH" ? 1 : 0
                    self.messages.withLock { $0.append(Message(kind: kind, bytes: UplinkTap.publishBytes(topic: m.topic.utf8.count, payload: m.payload.count, qos: qos), at: at)) }
                    self.kindsIn.yield(kind)
                default: break
                }
            }
        }
        try await client.connect(will: nil)
        var c = connected.makeAsyncIterator()
        _ = await c.next()
        try await client.subscribe("spBv1.0/#", qos: 0)
    }
}

/// Calls made by the service on its own task when it takes a tick from the hand-off (its `configVersion` call):
/// the benchmark offers the next tick only once the service has taken the previous one, so no tick is replaced.
final class TakenTicks: Sendable {
    let stream: AsyncStream<Void>
    let input: AsyncStream<Void>.Continuation
    init() { (stream, input) = AsyncStream.makeStream(of: Void.self) }
}

func quietLogger() -> Logger {
    var l = Logger(label: "fleet-bench")
    l.logLevel = .error
    return l
}

func kbit(_ bytes: Int, _ seconds: Double) -> String { String(format: "%.2f", Double(bytes) * 8 / 1000 / seconds) }

func runFleetUplinkBenchmark(arguments: [String]) async throws {
    let path = arguments.first ?? "examples/demo-site.yaml"
    let broker = try await MosquittoBroker.start()
    defer { broker.stop() }
    let (site, profiles) = try fleetSite(path, port: broker.port)
    guard let fleet = site.fleet else { throw BenchError("no fleet section") }
    // Loop time: 2026-11-26 08:00 UTC (outside the demo's 14:00–22:00 inference contract window).
    let t0 = 1_795_680_000.0
    let warmUp = 600.0, steady = 1800.0, spike = 900.0, after = 900.0
    let spikeAt = t0 + warmUp + steady
    let prices = [PricePoint(at: t0 - 3600, usdPerMWh: 40), PricePoint(at: spikeAt, usdPerMWh: 1500),
                  PricePoint(at: spikeAt + spike, usdPerMWh: 40)]
    let bench = try FleetBenchSite(site: site, profiles: profiles, prices: prices)
    let tap = UplinkTap(port: broker.port)
    defer { tap.client.close() }
    try await tap.start()
    let taken = TakenTicks()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let edge = EdgeNodeService(fleet: fleet, bdSeqPath: dir.appendingPathComponent("bdseq").path, logger: quietLogger(),
                               config: { [input = taken.input] in input.yield(); return ConfigStamp(version: 1, sha256: String(repeating: "0", count: 64)) }, retryDelay: .milliseconds(50))
    let group = ServiceGroup(services: [edge], logger: quietLogger())
    var takenIt = taken.stream.makeAsyncIterator()
    var kinds = tap.kinds.makeAsyncIterator()
    let wall0 = ContinuousClock.now
    var modes: [String: Int] = [:]
    var miningMW: (steady: Double, spikeMin: Double) = (0, .infinity)
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var t = t0
        func tick() async {
            let r = await bench.loop.tick(now: t)
            edge.offer(r, loop: bench.loop)
            _ = await takenIt.next()
            if t >= t0 + warmUp { modes[r.mode.rawValue, default: 0] += 1 }
            if t >= spikeAt - 60 && t < spikeAt { miningMW.steady = r.miningKW / 1000 }
            if t >= spikeAt && t < spikeAt + spike { miningMW.spikeMin = min(miningMW.spikeMin, r.miningKW / 1000) }
            bench.sim.step(.seconds(1))
            t += 1
        }
        // The first tick starts the node; wait for its births before going on (data is only sent once born).
        await tick()
        while let k = await kinds.next(), k != "NBIRTH" {}
        while t < t0 + warmUp + steady + spike + after { await tick() }
        // The service has taken the last tick; a graceful shutdown publishes NDEATH after it (same connection, so after
        // every data message): the tap has seen everything when it sees the NDEATH.
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        while let k = await kinds.next(), k != "NDEATH" {}
    }
    let wall = seconds(ContinuousClock.now - wall0)
    let all = tap.messages.withLock { $0 }
    func window(_ from: Double, _ to: Double) -> (bytes: Int, messages: Int) {
        let ms = all.filter { m in
            guard m.kind == "NDATA" || m.kind == "DDATA", let at = m.at else { return false }
            return Double(at) / 1000 >= from && Double(at) / 1000 < to
        }
        return (ms.reduce(0) { $0 + $1.bytes }, ms.count)
    }
    let births = all.filter { $0.kind == "NBIRTH" || $0.kind == "DBIRTH" }
    let s = window(t0 + warmUp, spikeAt), p = window(spikeAt, spikeAt + spike), a = window(spikeAt + spike, spikeAt + spike + after)
    let w = window(t0 + warmUp, spikeAt + spike + after), ramp = window(t0, t0 + warmUp)
    print("fleet-uplink: \(path) with a fleet section, \(bench.loop.plant.devices.count) plant devices, loop on the simulator's in-memory buses at 1 s of loop time, mosquitto on loopback")
    print("  bytes = MQTT PUBLISH packets the node sent (fixed header + remaining length + topic length + topic + payload), counted by a subscriber to spBv1.0/#; TCP/IP headers and PINGREQs not counted")
    let data = all.filter { $0.kind == "NDATA" || $0.kind == "DDATA" }
    print("  data messages: \(data.count), of which without a metric timestamp (not in any window): \(data.filter { $0.at == nil }.count)")
    print("  births (once per session): \(births.count) messages, \(births.reduce(0) { $0 + $1.bytes }) bytes")
    print("  ramp from cold start (first \(Int(warmUp)) s, not in the averages): \(ramp.messages) data messages, \(kbit(ramp.bytes, warmUp)) kbit/s")
    print("  steady $40/MWh, \(Int(steady)) s: \(s.messages) messages, \(String(format: "%.0f", Double(s.bytes) / steady)) B/s = \(kbit(s.bytes, steady)) kbit/s")
    print("  spike $1500/MWh, \(Int(spike)) s: \(p.messages) messages, \(String(format: "%.0f", Double(p.bytes) / spike)) B/s = \(kbit(p.bytes, spike)) kbit/s")
    print("  after the spike $40/MWh, \(Int(after)) s: \(a.messages) messages, \(String(format: "%.0f", Double(a.bytes) / after)) B/s = \(kbit(a.bytes, after)) kbit/s")
    print("  steady + spike + after, \(Int(steady + spike + after)) s: \(kbit(w.bytes, steady + spike + after)) kbit/s average (goal ≤ 50 kbit/s)")
    print(String(format: "  mining %.1f MW before the spike, %.1f MW lowest during it; governor modes %@; %.1f s wall", miningMW.steady, miningMW.spikeMin,
                 modes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "), wall))
}

/// What the tick loop and the flood share: the loop time, whether the flood is on, and what the node's command queue did.
final class FloodShared: Sendable {
    let loopTime: Mutex<Double>
    let flooding = Mutex(false)
    let counts = Mutex((handled: 0, accepted: 0, dropped: 0, fastPaths: 0, deferred: 0))
    init(t0: Double) { loopTime = Mutex(t0) }
}

/// The site for the fleet command flood: the API's runtime over the bench's loop (no config swaps).
struct BenchRuntime: SiteRuntime {
    let loop: ControlLoop
    let clock: @Sendable () -> Double
    func now() -> Double { clock() }
    func validate(yaml: String, file: String) throws -> Site { throw BenchError("no config apply in the benchmark") }
    func apply(_ site: Site, version: Int) async throws { throw BenchError("no config apply in the benchmark") }
}

/// A second MQTT client publishing fleet commands at `perSecond` (in bursts every 20 ms): in turn a valid DR event
/// (in force now, 5 s, a cap far above the site's), a valid DCMD `auto`, an unknown metric, a replayed id.
final class CommandFlood: Sendable {
    let client: MQTTClient
    let sent = Mutex(0)
    init(port: Int) {
        client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "fleet-bench-flood-\(getpid())"))
    }

    func run(edge: String, device: String, perSecond: Int, loopTimeMS: @escaping @Sendable () -> UInt64, on: @escaping @Sendable () -> Bool) async throws {
        let (connected, connectedIn) = AsyncStream.makeStream(of: Void.self)
        let events = client.events
        Task.detached { for await e in events { if case .connected = e { connectedIn.yield() } } }
        try await client.connect(will: nil)
        var c = connected.makeAsyncIterator()
        _ = await c.next()
        let clock = ContinuousClock()
        var next = clock.now
        var n = 0
        let perBurst = max(1, perSecond / 50)
        while !Task.isCancelled {
            next = next.advanced(by: .milliseconds(20))
            try await clock.sleep(until: next)
            guard on() else { continue }
            let at = loopTimeMS()
            for _ in 0..<perBurst {
                n += 1
                func envelope(_ id: String) -> [SparkplugMetric] {
                    [SparkplugMetric(name: FleetCommandName.id, value: .string(id)),
                     SparkplugMetric(name: FleetCommandName.timestamp, value: .dateTime(millisecondsSinceEpoch: at)),
                     SparkplugMetric(name: FleetCommandName.clientID, value: .string("bench-op"))]
                }
                let (topic, metrics): (String, [SparkplugMetric])
                switch n % 4 {
                case 0:
                    (topic, metrics) = ("spBv1.0/bench/NCMD/\(edge)", envelope("flood-\(n)") + [
                        SparkplugMetric(name: FleetCommandName.eventID, value: .string("flood-\(n)")),
                        SparkplugMetric(name: FleetCommandName.eventCapKW, value: .double(1_000_000)),
                        SparkplugMetric(name: FleetCommandName.eventDurationS, value: .int64(5)),
                        SparkplugMetric(name: FleetCommandName.eventReason, value: .string("flood"))])
                case 1:
                    (topic, metrics) = ("spBv1.0/bench/DCMD/\(edge)/\(device)", envelope("flood-\(n)") + [
                        SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
                case 2:
                    (topic, metrics) = ("spBv1.0/bench/NCMD/\(edge)", envelope("flood-\(n)") + [SparkplugMetric(name: "Bogus", value: .double(1))])
                default:
                    (topic, metrics) = ("spBv1.0/bench/DCMD/\(edge)/\(device)", envelope("flood-\(n - 2)") + [
                        SparkplugMetric(name: FleetCommandName.mode, value: .string("auto"))])
                }
                _ = try? await client.publish(topic: topic, payload: SparkplugPayload(timestamp: at, seq: nil, metrics: metrics).encoded(), qos: 0)
                sent.withLock { $0 += 1 }
            }
        }
    }
}

func runFleetTicksBenchmark(arguments: [String]) async throws {
    let path = arguments.first ?? "examples/demo-site.yaml"
    let runs = arguments.count > 1 ? Int(arguments[1]) ?? 5 : 5
    let n = arguments.count > 2 ? Int(arguments[2]) ?? 200 : 200
    let periodMS = arguments.count > 3 ? Int(arguments[3]) ?? 50 : 50
    let floodPerS = arguments.count > 4 ? Int(arguments[4]) ?? 500 : 500
    let broker = try await MosquittoBroker.start()
    defer { broker.stop() }
    let (site, profiles) = try fleetSite(path, port: broker.port, extra: "  roles: {bench-op: operator}\n")
    guard let fleet = site.fleet else { throw BenchError("no fleet section") }
    let t0 = 1_795_680_000.0
    // Prices that move every 5 minutes ($30–$200), so the site curtails and restores and the node has data to send.
    var prices: [PricePoint] = []
    for k in 0..<400 {
        let usd: Double = k % 4 == 3 ? 200 : 30 + 20 * Double(k % 4)
        prices.append(PricePoint(at: t0 + 300 * Double(k), usdPerMWh: usd))
    }
    let bench = try FleetBenchSite(site: site, profiles: profiles, prices: prices)
    let tap = UplinkTap(port: broker.port)
    defer { tap.client.close() }
    try await tap.start()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // Fleet commands as the daemon runs them: the API's rules, a store for the audit and event logs, the replay record.
    let shared = FloodShared(t0: t0)
    let store = try Store.open(directory: dir.appendingPathComponent("store").path)
    let replay = CommandReplayStore(path: dir.appendingPathComponent("fleet-command-ids").path, loadedAtS: t0)
    let processor = FleetCommandProcessor(deps: FleetCommandDependencies(runtime: BenchRuntime(loop: bench.loop, clock: { shared.loopTime.withLock { $0 } }), store: store),
                                          fleet: fleet, replay: replay, logger: quietLogger())
    let period = Duration.milliseconds(periodMS)
    var node = EdgeNodeService(fleet: fleet, bdSeqPath: dir.appendingPathComponent("bdseq").path, logger: quietLogger(),
                               config: { ConfigStamp(version: 1, sha256: String(repeating: "0", count: 64)) }, retryDelay: .milliseconds(50), commands: processor,
                               pacing: .clock(ContinuousClock(), period: period, phase: period / 4))
    node.commandQueue = CommandQueueOptions(observe: { e in
        shared.counts.withLock { c in
            switch e {
            case .dropped(let k, _): c.dropped += k
            case .handled(_, let ok, _): c.handled += 1; if ok { c.accepted += 1 }
            case .fastPath(let ran, _): if ran { c.fastPaths += 1 } else { c.deferred += 1 }
            case .waitingForTick: break
            }
        }
    })
    let edge = node
    let group = ServiceGroup(services: [edge], logger: quietLogger())
    var kinds = tap.kinds.makeAsyncIterator()
    enum Mode: String {
        case without = "without the edge node", with = "with the edge node publishing", flood = "with the node and a command flood"
        case hung = "with the broker hung (SIGSTOP)"
    }
    var results: [Mode: [(p50: Double, p99: Double)]] = [:]
    let clock = ContinuousClock()
    var hookUS: [Double] = []
    let flood = CommandFlood(port: broker.port)
    defer { flood.client.close() }
    let device = bench.loop.plant.devices.first!.id
    var floodSent = 0, floodHandled = 0, floodAccepted = 0, floodDropped = 0, floodFast = 0, floodDeferred = 0
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        tasks.addTask {
            try await flood.run(edge: fleet.edgeNodeID, device: device, perSecond: floodPerS,
                                loopTimeMS: { UInt64(shared.loopTime.withLock { $0 } * 1000) }, on: { shared.flooding.withLock { $0 } })
        }
        var t = t0
        var next = clock.now
        // One tick of loop time per period of real time; returns the tick's duration in ms (tick + the hook).
        func tick(_ offer: Bool) async throws -> Double {
            shared.loopTime.withLock { $0 = t }
            let start = clock.now
            let r = await bench.loop.tick(now: t)
            if offer {
                let h = clock.now
                edge.offer(r, loop: bench.loop)
                hookUS.append(seconds(clock.now - h) * 1e6)
            }
            let d = seconds(clock.now - start) * 1000
            bench.sim.step(.seconds(1))
            t += 1
            next = next.advanced(by: period)
            try await clock.sleep(until: next)
            return d
        }
        _ = try await tick(true)
        while let k = await kinds.next(), k != "NBIRTH" {}
        // Keep the ticks on the schedule the node's clock anchored on (its first tick): skip whole periods.
        while next < clock.now { next = next.advanced(by: period) }
        for _ in 0..<100 { _ = try await tick(true) }  // warm-up: caches, the first ramp
        for run in 0..<runs {
            // Alternate the order between runs; the hung block last (the broker is continued after it).
            let order: [Mode] = run % 2 == 0 ? [.without, .with, .flood, .hung] : [.flood, .with, .without, .hung]
            for mode in order {
                if mode == .hung { kill(broker.process.processIdentifier, SIGSTOP) }
                if mode == .flood {
                    shared.counts.withLock { $0 = (0, 0, 0, 0, 0) }
                    let before = flood.sent.withLock { $0 }
                    shared.flooding.withLock { $0 = true }
                    floodSent -= before
                }
                var ds: [Double] = []
                for _ in 0..<n { ds.append(try await tick(mode != .without)) }
                if mode == .flood {
                    shared.flooding.withLock { $0 = false }
                    for _ in 0..<20 { _ = try await tick(true) }  // not measured: the queue drains
                    floodSent += flood.sent.withLock { $0 }
                    let c = shared.counts.withLock { $0 }
                    floodHandled += c.handled; floodAccepted += c.accepted; floodDropped += c.dropped
                    floodFast += c.fastPaths; floodDeferred += c.deferred
                }
                if mode == .hung {
                    kill(broker.process.processIdentifier, SIGCONT)
                    for _ in 0..<20 { _ = try await tick(true) }  // not measured: the broker and the tap catch up
                }
                ds.sort()
                results[mode, default: []].append((percentile(ds, 0.5), percentile(ds, 0.99)))
            }
        }
        await group.triggerGracefulShutdown()
        flood.client.close()
        try await tasks.next()
        tasks.cancelAll()
    }
    let sent = tap.messages.withLock { $0.filter { $0.kind == "NDATA" || $0.kind == "DDATA" }.count }
    print("fleet-ticks: \(path), loop on the simulator's in-memory buses, one tick of 1 s loop time every \(periodMS) ms of real time; \(runs) runs of \(n) ticks per condition, alternating; tick = ControlLoop.tick + the offer hook; the node wakes on its clock a quarter period after each tick; load average \(loadAverage())")
    for mode in [Mode.without, .with, .flood, .hung] {
        let r = results[mode] ?? []
        print("  \(mode.rawValue): p50 " + r.map { String(format: "%.3f", $0.p50) }.joined(separator: " / ")
              + " ms, p99 " + r.map { String(format: "%.3f", $0.p99) }.joined(separator: " / ") + " ms")
    }
    func medianRatio(_ m: Mode, _ key: KeyPath<(p50: Double, p99: Double), Double>) -> Double {
        let a = results[m] ?? [], b = results[.without] ?? []
        let ratios = zip(a, b).map { $0[keyPath: key] / $1[keyPath: key] }.sorted()
        return ratios.isEmpty ? .nan : ratios[ratios.count / 2]
    }
    print(String(format: "  ratio to without (median of %d runs): with p50 %.2f, p99 %.2f; flood p50 %.2f, p99 %.2f; hung p50 %.2f, p99 %.2f (goal: 1 within noise)",
                 runs, medianRatio(.with, \.p50), medianRatio(.with, \.p99), medianRatio(.flood, \.p50), medianRatio(.flood, \.p99),
                 medianRatio(.hung, \.p50), medianRatio(.hung, \.p99)))
    hookUS.sort()
    print(String(format: "  the offer hook alone: p50 %.1f µs, p99 %.1f µs, max %.1f µs over %d calls; the hook resumed the service %d times, its clock's task or the command worker %d times",
                 percentile(hookUS, 0.5), percentile(hookUS, 0.99), hookUS.last ?? .nan, hookUS.count, edge.tickHookWakes.service, edge.tickHookWakes.others))
    print("  flood blocks: \(floodSent) commands published (\(floodPerS)/s target), \(floodHandled) answered (\(floodAccepted) accepted), \(floodDropped) dropped (queue full), fast paths \(floodFast) run / \(floodDeferred) left to the next tick")
    print("  data messages the host saw: \(sent)")
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)).map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "?"
}
