// The hub's figures (issue 18), on a throwaway PostgreSQL and Debian's mosquitto on free ports:
//
//   hub-ingest [SECONDS [SITES [METRICS_PER_S [CLIENTS]]]]   (default 60 s, 100 sites, 5,000 metrics/s, 4 clients)
//       Synthetic Sparkplug edge nodes in a second process (`hub-publish`, this binary: our Sparkplug encoder, CLIENTS
//       libmosquitto clients, each site one NBIRTH then one NDATA a second with METRICS_PER_S / SITES metrics, the
//       sites' messages spread evenly over each second, QoS 0 as edge nodes publish NDATA) into a HostApplication
//       writing into HubStore, in this process. Ingest lag of each sample: from the timestamp the publisher put in
//       the payload (its wall clock when it encoded the message) to the moment HubStore.write returned for the
//       batch holding it (committed: fsync and synchronous_commit on), over the samples published after a 5 s
//       warm-up. CPU seconds per wall second of this process (the hub: host, store client, nothing else) and of the
//       PostgreSQL cluster (the postmaster and its children, from /proc), over the same window. Disk: the samples
//       partitions' pg_total_relation_size after VACUUM, per stored sample, × samples per site-day at this rate.
//   fleet-status [REQUESTS [SITES [METRICS_PER_S]]]   (default 300 requests, 100 sites, 5,000 metrics/s)
//       The same fleet publishing, the fleet API on a free port; GET /v1/fleet/status REQUESTS times in a row with
//       a bearer token (one keep-alive connection, AsyncHTTPClient), p50/p99/max; then the built
//       `switchyard fleet status --json` once (process start to exit), if it is beside this binary.
//
//   hub-publish PORT SITES METRICS_PER_S SECONDS CLIENTS      the publishers' process (used by the two above)

import AsyncHTTPClient
import Foundation
import Hub
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Sparkplug
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One line to stdout at once (unbuffered: the parent reads it while this process runs).
func emitLine(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

func wallMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

func benchSiteKey(_ i: Int) -> (group: String, edge: String) { ("R\(i % 4)", String(format: "site-%03d", i)) }

/// The publishers: SITES Sparkplug edge nodes over CLIENTS MQTT connections.
func runHubPublish(arguments: [String]) async throws {
    guard arguments.count >= 5, let port = Int(arguments[0]), let sites = Int(arguments[1]), let rate = Int(arguments[2]),
          let seconds = Double(arguments[3]), let clientCount = Int(arguments[4]), sites > 0, clientCount > 0 else {
        throw BenchError("usage: hub-publish PORT SITES METRICS_PER_S SECONDS CLIENTS")
    }
    let perSite = max(1, rate / sites)
    let names = (0..<perSite).map { String(format: "Bench/Metric %03d", $0) }
    let clients = (0..<clientCount).map { MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: port, clientID: "bench-pub-\($0)")) }
    for c in clients { try await c.connect(will: nil) }
    for i in 0..<sites {
        let (g, e) = benchSiteKey(i), now = wallMs()
        // (nbirth adds bdSeq and Node Control/Rebirth.)
        let p = SparkplugPayloads.nbirth(timestamp: now, bdSeq: BdSeq(0), metrics: names.map { SparkplugMetric(name: $0, timestamp: now, value: .double(0)) })
        _ = try await clients[i % clientCount].publish(topic: "spBv1.0/\(g)/NBIRTH/\(e)", payload: p.encoded(), qos: 0)
    }
    emitLine("BIRTHS \(sites)")
    var seqs = [SparkplugSeq](repeating: SparkplugSeq(0), count: sites)
    let clock = ContinuousClock()
    let start = clock.now
    let interval = Duration.seconds(1) / sites
    let total = Int(seconds * Double(sites))
    var messages = 0, samples = 0
    var lateMax = Duration.zero
    for k in 0..<total {
        let due = start + interval * k
        let now = clock.now
        if now < due { try await clock.sleep(until: due, tolerance: nil) } else { lateMax = max(lateMax, now - due) }
        let i = k % sites
        let (g, e) = benchSiteKey(i)
        seqs[i] = seqs[i].next
        let at = wallMs()
        let metrics = names.enumerated().map { j, n in SparkplugMetric(name: n, timestamp: at, value: .double(Double((k + 7 * j) % 5000) / 10)) }
        let p = SparkplugPayloads.data(timestamp: at, seq: seqs[i], metrics: metrics)
        _ = try await clients[i % clientCount].publish(topic: "spBv1.0/\(g)/NDATA/\(e)", payload: p.encoded(), qos: 0)
        messages += 1
        samples += metrics.count
    }
    emitLine("DONE messages=\(messages) samples=\(samples) last_ms=\(wallMs()) behind_schedule_max_ms=\(lateMax.components.seconds * 1000 + lateMax.components.attoseconds / 1_000_000_000_000_000)")
    for c in clients { try? await c.disconnect(); c.close() }
}

