// The hub store's figures (issue 18):
//   hub-store [SAMPLES_PER_SIZE [BATCH,BATCH,…]]   insert throughput of samples through HubStore.write, in batches of
//                                                  each size (default 200,000 samples; batches 100,1000,5000), and
//                                                  disk per site-day for the demo site's metrics
//
// Everything runs against a throwaway PostgreSQL cluster (TestSupport.PostgresServer: Debian's server as the postgres
// user, fsync and synchronous_commit on) that is removed afterwards.
//
// Throughput: one writer (as the host has: it writes on its own task, in arrival order) sends batches of N samples
// from 100 sites (1,000 metrics each, device and node metrics mixed), each batch one `write` (one transaction,
// committed and flushed when it returns). Timed from the first write to the last return; the cluster is fresh and
// the day partition exists before timing.
//
// Disk: the demo site (examples/demo-site.yaml) publishes 180 metrics (9 node metrics; 30 containers × 5; 7 meters ×
// 3; docs/fleet.md). Two rates: every metric once a minute (the edge node's 60 s refresh, the floor of report by
// exception: 259,200 samples a day) inserted for a whole day, and every metric every second (the 1 s tick, the
// ceiling: 15,552,000 a day) inserted for one hour and multiplied by 24. Disk is pg_total_relation_size of the
// day's samples partition (heap, primary-key index, TOAST) after VACUUM (×24 for the hour); `latest` (one row per
// metric, whatever the rate) is printed beside it.

import Foundation
import Hub
import Logging
import Sparkplug
import TestSupport

