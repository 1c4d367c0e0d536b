// Writing the host's records (the `FleetRecordSink` side of the store) and the samples' historical merge rule.
//
// The merge rule, in SQL (and applied the same way within one batch before it is sent):
// - samples: key (site, device, metric, at). A historical sample never replaces a stored one (DO NOTHING); a live
//   one replaces a stored historical one at the same instant (and a live one, last write wins).
// - latest: key (site, device, metric). A sample replaces the current value only when it is newer, or at the same
//   instant when it is live; so a historical sample never touches a value that a newer (or equally new live) sample
//   set.

import Foundation
import Synchronization
import PostgresNIO
import Sparkplug

extension HubStore {
    /// One row of `samples` (and candidate for `latest`).
    struct SampleRow {
        var siteID: Int32
        var device: String
        var metric: String
        var at: Int64
        var value: StoredValue
        var historical: Bool
    }

    static let msPerDay: Int64 = 86_400_000

    static func day(ofMs ms: Int64) -> Int64 {
        ms >= 0 ? ms / msPerDay : -((-ms + msPerDay - 1) / msPerDay)
    }

    /// Keeps `records`, in one transaction. Sites first seen here get their row first (committed on its own, so
    /// the id cache only holds committed ids), and the day partitions the samples need are created before the
    /// transaction (partition DDL locks the parent table).
    public func write(_ records: [HubRecord]) async throws {
        guard !records.isEmpty else { return }
        try await HubStore.withinWriteTimeout(writeTimeout, "write \(records.count) records") {
            try await self.writeUnbounded(records)
        }
    }