/// Between the host and the store: times every sample from its payload timestamp to its batch's commit.
final class TimedSink: FleetRecordSink {
    let store: HubStore
    struct State {
        var lagsMs: [Double] = []
        var samples = 0
        var batches = 0
        var births = 0
        var windowFrom: UInt64 = .max
    }
    let state = Mutex(State())
    init(store: HubStore) { self.store = store }

    func write(_ records: [HubRecord]) async throws {
        try await store.write(records)
        let committed = Date().timeIntervalSince1970 * 1000
        state.withLock { s in
            s.batches += 1
            for r in records {
                switch r {
                case .samples(let xs):
                    s.samples += xs.count
                    for x in xs where x.at >= s.windowFrom { s.lagsMs.append(committed - Double(x.at)) }
                case .birth: s.births += 1
                default: break
                }
            }
        }
    }
}

/// CPU seconds (user + system) of the PostgreSQL cluster: its postmaster and every child, from /proc.
func postgresCPUSeconds(_ server: PostgresServer) -> Double {
    guard let pidText = try? String(contentsOf: server.dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8),
          let pm = pidText.split(separator: "\n").first.flatMap({ Int($0) }) else { return .nan }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    var total = 0.0
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        // After "pid (comm) ": state ppid … utime(14) stime(15), counted from the state as field 3.
        let f = stat[stat.index(after: close)...].split(separator: " ")
        guard f.count > 13, let ppid = Int(f[1]), pid == pm || ppid == pm, let u = Double(f[11]), let s = Double(f[12]) else { continue }
        total += (u + s) / ticks
    }
    return total
}

/// Lines of a child's stdout as they come.
func lines(of pipe: Pipe) -> AsyncStream<String> {
    let (stream, cont) = AsyncStream.makeStream(of: String.self)
    let handle = pipe.fileHandleForReading
    Thread.detachNewThread {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 10) {
                cont.yield(String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self))
                buffer.removeSubrange(buffer.startIndex...nl)
            }
        }
        cont.finish()
    }
    return stream
}

