// The hub store on a throwaway PostgreSQL: migrations, births/deaths/samples round trips, commands, day
// partitions and retention. Each test has its own cluster (TestSupport.withPostgres).

import Foundation
import Hub
import PostgresNIO
import Sparkplug
import Testing
import TestSupport

@Suite struct StoreMigrationTests {
    @Test func migrationsApplyOnceAndAgainChangeNothing() async throws {
        try await withPostgres { server in
            let config = StoreFixture.configuration(server)
            let first = try await HubStore.withRunning(config, logger: StoreFixture.logger) { try await $0.migrate() }
            #expect(first == HubStore.migrationNames)
            #expect(first.count == 5)
            // The same store again, and a new store (a restarted hub): nothing left to apply.
            let (again, recorded) = try await HubStore.withRunning(config, logger: StoreFixture.logger) { store in
                (try await store.migrate(), try await store.appliedMigrations())
            }
            #expect(again.isEmpty)
            #expect(recorded == HubStore.migrationNames)
            // Two hubs migrating at once apply each migration once (the advisory lock).
            try await server.psql("DROP TABLE samples, latest, commands, command_outcomes, events, deaths, births, devices, sites, api_tokens, fleet_operations CASCADE; DROP FUNCTION hub_sample_partition, hub_drop_sample_partitions_before; DELETE FROM hub_migrations")
            let concurrent = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<2 {
                    group.addTask { try await HubStore.withRunning(config, logger: StoreFixture.logger) { try await $0.migrate() } }
                }
                var all: [[String]] = []
                for try await applied in group { all.append(applied) }
                return all
            }
            #expect(concurrent.flatMap { $0 }.sorted() == HubStore.migrationNames.sorted())
            // Independently: the table psql sees, and every table of the schema.
            let rows = try await server.psql("SELECT name FROM hub_migrations ORDER BY name").psqlRows.map { $0[0] }
            #expect(rows == HubStore.migrationNames.sorted())
            let tables = try await server.psql("""
                SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
                ORDER BY relname
                """).psqlRows.map { $0[0] }
            #expect(Set(["sites", "devices", "births", "deaths", "events", "commands", "command_outcomes", "samples",
                         "latest", "api_tokens", "fleet_operations", "hub_migrations"]).isSubset(of: Set(tables)))
            let kind = try await server.psql("SELECT relkind FROM pg_class WHERE relname = 'samples'")
            #expect(kind.trimmingCharacters(in: .whitespacesAndNewlines) == "p")  // partitioned
        }
    }

    @Test func aMigrationThisHubDoesNotKnowIsRefused() async throws {
        try await withPostgres { server in
            let config = StoreFixture.configuration(server)
            try await HubStore.withRunning(config, logger: StoreFixture.logger) { _ = try await $0.migrate() }
            try await server.psql("INSERT INTO hub_migrations (name) VALUES ('v99-from-a-newer-hub')")
            await #expect(throws: HubStoreError.self) {
                try await HubStore.withRunning(config, logger: StoreFixture.logger) { _ = try await $0.migrate() }
            }
        }
    }
}

@Suite struct StoreRoundTripTests {
    typealias F = StoreFixture

    @Test func birthsDeathsAndSamplesRoundTrip() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            try await store.write([
                F.nodeBirth(F.siteA, bdSeq: 3, at: t),
                F.deviceBirth(F.siteA, "asic-1", at: t, kW: 3200),
            ])
            try await store.write([
                .samples([
                    F.sample(F.siteA, nil, "Site/Import kW", at: t + F.minute, .double(1250.5)),
                    F.sample(F.siteA, "asic-1", "Power kW", at: t + F.minute, .double(3100)),
                    F.sample(F.siteA, nil, "Site/Mode", at: t + F.minute, .string("curtail")),
                    F.sample(F.siteA, nil, "Site/Ticks", at: t + F.minute, .int32(-7)),
                    F.sample(F.siteA, nil, "Site/Blob", at: t + F.minute, .bytes([0, 1, 254, 255])),
                ]),
                .sequenceGap(site: F.siteA, expected: 5, received: 9, at: t + 2 * F.minute),
            ])