    /// `body`, failed if it has not finished within `limit`: a write in flight when PostgreSQL is killed could wait
    /// on the dead connection for ever, even once cancelled (StoreOutageTests, through a TCP relay as behind a
    /// proxy; found by the chaos soak), and the host's record writer waited with it. After `limit` the write is
    /// cancelled and left behind, and the caller gets an error (the host's writer retries on a new connection).
    static func withinWriteTimeout(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let race = WriteRace()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                race.start(c, work: Task {
                    do { try await body(); race.finish(.success(())) } catch { race.finish(.failure(error)) }
                }, timer: Task {
                    do { try await Task.sleep(for: limit) } catch { return }
                    race.finish(.failure(HubStoreError(operation: what, message: "PostgreSQL did not answer within \(limit) (the connection is cut or the server gone): given up, to be retried")))
                })
            }
        } onCancel: {
            race.cancel()
        }
    }

    private func writeUnbounded(_ records: [HubRecord]) async throws {
        do {
            var firstSeen: [SiteKey: UInt64] = [:]
            func saw(_ site: SiteKey, _ at: UInt64) { firstSeen[site] = min(firstSeen[site] ?? at, at) }
            for record in records {
                switch record {
                case .birth(let b): saw(b.site, b.at)
                case .death(let site, _, _, let at): saw(site, at)
                case .sequenceGap(let site, _, _, let at): saw(site, at)
                case .samples(let samples): for s in samples { saw(s.site, s.at) }
                case .command(let c): saw(c.site, c.issuedAt)
                case .commandOutcome: break
                }
            }
            var ids: [SiteKey: Int32] = [:]
            for (site, at) in firstSeen.sorted(by: { $0.key < $1.key }) { ids[site] = try await siteID(site, seenAt: at) }

            var rows: [SampleRow] = []
            for record in records {
                switch record {
                case .samples(let samples):
                    for s in samples {
                        rows.append(SampleRow(siteID: ids[s.site]!, device: s.device ?? "", metric: s.name,
                                              at: Int64(clamping: s.at), value: StoredValue(s.value), historical: s.historical))
                    }
                case .birth(let b):
                    // A birth's metrics are values too (the current ones, at the metric's time or the birth's).
                    for m in b.metrics {
                        guard let name = m.name else { continue }
                        rows.append(SampleRow(siteID: ids[b.site]!, device: b.device ?? "", metric: name,
                                              at: Int64(clamping: m.timestamp ?? b.at),
                                              value: StoredValue(m.value, nullType: m.dataType), historical: m.isHistorical))
                    }
                case .death, .sequenceGap, .command, .commandOutcome:
                    break
                }
            }
            let samples = Self.mergeSamples(rows)
            let latest = Self.mergeLatest(rows)
            var attempt = 0
            while true {
                try await ensureSamplePartitions(days: Set(samples.map { Self.day(ofMs: $0.at) }))
                do {
                    try await writeTransaction(records, ids: ids, samples: samples, latest: latest)
                    return
                } catch where attempt == 0 && HubStoreError.sqlState(error) == "23514" {
                    // "no partition of relation samples found for row": a partition was dropped behind our cache
                    // (retention in another process). Forget the cache and try once more.
                    attempt += 1
                    caches.withLock { $0.partitions.removeAll() }
                }
            }
        } catch {
            throw HubStoreError.wrap(error, "write \(records.count) records")
        }
    }

    private func writeTransaction(_ records: [HubRecord], ids: [SiteKey: Int32], samples: [SampleRow],
                                  latest: [SampleRow]) async throws {
        let logger = self.logger
        try await client.withTransaction(logger: logger) { conn in
            for record in records {
                switch record {
                case .birth(let b):
                    try await Self.writeBirth(b, siteID: ids[b.site]!, conn, logger)
                case .death(let site, let device, let bdSeq, let at):
                    try await Self.writeDeath(siteID: ids[site]!, device: device, bdSeq: bdSeq, at: at, conn, logger)
                case .sequenceGap(let site, let expected, let received, let at):
                    let id = ids[site]!, ms = Int64(clamping: at)
                    let detail = StoreJSON.object(["expected": Int(expected), "received": Int(received)])
                    try await conn.query("""
                        INSERT INTO events (site_id, device, kind, at, detail)
                        VALUES (\(id), '', 'sequence_gap', timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(detail)::jsonb)
                        """, logger: logger)
                case .command(let c):
                    try await Self.insertCommand(c, siteID: ids[c.site]!, replay: true, conn, logger)
                case let .commandOutcome(id, status, outcome, at):
                    _ = try await Self.insertOutcome(commandID: id, status: status, outcome: outcome, at: at, replay: true, conn, logger)
                case .samples:
                    break
                }
            }
            try await Self.insertSamples(samples, latest: latest, conn, logger)
        }
    }

    static func writeBirth(_ b: BirthRecord, siteID id: Int32, _ conn: PostgresConnection, _ logger: Logger) async throws {
        let ms = Int64(clamping: b.at)
        let bd = b.bdSeq.map { Int64(clamping: $0) }
        let device = b.device ?? ""
        if b.device == nil {
            try await conn.query("""
                UPDATE sites SET online = true, bd_seq = \(bd),
                    last_seen = greatest(last_seen, timestamptz 'epoch' + \(ms) * interval '1 millisecond')
                WHERE id = \(id)
                """, logger: logger)
        } else {
            try await conn.query("""
                INSERT INTO devices (site_id, device, first_seen, last_seen, online)
                VALUES (\(id), \(device), timestamptz 'epoch' + \(ms) * interval '1 millisecond',
                        timestamptz 'epoch' + \(ms) * interval '1 millisecond', true)
                ON CONFLICT (site_id, device) DO UPDATE
                SET online = true, last_seen = greatest(devices.last_seen, excluded.last_seen)
                """, logger: logger)
        }
        let metrics = StoreJSON.metrics(b.metrics)
        try await conn.query("""
            INSERT INTO births (site_id, device, bd_seq, at, metrics)
            VALUES (\(id), \(device), \(bd), timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(metrics)::jsonb)
            """, logger: logger)
        var detail: [String: Any] = ["metrics": b.metrics.count]
        if let bd { detail["bdSeq"] = bd }
        let detailJSON = StoreJSON.object(detail)
        try await conn.query("""
            INSERT INTO events (site_id, device, kind, at, detail)
            VALUES (\(id), \(device), 'birth', timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(detailJSON)::jsonb)
            """, logger: logger)
    }

    /// A node death takes the site offline only when its bdSeq is the session's (a late NDEATH of an earlier session
    /// is kept, flagged `stale`, and changes nothing); its devices go offline with it.
    static func writeDeath(siteID id: Int32, device: String?, bdSeq: UInt64?, at: UInt64, _ conn: PostgresConnection,
                           _ logger: Logger) async throws {
        let ms = Int64(clamping: at)
        let bd = bdSeq.map { Int64(clamping: $0) }
        var applied = true
        if let device {
            try await conn.query("""
                INSERT INTO devices (site_id, device, first_seen, last_seen, online)
                VALUES (\(id), \(device), timestamptz 'epoch' + \(ms) * interval '1 millisecond',
                        timestamptz 'epoch' + \(ms) * interval '1 millisecond', false)
                ON CONFLICT (site_id, device) DO UPDATE
                SET online = false, last_seen = greatest(devices.last_seen, excluded.last_seen)
                """, logger: logger)
        } else {
            let rows = try await conn.query("""
                UPDATE sites SET online = false,
                    last_seen = greatest(last_seen, timestamptz 'epoch' + \(ms) * interval '1 millisecond')
                WHERE id = \(id) AND (\(bd)::bigint IS NULL OR bd_seq IS NULL OR bd_seq = \(bd))
                RETURNING id
                """, logger: logger).collect()
            applied = !rows.isEmpty
            if applied {
                try await conn.query("UPDATE devices SET online = false WHERE site_id = \(id) AND online", logger: logger)
            }
        }
        try await conn.query("""
            INSERT INTO deaths (site_id, device, bd_seq, at)
            VALUES (\(id), \(device ?? ""), \(bd), timestamptz 'epoch' + \(ms) * interval '1 millisecond')
            """, logger: logger)
        var detail: [String: Any] = ["stale": !applied]
        if let bd { detail["bdSeq"] = bd }
        let detailJSON = StoreJSON.object(detail)
        try await conn.query("""
            INSERT INTO events (site_id, device, kind, at, detail)
            VALUES (\(id), \(device ?? ""), 'death', timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(detailJSON)::jsonb)
            """, logger: logger)
    }

    /// The batch's rows for `samples`, one per key, chosen by the merge rule (so that ON CONFLICT never meets the
    /// same key twice in one statement), in key order (a stable lock order).
    static func mergeSamples(_ rows: [SampleRow]) -> [SampleRow] {
        struct Key: Hashable { var site: Int32; var device: String; var metric: String; var at: Int64 }
        var chosen: [Key: Int] = [:]
        var out: [SampleRow] = []
        for row in rows {
            let key = Key(site: row.siteID, device: row.device, metric: row.metric, at: row.at)
            if let i = chosen[key] {
                if !row.historical { out[i] = row }  // live replaces historical, and an earlier live
            } else {
                chosen[key] = out.count
                out.append(row)
            }
        }
        return out.sorted { ($0.siteID, $0.device, $0.metric, $0.at) < ($1.siteID, $1.device, $1.metric, $1.at) }
    }

    /// The batch's candidate for `latest`, one per metric: the newest, a live one winning a tie.
    static func mergeLatest(_ rows: [SampleRow]) -> [SampleRow] {
        struct Key: Hashable { var site: Int32; var device: String; var metric: String }
        var best: [Key: SampleRow] = [:]
        for row in rows {
            let key = Key(site: row.siteID, device: row.device, metric: row.metric)
            if let b = best[key], !(row.at > b.at || (row.at == b.at && !row.historical)) { continue }
            best[key] = row
        }
        return best.values.sorted { ($0.siteID, $0.device, $0.metric) < ($1.siteID, $1.device, $1.metric) }
    }

    /// One INSERT … SELECT FROM unnest(arrays) for the samples, one for `latest`, one UPDATE for the sites' last
    /// seen: three statements whatever the batch size.
    static func insertSamples(_ samples: [SampleRow], latest: [SampleRow], _ conn: PostgresConnection,
                              _ logger: Logger) async throws {
        guard !samples.isEmpty else { return }
        let a = Columns(samples)
        try await conn.query("""
            INSERT INTO samples (site_id, device, metric, at, value, text_value, datatype, historical)
            SELECT u.s, u.d, u.m, timestamptz 'epoch' + u.ms * interval '1 millisecond',
                   CASE WHEN u.hn THEN u.n END, CASE WHEN u.ht THEN u.t END, u.dt, u.h
            FROM unnest(\(a.site), \(a.device), \(a.metric), \(a.at), \(a.number), \(a.hasNumber), \(a.text), \(a.hasText),
                        \(a.datatype), \(a.historical)) AS u(s, d, m, ms, n, hn, t, ht, dt, h)
            ON CONFLICT (site_id, device, metric, at) DO UPDATE
            SET value = excluded.value, text_value = excluded.text_value, datatype = excluded.datatype, historical = false
            WHERE NOT excluded.historical
            """, logger: logger)
        let l = Columns(latest)
        try await conn.query("""
            INSERT INTO latest (site_id, device, metric, at, value, text_value, datatype, historical)
            SELECT u.s, u.d, u.m, timestamptz 'epoch' + u.ms * interval '1 millisecond',
                   CASE WHEN u.hn THEN u.n END, CASE WHEN u.ht THEN u.t END, u.dt, u.h
            FROM unnest(\(l.site), \(l.device), \(l.metric), \(l.at), \(l.number), \(l.hasNumber), \(l.text), \(l.hasText),
                        \(l.datatype), \(l.historical)) AS u(s, d, m, ms, n, hn, t, ht, dt, h)
            ON CONFLICT (site_id, device, metric) DO UPDATE
            SET at = excluded.at, value = excluded.value, text_value = excluded.text_value, datatype = excluded.datatype,
                historical = excluded.historical
            WHERE excluded.at > latest.at OR (excluded.at = latest.at AND NOT excluded.historical)
            """, logger: logger)
        var lastSeen: [Int32: Int64] = [:]
        for row in samples { lastSeen[row.siteID] = max(lastSeen[row.siteID] ?? row.at, row.at) }
        let seen = lastSeen.sorted { $0.key < $1.key }
        let siteIDs = seen.map(\.key), seenMs = seen.map(\.value)
        try await conn.query("""
            UPDATE sites SET last_seen = greatest(sites.last_seen, timestamptz 'epoch' + u.ms * interval '1 millisecond')
            FROM unnest(\(siteIDs), \(seenMs)) AS u(id, ms)
            WHERE sites.id = u.id
            """, logger: logger)
    }

    /// Column arrays for unnest.
    struct Columns {
        var site: [Int32] = [], device: [String] = [], metric: [String] = [], at: [Int64] = []
        var number: [Double] = [], hasNumber: [Bool] = [], text: [String] = [], hasText: [Bool] = []
        var datatype: [Int16] = [], historical: [Bool] = []

        init(_ rows: [SampleRow]) {
            for r in rows {
                site.append(r.siteID)
                device.append(r.device)
                metric.append(r.metric)
                at.append(r.at)
                number.append(r.value.number ?? 0)
                hasNumber.append(r.value.number != nil)
                text.append(r.value.text ?? "")
                hasText.append(r.value.text != nil)
                datatype.append(r.value.datatype)
                historical.append(r.historical)
            }
        }
    }
}

/// A write against its deadline: the first to finish resumes the caller, once, and cancels the other.
final class WriteRace: Sendable {
    struct State {
        var continuation: CheckedContinuation<Void, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var result: Result<Void, any Error>?
    }
    let state = Mutex(State())

    func start(_ c: CheckedContinuation<Void, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>) {
        let done = state.withLock { s -> Result<Void, any Error>? in
            s.work = work
            s.timer = timer
            if let r = s.result { return r }
            s.continuation = c
            return nil
        }
        if let done { work.cancel(); timer.cancel(); c.resume(with: done) }
    }

    func finish(_ result: Result<Void, any Error>) {
        let (c, tasks) = state.withLock { s -> (CheckedContinuation<Void, any Error>?, [Task<Void, Never>]) in
            guard s.result == nil else { return (nil, []) }
            s.result = result
            defer { s.continuation = nil }
            return (s.continuation, [s.work, s.timer].compactMap { $0 })
        }
        for t in tasks { t.cancel() }
        c?.resume(with: result)
    }

    func cancel() { finish(.failure(CancellationError())) }
}
