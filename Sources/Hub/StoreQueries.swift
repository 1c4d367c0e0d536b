// What the fleet API reads from the hub store (sites, latest values, history), the commands the hub sends and their
// outcomes, and the samples' day partitions with retention.

import Foundation
import PostgresNIO
import Sparkplug

/// A site as the hub knows it.
public struct HubSite: Sendable, Hashable {
    public var key: SiteKey
    /// The Sparkplug group id (the site's region by default, docs/fleet.md).
    public var region: String
    /// ms since the epoch.
    public var firstSeen: UInt64
    public var lastSeen: UInt64
    /// Born and not dead since.
    public var online: Bool
    /// The bdSeq of the node's current (or last) session.
    public var bdSeq: UInt64?
}

/// A stored metric value: a row of `latest` or of `samples`.
public struct StoredSample: Sendable, Hashable {
    /// nil: the edge node itself.
    public var device: String?
    public var metric: String
    /// ms since the epoch.
    public var at: UInt64
    /// The value as its Sparkplug datatype; nil for a null value.
    public var value: MetricValue?
    /// The Sparkplug datatype code it was stored with.
    public var datatype: Int16
    /// The numeric column (`value`), and the text column (`text_value`), as stored.
    public var number: Double?
    public var text: String?
    public var historical: Bool
}

/// A stored birth.
public struct StoredBirth: Sendable, Hashable {
    public var device: String?
    public var bdSeq: UInt64?
    public var at: UInt64
    /// The metric names in the birth's JSONB, in order.
    public var metricNames: [String]
    /// The JSONB as PostgreSQL prints it.
    public var metricsJSON: String
}

/// A stored death.
public struct StoredDeath: Sendable, Hashable {
    public var device: String?
    public var bdSeq: UInt64?
    public var at: UInt64
}

/// A stored event: `birth`, `death` or `sequence_gap`, with its detail as JSON.
public struct StoredEvent: Sendable, Hashable {
    public var device: String?
    public var kind: String
    public var at: UInt64
    public var detailJSON: String
}

/// Where a fleet command stands.
public enum HubCommandStatus: String, Sendable, Hashable, CaseIterable {
    /// Sent, no answer yet.
    case issued
    /// The site applied it.
    case acknowledged
    /// The site refused it (its answer says why).
    case rejected
    /// No answer before its expiry.
    case expired
    /// The hub could not send it.
    case failed
}

/// A fleet command the hub sends (NCMD, or DCMD when `device` is set), with its expiry.
public struct HubCommand: Sendable, Hashable {
    /// The command's id (the one it carries on the wire).
    public var id: String
    public var site: SiteKey
    public var device: String?
    /// ms since the epoch.
    public var issuedAt: UInt64
    public var expiresAt: UInt64
    /// The command's content, a JSON object.
    public var payloadJSON: String

    public init(id: String, site: SiteKey, device: String? = nil, issuedAt: UInt64, expiresAt: UInt64, payloadJSON: String) {
        self.id = id
        self.site = site
        self.device = device
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.payloadJSON = payloadJSON
    }
}

/// A command as stored, with its status: the first outcome recorded decides it.
public struct StoredCommand: Sendable, Hashable {
    public var command: HubCommand
    public var status: HubCommandStatus
    public var outcome: String?
    /// When the site answered (acknowledged or rejected), ms since the epoch.
    public var ackedAt: UInt64?
}

/// One outcome recorded for a command (every one is kept, duplicates too).
public struct StoredCommandOutcome: Sendable, Hashable {
    public var at: UInt64
    public var status: HubCommandStatus
    public var outcome: String
}

extension HubStore {
    // MARK: Reads for the fleet API

