import Control
import FleetEdge
import Foundation
import Logging
import ServiceLifecycle
import Sparkplug
import Synchronization
import Testing
import TestSupport
@testable import Daemon
import Store

// Store-and-forward (issue 17, docs/fleet.md) end to end: the daemon in-process on the manual clock against the
// simulated site, Debian's mosquitto on a free port, stopped for 600 ticks (10 minutes of loop time at the
// demo's 1 s tick) while a DR event starts and ends, then restarted on the same port; the pinned pysparkplug
// host (Tests/peers/sparkplug_host.py) is the primary host and says what it received.

/// The daemon's hooks as streams, and when each tick was handed over (wall clock, ms since the epoch).
final class FleetWatch: Sendable {
    let ticks: AsyncStream<TickReport>
    let ticksIn: AsyncStream<TickReport>.Continuation
    let node: AsyncStream<EdgeNodeEvent>
    let nodeIn: AsyncStream<EdgeNodeEvent>.Continuation
    let storeAndForward: AsyncStream<StoreAndForwardEvent>
    let storeAndForwardIn: AsyncStream<StoreAndForwardEvent>.Continuation
    /// Loop time of the tick (ms) -> wall time its report was handed over (ms).
    let handedOver = Mutex<[UInt64: Double]>([:])

    init() {
        (ticks, ticksIn) = AsyncStream.makeStream()
        (node, nodeIn) = AsyncStream.makeStream()
        (storeAndForward, storeAndForwardIn) = AsyncStream.makeStream()
    }

    var hooks: DaemonHooks {
        var h = DaemonHooks(tick: { [self] r in
            // The hook runs right after the edge node's `offer`.
            let wall = Date().timeIntervalSince1970 * 1000
            self.handedOver.withLock { $0[UInt64((r.at * 1000).rounded())] = wall }
            self.ticksIn.yield(r)
        })
        h.fleet = { [nodeIn] in nodeIn.yield($0) }
        h.storeAndForward = { [storeAndForwardIn] in storeAndForwardIn.yield($0) }
        return h
    }
}

func nextNodeEvent(_ it: inout AsyncStream<EdgeNodeEvent>.AsyncIterator, _ match: (EdgeNodeEvent) -> Bool) async -> EdgeNodeEvent? {
    while let e = await it.next() { if match(e) { return e } }
    return nil
}

/// Waits until `count` samples in all have been buffered (or, `backfilled`, acknowledged by the broker).
func waitForSamples(_ it: inout AsyncStream<StoreAndForwardEvent>.AsyncIterator, buffered count: Int = 0, backfilled: Int = 0) async {
    var (b, s) = (0, 0)
    while b < count || s < backfilled, let e = await it.next() {
        switch e {
        case .buffered(let n, _): b += n
        case .backfilled(let n, _): s += n
        }
    }
}

/// A fleet buffer whose writes wait until `release()`: a database that has stalled.
final class StalledBuffer: FleetBufferStorage {
    let inner = InMemoryFleetBuffer()
    private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func release() {
        let waiting = gate.withLock { g in g.open = true; defer { g.waiting = [] }; return g.waiting }
        for w in waiting { w.resume() }
    }

    private func opened() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = gate.withLock { g in g.open ? true : { g.waiting.append(c); return false }() }
            if now { c.resume() }
        }
    }

    func append(_ samples: [BufferedSample], capacity: Int, now: Double) async throws -> Int {
        await opened()
        return try await inner.append(samples, capacity: capacity, now: now)
    }
    func oldest(limit: Int) async throws -> [(id: Int64, sample: BufferedSample)] { try await inner.oldest(limit: limit) }
    func remove(through id: Int64) async throws { try await inner.remove(through: id) }
    func count() async throws -> Int { try await inner.count() }
}

@Suite("Fleet store-and-forward against mosquitto and pysparkplug", .serialized, .timeLimit(.minutes(5)))
struct FleetStoreAndForwardTests {
    func logger() -> Logger {
        var l = Logger(label: "fleet-sf-test")
        l.logLevel = .warning
        return l
    }