            var sites = try await store.sites()
            #expect(sites.count == 1)
            #expect(sites[0].key == F.siteA)
            #expect(sites[0].region == "ERCOT")
            #expect(sites[0].online)
            #expect(sites[0].bdSeq == 3)
            #expect(sites[0].firstSeen == t)
            #expect(sites[0].lastSeen == t + F.minute)

            let births = try await store.births(site: F.siteA)
            #expect(births.count == 2)
            #expect(births[0].device == nil && births[0].bdSeq == 3 && births[0].at == t)
            #expect(births[0].metricNames == ["bdSeq", "Node Control/Rebirth", "Site/Import kW", "Site/Mode", "Site/Meter kWh", "Site/Price USD/MWh"])
            #expect(births[0].metricsJSON.contains("\"datatype\": \"Double\""))
            #expect(births[1].device == "asic-1" && births[1].metricNames == ["Power kW", "Running"])

            // Latest: every value reads back as its own datatype (a 64-bit value a double cannot hold exactly too).
            let latest = try await store.latestValues(site: F.siteA)
            func value(_ device: String?, _ metric: String) -> StoredSample? {
                latest.first { $0.device == device && $0.metric == metric }
            }
            #expect(value(nil, "Site/Import kW")?.value == .double(1250.5))
            #expect(value(nil, "Site/Import kW")?.at == t + F.minute)
            #expect(value(nil, "Site/Mode")?.value == .string("curtail"))
            #expect(value(nil, "Site/Meter kWh")?.value == .uint64(9_007_199_254_740_993))
            #expect(value(nil, "Site/Price USD/MWh")?.value == nil)
            #expect(value(nil, "Site/Price USD/MWh")?.datatype == 10)
            #expect(value(nil, "Node Control/Rebirth")?.value == .boolean(false))
            #expect(value(nil, "Site/Ticks")?.value == .int32(-7))
            #expect(value(nil, "Site/Blob")?.value == .bytes([0, 1, 254, 255]))
            #expect(value("asic-1", "Power kW")?.value == .double(3100))
            #expect(value("asic-1", "Running")?.value == .boolean(true))
            #expect(latest.allSatisfy { !$0.historical })

            let history = try await store.history(site: F.siteA, device: "asic-1", metric: "Power kW", since: t, until: t + F.day)
            #expect(history.map(\.at) == [t, t + F.minute])
            #expect(history.map(\.value) == [.double(3200), .double(3100)])
            // `until` is exclusive, `since` inclusive.
            let window = try await store.history(site: F.siteA, device: "asic-1", metric: "Power kW", since: t + F.minute, until: t + F.minute + 1)
            #expect(window.map(\.at) == [t + F.minute])

            // A late NDEATH of an earlier session (bdSeq 2) changes nothing; the session's own (3) takes the site
            // and its devices offline.
            try await store.write([.death(site: F.siteA, device: nil, bdSeq: 2, at: t + 3 * F.minute)])
            #expect(try await store.sites()[0].online)
            try await store.write([
                .death(site: F.siteA, device: "asic-1", bdSeq: nil, at: t + 4 * F.minute),
                .death(site: F.siteA, device: nil, bdSeq: 3, at: t + 5 * F.minute),
            ])
            sites = try await store.sites()
            #expect(!sites[0].online)
            #expect(sites[0].lastSeen == t + 5 * F.minute)
            let deaths = try await store.deaths(site: F.siteA)
            #expect(deaths.map(\.device) == [nil, "asic-1", nil])
            #expect(deaths.map(\.bdSeq) == [2, nil, 3])
            let deviceOnline = try await server.psql("SELECT online FROM devices WHERE device = 'asic-1'")
            #expect(deviceOnline.trimmingCharacters(in: .whitespacesAndNewlines) == "f")