func runHubStoreBenchmark(arguments: [String]) async throws {
    let perSize = arguments.first.flatMap { Int($0) } ?? 200_000
    let sizes = arguments.count > 1 ? arguments[1].split(separator: ",").compactMap { Int($0) } : [100, 1000, 5000]
    var logger = Logger(label: "hub-store-bench")
    logger.logLevel = .warning
    let t0: UInt64 = 1_795_737_600_000  // 2026-11-27 00:00 UTC

    try await withPostgres { server in
        let config = HubStoreConfiguration(port: server.port, username: server.username, database: server.database)
        print("PostgreSQL \(server.majorVersion) (Debian), fsync on, synchronous_commit on")
        try await HubStore.withRunning(config, logger: logger) { store in
            try await store.migrate()
            try await store.prepareSamplePartitions(now: Date(timeIntervalSince1970: Double(t0) / 1000))
            // Throughput.
            let sites = (0..<100).map { SiteKey(group: "R\($0 % 4)", edge: "site-\($0)") }
            var clock = t0
            for size in sizes {
                // Sites exist before timing (the store creates a row on first sight).
                try await store.write([.samples(sites.map { MetricSample(site: $0, device: nil, name: "warm", at: clock, value: .double(0), historical: false) })])
                var random = SeededRandom(seed: UInt64(size))
                let batches = max(1, perSize / size)
                var prepared: [[HubRecord]] = []
                var metric = 0
                for _ in 0..<batches {
                    var samples: [MetricSample] = []
                    samples.reserveCapacity(size)
                    for _ in 0..<size {
                        let site = sites[metric % sites.count]
                        let m = (metric / sites.count) % 1000
                        samples.append(MetricSample(site: site, device: m < 100 ? nil : "dev-\(m / 10)", name: "metric-\(m % 10)",
                                                    at: clock, value: .double(random.range(0, 5000)), historical: false))
                        metric += 1
                        if metric % 100_000 == 0 { clock += 1000 }
                    }
                    clock += 1000
                    prepared.append([.samples(samples)])
                }
                let c0 = cpuSeconds()
                let start = ContinuousClock.now
                for batch in prepared { try await store.write(batch) }
                let wall = ContinuousClock.now - start
                let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
                let total = batches * size
                print(String(format: "insert: batches of %5d: %7d samples in %6.2f s = %8.0f samples/s (%.1f ms per batch; bench process CPU %.2f s)",
                             size, total, seconds, Double(total) / seconds, seconds * 1000 / Double(batches), cpuSeconds() - c0))
            }

            // Disk per site-day.
            func diskRun(site: SiteKey, day: UInt64, periodMs: UInt64, span: UInt64) async throws -> (samples: Int, bytes: Int64, latest: Int64, heap: Int64, index: Int64) {
                var names: [(String?, String, Bool)] = []  // device, metric, numeric
                for n in ["Site/Import kW", "Site/Cap In Force kW", "Site/Mining MW", "Site/Inference MW", "Site/Price USD per MWh",
                          "Site/Hashprice USD per PH day", "Site/Config Version", "Site/Active Events"] { names.append((nil, n, true)) }
                names.append((nil, "Site/Governor Mode", false))
                for c in 0..<30 {
                    for n in ["Power kW", "Setpoint kW", "Up", "Following"] { names.append(("container-\(c)", n, true)) }
                    names.append(("container-\(c)", "Last Error Code", false))
                }
                for m in 0..<7 {
                    for n in ["Power kW", "Up"] { names.append(("meter-\(m)", n, true)) }
                    names.append(("meter-\(m)", "Last Error Code", false))
                }
                precondition(names.count == 180)
                var random = SeededRandom(seed: 7)
                var count = 0
                var pending: [MetricSample] = []
                var at = day
                while at < day + span {
                    for (device, name, numeric) in names {
                        let value: MetricValue = numeric ? .double((random.range(0, 3500) * 10).rounded() / 10) : .string(random.chance(0.01) ? "timeout" : "")
                        pending.append(MetricSample(site: site, device: device, name: name, at: at, value: value, historical: false))
                    }
                    if pending.count >= 5000 {
                        try await store.write([.samples(pending)])
                        count += pending.count
                        pending.removeAll(keepingCapacity: true)
                    }
                    at += periodMs
                }
                if !pending.isEmpty {
                    try await store.write([.samples(pending)])
                    count += pending.count
                }
                try await server.psql("VACUUM ANALYZE")
                let dayName = "samples_" + {
                    let f = DateFormatter()
                    f.locale = Locale(identifier: "en_US_POSIX")
                    f.timeZone = TimeZone(identifier: "UTC")
                    f.dateFormat = "yyyyMMdd"
                    return f.string(from: Date(timeIntervalSince1970: Double(day) / 1000))
                }()
                let sizes = try await server.psql("""
                    SELECT pg_total_relation_size('\(dayName)'), pg_total_relation_size('latest'),
                           pg_relation_size('\(dayName)'), pg_indexes_size('\(dayName)')
                    """).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").map { Int64($0) ?? -1 }
                return (count, sizes[0], sizes[1], sizes[2], sizes[3])
            }
            // Each run on its own (empty) day and its own site, so the partition holds only that run's rows; `latest`
            // is emptied first.
            try await server.psql("TRUNCATE latest")
            let dayMs: UInt64 = 86_400_000
            let minute = try await diskRun(site: SiteKey(group: "disk", edge: "demo-60s"), day: t0 + 10 * dayMs, periodMs: 60_000, span: dayMs)
            print(String(format: "disk: every metric every 60 s, one whole day: %d samples, %.1f MB per site-day (%.0f bytes per sample: heap %.0f, primary key %.0f); latest %d kB",
                         minute.samples, Double(minute.bytes) / 1e6, Double(minute.bytes) / Double(minute.samples),
                         Double(minute.heap) / Double(minute.samples), Double(minute.index) / Double(minute.samples), minute.latest / 1000))
            try await server.psql("TRUNCATE latest")
            let second = try await diskRun(site: SiteKey(group: "disk", edge: "demo-1s"), day: t0 + 20 * dayMs, periodMs: 1000, span: 3_600_000)
            print(String(format: "disk: every metric every 1 s, one hour × 24: %d samples in the hour, %.1f MB per site-day (%.0f bytes per sample: heap %.0f, primary key %.0f); latest %d kB",
                         second.samples, Double(second.bytes) * 24 / 1e6, Double(second.bytes) / Double(second.samples),
                         Double(second.heap) / Double(second.samples), Double(second.index) / Double(second.samples), second.latest / 1000))
        }
    }
}