    /// A 10-minute partition with a DR event in it: the host gets every site-level sample of the gap, flagged
    /// historical, in order, once; the DR event is in them; and no live NDATA or DDATA reaches the host more than
    /// 1 s (wall clock) after its tick was handed to the edge node, while the backfill runs or after.
    @Test func aPartitionIsBackfilledInOrderWithoutGapsOrDuplicates() async throws {
        var broker = try await MosquittoBroker.start()
        let port = broker.port
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(port)", "hq", "1000000"])
        defer { host.stop() }
        let rig = try FleetSiteRig("sf", extraYAML: fleetYAML(port: port) + "  primary_host_id: hq\n")
        defer { rig.close() }
        let dir = rig.dir, site = rig.site
        var config = rig.config
        // A DR event inside the partition: a 4 MW import cap from t0+100 s to t0+400 s (loop time).
        let events = dir.appendingPathComponent("events.yaml").path
        try """
        events:
          - {id: dr-in-the-gap, cap_kw: 4000, from: "2026-07-15T12:01:40Z", until: "2026-07-15T12:06:40Z", reason: partition test}
        """.write(toFile: events, atomically: true, encoding: .utf8)
        config.events = events

        let clock = ManualClock()
        let watch = FleetWatch()
        var ticks = watch.ticks.makeAsyncIterator()
        var node = watch.node.makeAsyncIterator()
        var sf = watch.storeAndForward.makeAsyncIterator()
        var reports: [TickReport] = []
        func tick(_ n: Int) async throws {
            for _ in 0..<n {
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                await site.step()
            }
        }
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            reports.append(try #require(await ticks.next()))
            await site.step()
            // Not born yet (the primary host has not said online): the first tick is buffered.
            await waitForSamples(&sf, buffered: 1)
            let control = SparkplugTap(port: port)
            _ = try await control.subscribeToEverything()
            try await control.client.publish(topic: "switchyard-test/control", payload: Array("online".utf8), qos: 1)
            control.client.close()
            _ = await nextNodeEvent(&node) { if case .born = $0 { true } else { false } }
            await waitForSamples(&sf, backfilled: 1)
            try await tick(5)                                   // online: live data

            broker.stop()
            _ = await nextNodeEvent(&node) { if case .offline = $0 { true } else { false } }
            let gapStart = reports.count
            try await tick(600)                                 // 10 minutes of loop time without a broker
            let gap = Array(reports[gapStart...])
            await waitForSamples(&sf, buffered: 600)

            broker = try await MosquittoBroker.start(port: port)
            // The host reconnects and says online again; the node then births and backfills while the loop ticks on.
            _ = await nextNodeEvent(&node) { if case .born = $0 { true } else { false } }
            let liveStart = reports.count
            // More than the 60 s maximum interval: every metric is sent live at least once after the birth.
            try await tick(70)
            await waitForSamples(&sf, backfilled: 600)

            let done = SparkplugTap(port: port)
            _ = try await done.subscribeToEverything()
            try await done.client.publish(topic: "switchyard-test/control", payload: Array("done".utf8), qos: 1)
            _ = await host.waitForExit()
            done.client.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()

            let (line, verdict) = try lastJSONLine(host.standardOutput)
            #expect(verdict["errors"] as? [String] == [], "\(line.prefix(2_000))")
            #expect(verdict["reconnects"] as? Int == 1)
            let historical = verdict["historical"] as? [String: [[Any]]] ?? [:]
            // Every site-level sample of the gap (and the first tick, from before the first birth), oldest first, once.
            // An online tick the service had not yet taken from the hand-off queue when the loss was noticed is buffered
            // too (and was not sent live): the last few online ticks may precede the gap, never any other.
            let ms = { (r: TickReport) in Int64((r.at * 1000).rounded()) }
            let modeTimes = (historical["Site/Governor Mode"] ?? []).map { ($0.first as? NSNumber)?.int64Value ?? -1 }
            let lateOnline = reports[1..<gapStart].map(ms).filter { modeTimes.contains($0) }
            #expect(lateOnline == Array(reports[1..<gapStart].map(ms).suffix(lateOnline.count)), "\(lateOnline)")
            let expected = [ms(reports[0])] + lateOnline + gap.map(ms)
            #expect(modeTimes == expected, "historical samples: \(modeTimes.count), expected \(expected.count)")
            #expect(Set(historical.keys) == Set([
                "Site/Import kW", "Site/Cap In Force kW", "Site/Mining MW", "Site/Inference MW", "Site/Price USD per MWh",
                "Site/Hashprice USD per PH day", "Site/Governor Mode", "Site/Config Version", "Site/Active Events", "Site/Config SHA256"]))
            #expect(historical.values.allSatisfy { $0.count == expected.count }, "every node metric of every sample")
            // The DR event is in the gap's samples: one active event from t0+100 s to t0+400 s, none before or after.
            let active = (historical["Site/Active Events"] ?? []).map { ($0.last as? NSNumber)?.intValue ?? -1 }
            let activeAt = zip(expected, active).filter { $0.1 > 0 }.map { Double($0.0) / 1000 - t0 }
            #expect(activeAt.first == 100 && activeAt.last == 399 && activeAt.count == 300, "\(activeAt.first ?? -1)...\(activeAt.last ?? -1)")
            let caps = zip(expected, (historical["Site/Cap In Force kW"] ?? []).map { ($0.last as? NSNumber)?.doubleValue ?? -1 })
            #expect(caps.filter { Double($0.0) / 1000 - t0 >= 100 && Double($0.0) / 1000 - t0 < 400 }.allSatisfy { $0.1 <= 4_000 })

            // Live data after the restart: delay = the host's arrival time - the tick's hand-off, both wall clock.
            let handed = watch.handedOver.withLock { $0 }
            let liveTimes = Set(reports[liveStart...].map { UInt64(($0.at * 1000).rounded()) })
            let live = (verdict["live"] as? [[NSNumber]] ?? []).map { (at: $0[0].uint64Value, arrived: $0[1].doubleValue) }
                .filter { liveTimes.contains($0.at) }
            #expect(live.count >= 1, "live NDATA/DDATA after the restart")
            let delays = live.compactMap { l in handed[l.at].map { l.arrived - $0 } }
            #expect(delays.count == live.count)
            #expect((delays.max() ?? 0) <= 1_000, "live NDATA delays (ms): \(delays)")
            let arrivals = (verdict["historical_arrivals"] as? [NSNumber] ?? []).map(\.doubleValue)
            print("partition: \(expected.count) historical samples in \(arrivals.count) NDATA; \(live.count) live NDATA/DDATA after the restart, "
                  + "max delay \(Int(delays.max() ?? 0)) ms, \(live.filter { $0.arrived < (arrivals.last ?? 0) }.count) of them during the backfill")
        }
    }

    /// The buffer's database stalls while the broker is away: the loop ticks on (one report per advance of the manual
    /// clock, 300 of them), and once the database answers again every tick's sample is in the buffer, in order,
    /// none dropped: the hand-off queue held them while the service waited.
    @Test func aStalledDatabaseNeitherStopsTheLoopNorLosesSamples() async throws {
        let rig = try FleetSiteRig("stall", extraYAML: fleetYAML(port: try freeLoopbackPort()))   // no broker there
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        let stalled = StalledBuffer()
        config.fleetBuffer = stalled

        let clock = ManualClock()
        let watch = FleetWatch()
        var ticks = watch.ticks.makeAsyncIterator()
        var sf = watch.storeAndForward.makeAsyncIterator()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var reports = [try #require(await ticks.next())]
            await site.step()
            for _ in 0..<300 {
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                await site.step()
            }
            #expect(reports.enumerated().allSatisfy { $0.element.at == t0 + Double($0.offset) }, "one tick per advance")
            #expect(try await stalled.inner.count() == 0, "nothing written while the database stalls")
            stalled.release()
            await waitForSamples(&sf, buffered: reports.count)
            #expect(stalled.inner.samples.map(\.at) == reports.map { UInt64(($0.at * 1000).rounded()) })
            #expect(stalled.inner.evicted == 0)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// The site file's `fleet.buffer_samples` bounds the buffer (not the daemon's 7-day default): with 5 and the broker
    /// away for 12 ticks, the 5 newest samples are kept and the 8 oldest evicted.
    @Test func theSiteFileBoundsTheBuffer() async throws {
        let rig = try FleetSiteRig("bound", extraYAML: fleetYAML(port: try freeLoopbackPort()) + "  buffer_samples: 5\n")   // no broker there
        defer { rig.close() }
        let site = rig.site
        var config = rig.config
        let buffer = InMemoryFleetBuffer()
        config.fleetBuffer = buffer
        #expect(config.fleetBufferCapacity == StoreAndForwardOptions.defaultCapacity)

        let clock = ManualClock()
        let watch = FleetWatch()
        var ticks = watch.ticks.makeAsyncIterator()
        var sf = watch.storeAndForward.makeAsyncIterator()
        let group = ServiceGroup(services: [SiteDaemon(config: config, clock: clock, logger: logger(), hooks: watch.hooks)], logger: logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var reports = [try #require(await ticks.next())]
            await site.step()
            for _ in 0..<12 {
                clock.advance(by: .seconds(1))
                reports.append(try #require(await ticks.next()))
                await site.step()
            }
            await waitForSamples(&sf, buffered: reports.count)
            #expect(buffer.samples.map(\.at) == reports.suffix(5).map { UInt64(($0.at * 1000).rounded()) })
            #expect(buffer.evicted == reports.count - 5)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// The figure for Benchmarks/README.md: 3,600 one-second samples (a 1 h partition) in the SQLite buffer, sent
    /// over mosquitto on loopback to a subscriber that decodes them, with the default pace and without one. The
    /// rate is samples per wall second, i.e. how many times faster than real time a 1 s-tick gap is backfilled.
    @Test(arguments: [BackfillThrottle(), BackfillThrottle(batchSamples: 60, maxSamplesPerSecond: 1_000_000)])
    func backfillRateAfterAOneHourPartition(throttle: BackfillThrottle) async throws {
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-fleet-rate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try Store.open(directory: dir.path)
        let buffer = StoreFleetBuffer(store: store)
        // The demo site's node metrics, one sample per second for an hour.
        let start: UInt64 = 1_784_116_800_000
        func metrics(_ i: Int) -> [SparkplugMetric] {
            let at = start + UInt64(i) * 1000
            return [
                SparkplugMetric(name: FleetMetricName.importKW, timestamp: at, value: .double(31_000 + Double(i % 97))),
                SparkplugMetric(name: FleetMetricName.capKW, timestamp: at, value: .double(39_500)),
                SparkplugMetric(name: FleetMetricName.miningMW, timestamp: at, value: .double(24 + Double(i % 13) / 10)),
                SparkplugMetric(name: FleetMetricName.inferenceMW, timestamp: at, value: .double(6.5)),
                SparkplugMetric(name: FleetMetricName.price, timestamp: at, value: .double(42.5)),
                SparkplugMetric(name: FleetMetricName.hashprice, timestamp: at, value: .double(48.2)),
                SparkplugMetric(name: FleetMetricName.mode, timestamp: at, value: .string("normal")),
                SparkplugMetric(name: FleetMetricName.configVersion, timestamp: at, value: .int64(3)),
                SparkplugMetric(name: FleetMetricName.activeEvents, timestamp: at, value: .int32(0)),
            ]
        }
        let samples = (0..<3_600).map { BufferedSample(at: start + UInt64($0) * 1000, kind: .sample, metrics: metrics($0)) }
        _ = try await buffer.append(samples, capacity: StoreAndForwardOptions.defaultCapacity, now: 0)
        #expect(try await buffer.count() == 3_600)

        let tap = SparkplugTap(port: broker.port)
        defer { tap.client.close() }
        var tapEvents = try await tap.subscribeToEverything()
        let client = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "rate-edge"))
        let runner = try EdgeNodeRunner(client: client, identity: EdgeNodeIdentity(group: "bench", edge: "site"),
                                        store: FileBdSeqStore(path: dir.appendingPathComponent("bdseq").path),
                                        birth: BirthCertificate(node: metrics(0), devices: []), retryDelay: .milliseconds(50),
                                        now: { UInt64(Date().timeIntervalSince1970 * 1000) })
        var events = runner.events.makeAsyncIterator()
        async let running: Void = runner.run()
        _ = await nextNodeEvent(&events) { if case .born = $0 { true } else { false } }

        let clock = ContinuousClock()
        let began = clock.now
        let outcome = await Backfill(storage: buffer, throttle: throttle).run(
            publish: { await runner.publishHistorical(node: $0) }, elapsed: { clock.now - began })
        let acknowledged = clock.now - began
        // The subscriber decodes every historical sample (the broker passes the NDATA on before our later "done").
        var received = 0, bytes = 0
        while received < 3_600 * 9, let e = await tapEvents.next() {
            guard case .message(let m) = e, m.topic.contains("/NDATA/") else { continue }
            bytes += m.payload.count
            received += try SparkplugPayload(decoding: m.payload).metrics.filter(\.isHistorical).count
        }
        let delivered = clock.now - began
        client.close()
        await running

        #expect(outcome.drained && outcome.sent == 3_600 && outcome.batches == 60)
        #expect(received == 3_600 * 9)
        #expect(try await buffer.count() == 0)
        let seconds = Double(delivered.components.seconds) + Double(delivered.components.attoseconds) / 1e18
        let factor = 3_600 / seconds
        let rowBytes = samples[0].payload.count
        print("backfill of a 1 h partition (3,600 samples, max \(Int(throttle.maxSamplesPerSecond))/s): acknowledged in \(acknowledged), "
              + "delivered in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", factor))x real time; "
              + "\(bytes / 60) bytes per NDATA of 60 samples, \(rowBytes) bytes per stored sample")
        #expect(factor >= 20, "issue 17's goal: at least 20x real time")
    }
}