            let events = try await store.events(site: F.siteA)
            #expect(events.map(\.kind) == ["birth", "birth", "sequence_gap", "death", "death", "death"])
            #expect(events[2].detailJSON.contains("\"expected\": 5") && events[2].detailJSON.contains("\"received\": 9"))
            #expect(events[3].detailJSON.contains("\"stale\": true"))
            #expect(events[5].detailJSON.contains("\"stale\": false"))

            // A rebirth brings it back.
            try await store.write([F.nodeBirth(F.siteA, bdSeq: 4, at: t + 6 * F.minute)])
            sites = try await store.sites()
            #expect(sites[0].online && sites[0].bdSeq == 4)
        }
    }

    @Test func commandsAndTheirOutcomes() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            let cap = HubCommand(id: "cmd-1", site: F.siteA, issuedAt: t, expiresAt: t + 2 * 3_600_000,
                                 payloadJSON: #"{"kind": "dr-cap", "capKW": 4000}"#)
            let mode = HubCommand(id: "cmd-2", site: F.siteA, device: "asic-1", issuedAt: t + 1, expiresAt: t + F.minute,
                                  payloadJSON: #"{"kind": "mode", "mode": "off"}"#)
            try await store.recordCommand(cap)
            try await store.recordCommand(mode)
            var stored = try #require(try await store.command(id: "cmd-1"))
            #expect(stored.status == .issued && stored.outcome == nil && stored.ackedAt == nil)
            #expect(stored.command.expiresAt == t + 2 * 3_600_000)

            #expect(try await store.recordOutcome(commandID: "cmd-1", status: .acknowledged, outcome: "cap 4000 kW applied", at: t + 900))
            // A duplicate answer is kept, but the first decided.
            #expect(!(try await store.recordOutcome(commandID: "cmd-1", status: .rejected, outcome: "late duplicate", at: t + 1900)))
            #expect(try await store.recordOutcome(commandID: "cmd-2", status: .expired, outcome: "no answer", at: t + F.minute))

            stored = try #require(try await store.command(id: "cmd-1"))
            #expect(stored.status == .acknowledged)
            #expect(stored.outcome == "cap 4000 kW applied")
            #expect(stored.ackedAt == t + 900)
            let expired = try #require(try await store.command(id: "cmd-2"))
            #expect(expired.status == .expired && expired.ackedAt == nil && expired.command.device == "asic-1")
            #expect(try await store.commandOutcomes(id: "cmd-1").map(\.status) == [.acknowledged, .rejected])
            #expect(try await store.commands(site: F.siteA).map(\.command.id) == ["cmd-1", "cmd-2"])

            let payload = try await server.psql("SELECT payload->>'capKW', status FROM commands WHERE id = 'cmd-1'")
            #expect(payload.psqlRows == [["4000", "acknowledged"]])

            await #expect(throws: HubStoreError.self) {
                try await store.recordOutcome(commandID: "no-such", status: .acknowledged, outcome: "", at: t)
            }
            await #expect(throws: HubStoreError.self) {  // the id is taken
                try await store.recordCommand(cap)
            }
            await #expect(throws: HubStoreError.self) {  // expires before it is issued
                try await store.recordCommand(HubCommand(id: "cmd-3", site: F.siteA, issuedAt: t, expiresAt: t, payloadJSON: "{}"))
            }
            await #expect(throws: HubStoreError.self) {  // not JSON
                try await store.recordCommand(HubCommand(id: "cmd-4", site: F.siteA, issuedAt: t, expiresAt: t + 1, payloadJSON: "{nope"))
            }
        }
    }
}