func secondsOf(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// PostgreSQL, mosquitto, the store, the host (into a TimedSink) and the publishers' process, for `body`.
func withHubRig(sites: Int, rate: Int, clients: Int, seconds: Double, api: Bool,
                _ body: @Sendable (_ server: PostgresServer, _ store: HubStore, _ host: HostApplication, _ sink: TimedSink,
                                   _ publisher: AsyncStream<String>.AsyncIterator, _ apiPort: Int?) async throws -> Void) async throws {
    var logger = Logger(label: "hub-bench")
    logger.logLevel = .error
    try await withPostgres { server in
        let broker = try await MosquittoBroker.start()
        defer { broker.stop() }
        print("PostgreSQL \(server.majorVersion) (Debian), fsync on, synchronous_commit on; mosquitto on 127.0.0.1:\(broker.port)")
        let config = HubStoreConfiguration(port: server.port, username: server.username, database: server.database)
        try await HubStore.withRunning(config, logger: logger) { store in
            try await store.migrate()
            try await store.prepareSamplePartitions(now: Date(), daysAhead: 1)
            let sink = TimedSink(store: store)
            let (online, onlineIn) = AsyncStream.makeStream(of: Void.self)
            // The record spool on, as `hub run` has it by default (every batch on disk until the store has it).
            let spoolDir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-ingest-spool-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: spoolDir) }
            print("record spool: \(spoolDir.path)")
            let host = try HostApplication(configuration: HostConfiguration(hostID: "bench-hub", mqtt: MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "bench-hub"),
                                                                            spoolDirectory: spoolDir.path),
                                           sink: sink, logger: logger, observe: { e in if case .online = e { onlineIn.yield() } })
            var services: [any Service] = [host]
            let (ports, portsIn) = AsyncStream.makeStream(of: Int.self)
            if api {
                services.append(Application(router: FleetAPI.router(.live(host: host, store: store, logger: logger)),
                                            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "bench-hub"),
                                            onServerRunning: { portsIn.yield($0.localAddress?.port ?? 0) }, logger: logger))
            }
            let group = ServiceGroup(services: services, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                var onlineIt = online.makeAsyncIterator()
                _ = await onlineIt.next()
                var apiPort: Int?
                if api { var it = ports.makeAsyncIterator(); apiPort = await it.next() }
                let pub = Process()
                pub.executableURL = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0])
                pub.arguments = ["hub-publish", "\(broker.port)", "\(sites)", "\(rate)", "\(seconds)", "\(clients)"]
                let out = Pipe()
                pub.standardOutput = out
                try pub.run()
                defer { if pub.isRunning { pub.terminate() }; pub.waitUntilExit() }
                var it = lines(of: out).makeAsyncIterator()
                guard let first = await it.next(), first.hasPrefix("BIRTHS") else { throw BenchError("the publishers did not start") }
                // Every site online in the host's model before anything is timed.
                let until = ContinuousClock.now + .seconds(30)
                while await host.status().filter({ $0.liveness == .online }).count < sites {
                    if ContinuousClock.now > until { throw BenchError("only \(await host.status().count) of \(sites) sites came online") }
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await body(server, store, host, sink, it, apiPort)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }
}

func runHubIngestBenchmark(arguments: [String]) async throws {
    let seconds = arguments.count > 0 ? Double(arguments[0]) ?? 60 : 60
    let sites = arguments.count > 1 ? Int(arguments[1]) ?? 100 : 100
    let rate = arguments.count > 2 ? Int(arguments[2]) ?? 5000 : 5000
    let clients = arguments.count > 3 ? Int(arguments[3]) ?? 4 : 4
    let perSite = max(1, rate / sites)
    print("hub-ingest: \(sites) sites × \(perSite) metrics, one NDATA per site per second (\(sites * perSite) metrics/s), \(clients) MQTT clients, \(Int(seconds)) s")
    try await withHubRig(sites: sites, rate: rate, clients: clients, seconds: seconds, api: false) { server, store, host, sink, publisher, _ in
        var publisher = publisher
        // Warm-up: 5 s of data, then the window opens.
        try await Task.sleep(for: .seconds(5))
        let from = wallMs()
        sink.state.withLock { $0.windowFrom = from }
        let cpu0 = cpuSeconds(), pg0 = postgresCPUSeconds(server), t0 = ContinuousClock.now
        var done: String?
        while let line = await publisher.next() { if line.hasPrefix("DONE") { done = line; break } }
        let wall = secondsOf(ContinuousClock.now - t0)
        let cpu = cpuSeconds() - cpu0, pg = postgresCPUSeconds(server) - pg0
        guard let done else { throw BenchError("the publishers died") }
        let fields = Dictionary(uniqueKeysWithValues: done.split(separator: " ").dropFirst().compactMap { kv -> (String, String)? in
            let p = kv.split(separator: "=", maxSplits: 1); return p.count == 2 ? (String(p[0]), String(p[1])) : nil })
        let published = Int(fields["samples"] ?? "") ?? 0
        // Drain: every published sample through the sink (or 60 s).
        let drainUntil = ContinuousClock.now + .seconds(60)
        while sink.state.withLock({ $0.samples }) < published, ContinuousClock.now < drainUntil { try await Task.sleep(for: .milliseconds(100)) }
        let s = sink.state.withLock { $0 }
        let lags = s.lagsMs.sorted()
        print(String(format: "ingest lag (payload timestamp → batch committed), %d samples after warm-up: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
                     lags.count, percentile(lags, 0.5), percentile(lags, 0.99), lags.last ?? .nan))
        print("samples: published \(published), through the store \(s.samples) in \(s.batches) batches (\(String(format: "%.0f", Double(s.samples) / Double(max(1, s.batches)))) samples per batch), dropped by the host \(host.droppedRecords); publisher \(done)")
        print(String(format: "CPU over the %.1f s window: hub process %.3f s per wall second, PostgreSQL %.3f s per wall second", wall, cpu / wall, pg / wall))
        try await server.psql("VACUUM ANALYZE samples")
        let row = try await server.psql("""
            SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0), (SELECT count(*) FROM samples)
            FROM pg_inherits i WHERE i.inhparent = 'public.samples'::regclass
            """).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").map { Double($0) ?? .nan }
        let perSample = row[0] / row[1]
        print(String(format: "disk: %.0f samples stored, %.1f MB in the samples partitions (%.0f bytes per sample); at %d metrics/s per site: %.0f MB per site-day",
                     row[1], row[0] / 1e6, perSample, perSite, perSample * Double(perSite) * 86_400 / 1e6))
        _ = store
    }
}