    /// Every site, by group then edge id.
    public func sites() async throws -> [HubSite] {
        do {
            let rows = try await client.query("""
                SELECT group_id, edge_id, region, (extract(epoch FROM first_seen) * 1000)::bigint,
                       (extract(epoch FROM last_seen) * 1000)::bigint, online, bd_seq
                FROM sites ORDER BY group_id, edge_id
                """, logger: logger)
            var out: [HubSite] = []
            for try await (g, e, region, first, last, online, bd) in rows.decode((String, String, String, Int64, Int64, Bool, Int64?).self) {
                out.append(HubSite(key: SiteKey(group: g, edge: e), region: region, firstSeen: UInt64(clamping: first),
                                   lastSeen: UInt64(clamping: last), online: online, bdSeq: bd.map { UInt64(clamping: $0) }))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read sites")
        }
    }

    /// The current value of every metric of `site` (node and devices), by device ('' first: the node) then metric.
    public func latestValues(site: SiteKey) async throws -> [StoredSample] {
        do {
            let g = site.group, e = site.edge
            let rows = try await client.query("""
                SELECT l.device, l.metric, (extract(epoch FROM l.at) * 1000)::bigint, l.value, l.text_value, l.datatype, l.historical
                FROM latest l JOIN sites s ON s.id = l.site_id
                WHERE s.group_id = \(g) AND s.edge_id = \(e)
                ORDER BY l.device, l.metric
                """, logger: logger)
            var out: [StoredSample] = []
            for try await (d, m, at, n, t, dt, h) in rows.decode((String, String, Int64, Double?, String?, Int16, Bool).self) {
                out.append(Self.sample(device: d, metric: m, at: at, number: n, text: t, datatype: dt, historical: h))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read latest values of \(site)")
        }
    }

    /// The samples of one metric of `site` (`device` nil: the node) with `since <= at < until` (ms since the epoch),
    /// in time order.
    public func history(site: SiteKey, device: String?, metric: String, since: UInt64, until: UInt64) async throws -> [StoredSample] {
        do {
            let g = site.group, e = site.edge, d = device ?? ""
            let from = Int64(clamping: since), to = Int64(clamping: until)
            let rows = try await client.query("""
                SELECT (extract(epoch FROM x.at) * 1000)::bigint, x.value, x.text_value, x.datatype, x.historical
                FROM samples x JOIN sites s ON s.id = x.site_id
                WHERE s.group_id = \(g) AND s.edge_id = \(e) AND x.device = \(d) AND x.metric = \(metric)
                  AND x.at >= timestamptz 'epoch' + \(from) * interval '1 millisecond'
                  AND x.at < timestamptz 'epoch' + \(to) * interval '1 millisecond'
                ORDER BY x.at
                """, logger: logger)
            var out: [StoredSample] = []
            for try await (at, n, t, dt, h) in rows.decode((Int64, Double?, String?, Int16, Bool).self) {
                out.append(Self.sample(device: d, metric: metric, at: at, number: n, text: t, datatype: dt, historical: h))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read history of \(site) \(device ?? "(node)") \(metric)")
        }
    }

    static func sample(device: String, metric: String, at: Int64, number: Double?, text: String?, datatype: Int16,
                       historical: Bool) -> StoredSample {
        let stored = StoredValue(datatype: datatype, number: number, text: text)
        return StoredSample(device: device.isEmpty ? nil : device, metric: metric, at: UInt64(clamping: at),
                            value: stored.metricValue, datatype: datatype, number: number, text: text, historical: historical)
    }

    /// The births of `site`, oldest first.
    public func births(site: SiteKey) async throws -> [StoredBirth] {
        do {
            let g = site.group, e = site.edge
            let rows = try await client.query("""
                SELECT b.device, b.bd_seq, (extract(epoch FROM b.at) * 1000)::bigint, b.metrics::text,
                       ARRAY(SELECT coalesce(m->>'name', '') FROM jsonb_array_elements(b.metrics) m)
                FROM births b JOIN sites s ON s.id = b.site_id
                WHERE s.group_id = \(g) AND s.edge_id = \(e)
                ORDER BY b.at, b.id
                """, logger: logger)
            var out: [StoredBirth] = []
            for try await (d, bd, at, json, names) in rows.decode((String, Int64?, Int64, String, [String]).self) {
                out.append(StoredBirth(device: d.isEmpty ? nil : d, bdSeq: bd.map { UInt64(clamping: $0) },
                                       at: UInt64(clamping: at), metricNames: names, metricsJSON: json))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read births of \(site)")
        }
    }

    /// The deaths of `site`, oldest first.
    public func deaths(site: SiteKey) async throws -> [StoredDeath] {
        do {
            let g = site.group, e = site.edge
            let rows = try await client.query("""
                SELECT x.device, x.bd_seq, (extract(epoch FROM x.at) * 1000)::bigint
                FROM deaths x JOIN sites s ON s.id = x.site_id
                WHERE s.group_id = \(g) AND s.edge_id = \(e)
                ORDER BY x.at, x.id
                """, logger: logger)
            var out: [StoredDeath] = []
            for try await (d, bd, at) in rows.decode((String, Int64?, Int64).self) {
                out.append(StoredDeath(device: d.isEmpty ? nil : d, bdSeq: bd.map { UInt64(clamping: $0) }, at: UInt64(clamping: at)))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read deaths of \(site)")
        }
    }

    /// The events of `site`, oldest first.
    public func events(site: SiteKey) async throws -> [StoredEvent] {
        do {
            let g = site.group, e = site.edge
            let rows = try await client.query("""
                SELECT x.device, x.kind, (extract(epoch FROM x.at) * 1000)::bigint, x.detail::text
                FROM events x JOIN sites s ON s.id = x.site_id
                WHERE s.group_id = \(g) AND s.edge_id = \(e)
                ORDER BY x.at, x.id
                """, logger: logger)
            var out: [StoredEvent] = []
            for try await (d, kind, at, detail) in rows.decode((String, String, Int64, String).self) {
                out.append(StoredEvent(device: d.isEmpty ? nil : d, kind: kind, at: UInt64(clamping: at), detailJSON: detail))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read events of \(site)")
        }
    }

    // MARK: Commands

    /// Records a command as issued. Its site gets a row if it has none; an id already recorded is an error.
    public func recordCommand(_ command: HubCommand) async throws {
        do {
            let id = try await siteID(command.site, seenAt: command.issuedAt)
            let logger = self.logger
            try await client.withConnection { conn in
                try await Self.insertCommand(command, siteID: id, replay: false, conn, logger)
            }
        } catch {
            throw HubStoreError.wrap(error, "record command \(command.id)")
        }
    }

    /// Records an outcome of command `id`. The first outcome decides the command's status (and, when the site
    /// answered, `acked_at`); later ones are kept in `command_outcomes` only. Returns whether this one decided it.
    @discardableResult
    public func recordOutcome(commandID: String, status: HubCommandStatus, outcome: String, at: UInt64) async throws -> Bool {
        do {
            let logger = self.logger
            return try await client.withTransaction(logger: logger) { conn -> Bool in
                try await Self.insertOutcome(commandID: commandID, status: status, outcome: outcome, at: at, replay: false, conn, logger)
            }
        } catch {
            throw HubStoreError.wrap(error, "record outcome of \(commandID)")
        }
    }

    /// Inserts `command` (status issued). `replay` (the host's records, which a restarted hub may write again): an id
    /// already recorded is left as it is; otherwise it is an error.
    static func insertCommand(_ command: HubCommand, siteID id: Int32, replay: Bool, _ conn: PostgresConnection,
                              _ logger: Logger) async throws {
        guard command.expiresAt > command.issuedAt else {
            throw HubStoreError(operation: "record command \(command.id)", message: "it expires at or before it is issued")
        }
        let issued = Int64(clamping: command.issuedAt), expires = Int64(clamping: command.expiresAt)
        try await conn.query("""
            INSERT INTO commands (id, site_id, device, issued_at, expires_at, payload, status)
            VALUES (\(command.id), \(id), \(command.device ?? ""),
                    timestamptz 'epoch' + \(issued) * interval '1 millisecond',
                    timestamptz 'epoch' + \(expires) * interval '1 millisecond',
                    \(command.payloadJSON)::jsonb, 'issued')
            \(unescaped: replay ? "ON CONFLICT (id) DO NOTHING" : "")
            """, logger: logger)
    }

    /// Inserts an outcome of command `commandID` and, if it is the first, decides the command's status; returns
    /// whether it decided it. `replay` (the host's records): an outcome of a command not recorded is skipped rather
    /// than an error, and one already kept with the same time, status and text is not kept again.
    static func insertOutcome(commandID: String, status: HubCommandStatus, outcome: String, at: UInt64, replay: Bool,
                              _ conn: PostgresConnection, _ logger: Logger) async throws -> Bool {
        guard status != .issued else {
            throw HubStoreError(operation: "record outcome of \(commandID)", message: "issued is not an outcome")
        }
        let ms = Int64(clamping: at), s = status.rawValue
        let answered = status == .acknowledged || status == .rejected
        let existing = try await conn.query("SELECT status FROM commands WHERE id = \(commandID) FOR UPDATE",
                                            logger: logger).collect()
        guard !existing.isEmpty else {
            if replay { return false }
            throw HubStoreError(operation: "record outcome", message: "no command \(commandID)")
        }
        let inserted = try await conn.query("""
            INSERT INTO command_outcomes (command_id, at, status, outcome)
            SELECT \(commandID), timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(s), \(outcome)
            WHERE NOT \(replay) OR NOT EXISTS (
                SELECT 1 FROM command_outcomes WHERE command_id = \(commandID) AND status = \(s) AND outcome = \(outcome)
                    AND at = timestamptz 'epoch' + \(ms) * interval '1 millisecond')
            RETURNING id
            """, logger: logger).collect()
        guard !inserted.isEmpty else { return false }
        let decided = try await conn.query("""
            UPDATE commands SET status = \(s), outcome = \(outcome),
                acked_at = CASE WHEN \(answered) THEN timestamptz 'epoch' + \(ms) * interval '1 millisecond' END
            WHERE id = \(commandID) AND status = 'issued'
            RETURNING id
            """, logger: logger).collect()
        return !decided.isEmpty
    }

    /// One command, or nil.
    public func command(id: String) async throws -> StoredCommand? {
        do {
            return try await decodeCommands(client.query("""
                \(unescaped: Self.commandColumns) WHERE c.id = \(id)
                """, logger: logger)).first
        } catch {
            throw HubStoreError.wrap(error, "read command \(id)")
        }
    }

    /// The commands sent to `site`, oldest first.
    public func commands(site: SiteKey) async throws -> [StoredCommand] {
        do {
            let g = site.group, e = site.edge
            return try await decodeCommands(client.query("""
                \(unescaped: Self.commandColumns) WHERE s.group_id = \(g) AND s.edge_id = \(e) ORDER BY c.issued_at, c.id
                """, logger: logger))
        } catch {
            throw HubStoreError.wrap(error, "read commands of \(site)")
        }
    }

    static let commandColumns = """
        SELECT c.id, s.group_id, s.edge_id, c.device, (extract(epoch FROM c.issued_at) * 1000)::bigint,
               (extract(epoch FROM c.expires_at) * 1000)::bigint, c.payload::text, c.status, c.outcome,
               (extract(epoch FROM c.acked_at) * 1000)::bigint
        FROM commands c JOIN sites s ON s.id = c.site_id
        """

    private func decodeCommands(_ rows: PostgresRowSequence) async throws -> [StoredCommand] {
        var out: [StoredCommand] = []
        for try await (id, g, e, d, issued, expires, payload, status, outcome, acked)
            in rows.decode((String, String, String, String, Int64, Int64, String, String, String?, Int64?).self) {
            let command = HubCommand(id: id, site: SiteKey(group: g, edge: e), device: d.isEmpty ? nil : d,
                                     issuedAt: UInt64(clamping: issued), expiresAt: UInt64(clamping: expires),
                                     payloadJSON: payload)
            out.append(StoredCommand(command: command, status: HubCommandStatus(rawValue: status) ?? .failed,
                                     outcome: outcome, ackedAt: acked.map { UInt64(clamping: $0) }))
        }
        return out
    }

    /// Every outcome recorded for command `id`, in time order.
    public func commandOutcomes(id: String) async throws -> [StoredCommandOutcome] {
        do {
            let rows = try await client.query("""
                SELECT (extract(epoch FROM at) * 1000)::bigint, status, outcome
                FROM command_outcomes WHERE command_id = \(id) ORDER BY at, id
                """, logger: logger)
            var out: [StoredCommandOutcome] = []
            for try await (at, status, outcome) in rows.decode((Int64, String, String).self) {
                out.append(StoredCommandOutcome(at: UInt64(clamping: at), status: HubCommandStatus(rawValue: status) ?? .failed,
                                                outcome: outcome))
            }
            return out
        } catch {
            throw HubStoreError.wrap(error, "read outcomes of \(id)")
        }
    }

    // MARK: Partitions and retention

    /// Makes sure the samples partitions of these days (days since the epoch, UTC) exist; each in its own short
    /// transaction (hub_sample_partition takes a lock so two writers cannot race).
    func ensureSamplePartitions(days: Set<Int64>) async throws {
        let missing = caches.withLock { c in days.subtracting(c.partitions) }
        for day in missing.sorted() {
            let d = Int32(clamping: day)
            try await client.query("SELECT hub_sample_partition(date '1970-01-01' + \(d))", logger: logger)
            caches.withLock { _ = $0.partitions.insert(day) }
        }
    }

    /// Creates the partitions of today and the next `daysAhead` days (UTC), so that the first samples of a day do
    /// not wait for DDL.
    public func prepareSamplePartitions(now: Date, daysAhead: Int = 1) async throws {
        let today = Self.day(ofMs: Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))
        do {
            try await ensureSamplePartitions(days: Set((0...max(0, daysAhead)).map { today + Int64($0) }))
        } catch {
            throw HubStoreError.wrap(error, "create samples partitions")
        }
    }

    /// The samples partitions that exist (from pg_inherits), oldest first: `samples_YYYYMMDD`.
    public func samplePartitions() async throws -> [String] {
        do {
            let rows = try await client.query("""
                SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'public.samples'::regclass ORDER BY c.relname
                """, logger: logger)
            var out: [String] = []
            for try await name in rows.decode(String.self) { out.append(name) }
            return out
        } catch {
            throw HubStoreError.wrap(error, "list samples partitions")
        }
    }

    /// Retention: drops every samples partition of a UTC day before `now`'s day minus `days` (so `days` whole days
    /// before today are kept, and today). Whole partitions go (no row-by-row delete); `latest` is untouched.
    /// Returns the partitions dropped.
    @discardableResult
    public func retention(days: Int, now: Date) async throws -> [String] {
        do {
            guard days >= 0 else { throw HubStoreError(operation: "retention", message: "days must be 0 or more, not \(days)") }
            let today = Self.day(ofMs: Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))
            let cut = Int32(clamping: today - Int64(days))
            let logger = self.logger
            let dropped = try await client.withTransaction(logger: logger) { conn -> [String] in
                var names: [String] = []
                let rows = try await conn.query(
                    "SELECT hub_drop_sample_partitions_before(date '1970-01-01' + \(cut))", logger: logger)
                for try await name in rows.decode(String.self) { names.append(name) }
                return names
            }
            caches.withLock { c in c.partitions = c.partitions.filter { $0 >= Int64(cut) } }
            if !dropped.isEmpty {
                logger.info("hub store retention", metadata: ["store.dropped": "\(dropped.joined(separator: ","))"])
            }
            return dropped
        } catch {
            throw HubStoreError.wrap(error, "retention")
        }
    }
}