extension StoreRoundTripTests {
    /// The host's command records (HostCommands.swift): written in order with the rest of a batch; a batch written
    /// again (a hub killed after the store committed it, before the spool's offset moved) changes nothing; an outcome
    /// of a command the store never had is skipped, and the rest of its batch lands.
    @Test func commandRecordsLandOnceAndAReplayChangesNothing() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            let cap = HubCommand(id: "hub-7-1", site: F.siteA, issuedAt: t, expiresAt: t + 3_600_000,
                                 payloadJSON: #"{"kind": "dr-event-create", "cap_kw": 3500}"#)
            let batch: [HubRecord] = [
                F.nodeBirth(F.siteA, bdSeq: 1, at: t - 1000),
                .command(cap),
                .commandOutcome(commandID: "hub-7-1", status: .acknowledged, outcome: "cap 3500 kW in force", at: t + 900),
                .commandOutcome(commandID: "hub-7-1", status: .rejected, outcome: "late duplicate", at: t + 1900),
                .commandOutcome(commandID: "hub-7-404", status: .acknowledged, outcome: "", at: t + 950),
            ]
            try await store.write(batch)
            try await store.write(batch)
            let stored = try #require(try await store.command(id: "hub-7-1"))
            #expect(stored.status == .acknowledged && stored.outcome == "cap 3500 kW in force" && stored.ackedAt == t + 900)
            #expect(stored.command == cap)
            #expect(try await store.commandOutcomes(id: "hub-7-1").map(\.status) == [.acknowledged, .rejected])
            let rows = try await server.psql("SELECT (SELECT count(*) FROM commands), (SELECT count(*) FROM command_outcomes), (SELECT count(*) FROM births)")
            // The births are not keyed: a replayed birth is kept twice (it is the same birth, at the same time).
            #expect(rows.psqlRows == [["1", "2", "2"]], "\(rows)")
        }
    }
}

@Suite struct StorePartitionTests {
    typealias F = StoreFixture

    static func dayName(_ ms: UInt64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd"
        return "samples_" + f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    @Test func samplesArePartitionedByDayAndRetentionDropsOldDays() async throws {
        try await F.withFreshStore { server, store in
            let t = F.t0
            let days: [UInt64] = [t - 10 * F.day, t - 8 * F.day, t - F.day, t]
            for (i, at) in days.enumerated() {
                try await store.write([.samples([
                    F.sample(F.siteA, nil, "Site/Import kW", at: at, .double(Double(i))),
                    F.sample(F.siteA, nil, "Site/Import kW", at: at + F.minute, .double(Double(i) + 0.5)),
                ])])
            }
            let expected = days.map(Self.dayName)
            #expect(try await store.samplePartitions() == expected)
            // Independently, from the catalog: each partition is a child of samples holding its own day's rows.
            let children = try await server.psql("""
                SELECT c.relname, count(x.*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                LEFT JOIN samples x ON x.tableoid = c.oid
                WHERE i.inhparent = 'samples'::regclass GROUP BY c.relname ORDER BY c.relname
                """).psqlRows
            #expect(children == expected.map { [$0, "2"] })
            let bounds = try await server.psql("""
                SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.relname = '\(expected[3])'
                """)
            #expect(bounds.contains("FOR VALUES FROM ('2026-11-27 00:00:00+00') TO ('2026-11-28 00:00:00+00')"))

            // Keep 7 days before today: the -10 and -8 day partitions go, whole.
            let now = Date(timeIntervalSince1970: Double(t) / 1000)
            #expect(try await store.retention(days: 7, now: now) == Array(expected[0...1]))
            #expect(try await store.samplePartitions() == Array(expected[2...3]))
            #expect(try await store.retention(days: 7, now: now).isEmpty)
            let history = try await store.history(site: F.siteA, device: nil, metric: "Site/Import kW", since: t - 11 * F.day, until: t + F.day)
            #expect(history.map(\.at) == [t - F.day, t - F.day + F.minute, t, t + F.minute])
            // `latest` is not part of retention.
            #expect(try await store.latestValues(site: F.siteA).first?.at == t + F.minute)

            // A sample for a day whose partition retention dropped gets it back (created on demand).
            try await store.write([.samples([F.sample(F.siteA, nil, "Site/Import kW", at: t - 10 * F.day, .double(9), historical: true)])])
            #expect(try await store.samplePartitions().first == expected[0])

            // Ahead of time: today and tomorrow.
            let later = t + 30 * F.day
            try await store.prepareSamplePartitions(now: Date(timeIntervalSince1970: Double(later) / 1000))
            let names = try await store.samplePartitions()
            #expect(names.suffix(2) == [Self.dayName(later), Self.dayName(later + F.day)])
        }
    }
}