func runFleetStatusBenchmark(arguments: [String]) async throws {
    let requests = arguments.count > 0 ? Int(arguments[0]) ?? 300 : 300
    let sites = arguments.count > 1 ? Int(arguments[1]) ?? 100 : 100
    let rate = arguments.count > 2 ? Int(arguments[2]) ?? 5000 : 5000
    print("fleet-status: \(requests) × GET /v1/fleet/status, \(sites) sites in the model publishing \(rate) metrics/s in all")
    try await withHubRig(sites: sites, rate: rate, clients: 4, seconds: 3600, api: true) { _, store, _, _, _, apiPort in
        guard let apiPort else { throw BenchError("no API port") }
        let secret = try await store.createToken(name: "bench", role: .viewer).secret
        let url = "http://127.0.0.1:\(apiPort)/v1/fleet/status"
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var timesMs: [Double] = []
        do {
            for i in 0..<(requests + 10) {
                var req = HTTPClientRequest(url: url)
                req.headers.add(name: "Authorization", value: "Bearer \(secret)")
                let t0 = ContinuousClock.now
                let resp = try await client.execute(req, timeout: .seconds(10))
                let body = try await resp.body.collect(upTo: 1 << 24)
                let ms = secondsOf(ContinuousClock.now - t0) * 1000
                guard resp.status == .ok else { throw BenchError("status \(resp.status): \(String(buffer: body))") }
                if i == 0 {
                    let obj = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
                    let rows = (obj?["sites"] as? [Any])?.count ?? -1
                    guard rows == sites else { throw BenchError("\(rows) rows, expected \(sites)") }
                    print("response: \(rows) rows, \(body.readableBytes) bytes")
                }
                if i >= 10 { timesMs.append(ms) }  // the first 10 warm the connection and the code paths
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        let sorted = timesMs.sorted()
        print(String(format: "GET /v1/fleet/status: %d requests: p50 %.2f ms, p99 %.2f ms, max %.2f ms", sorted.count,
                     percentile(sorted, 0.5), percentile(sorted, 0.99), sorted.last ?? .nan))
        let exe = URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchyard").path
        if FileManager.default.isExecutableFile(atPath: exe) {
            let t0 = ContinuousClock.now
            let r = try await runCommand(exe, ["fleet", "status", "--json", "--server", "http://127.0.0.1:\(apiPort)", "--token", secret])
            let ms = secondsOf(ContinuousClock.now - t0) * 1000
            let rows = ((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]).flatMap { ($0["sites"] as? [Any])?.count } ?? -1
            print(String(format: "switchyard fleet status --json (the binary, process start to exit, once): %.0f ms, exit %d, %d rows", ms, r.status, rows))
        } else {
            print("switchyard fleet status --json: not run (no built switchyard beside this binary: \(exe))")
        }
    }
}
