// Shared by the hub store tests: a migrated HubStore on a throwaway PostgreSQL cluster, and record builders.

import Foundation
import Hub
import PostgresNIO
import Sparkplug
import TestSupport

enum StoreFixture {
    /// 2026-11-27 10:00:00 UTC, ms since the epoch.
    static let t0: UInt64 = 1_795_773_600_000
    static let minute: UInt64 = 60_000
    static let day: UInt64 = 86_400_000
    static let siteA = SiteKey(group: "ERCOT", edge: "site-a")
    static let siteB = SiteKey(group: "CAISO", edge: "site-b")

    static func configuration(_ server: PostgresServer) -> HubStoreConfiguration {
        HubStoreConfiguration(host: "127.0.0.1", port: server.port, username: server.username, database: server.database)
    }

    static var logger: Logger {
        var l = Logger(label: "hub-store-test")
        // .error: postgres-nio warns when a query waits for the pool's run() to start, which withRunning races.
        l.logLevel = .error
        return l
    }

    /// A migrated store on `server`, running for the duration of `body`.
    static func withStore<T: Sendable>(_ server: PostgresServer, _ body: (HubStore) async throws -> T) async throws -> T {
        try await HubStore.withRunning(configuration(server), logger: logger) { store in
            try await store.migrate()
            return try await body(store)
        }
    }

    /// A fresh cluster and a migrated store on it.
    static func withFreshStore<T: Sendable>(_ body: (PostgresServer, HubStore) async throws -> T) async throws -> T {
        try await withPostgres { server in
            try await withStore(server) { store in try await body(server, store) }
        }
    }

    static func sample(_ site: SiteKey, _ device: String?, _ name: String, at: UInt64, _ value: MetricValue?,
                       historical: Bool = false) -> MetricSample {
        MetricSample(site: site, device: device, name: name, at: at, value: value, historical: historical)
    }

    static func nodeBirth(_ site: SiteKey, bdSeq: UInt64, at: UInt64, importKW: Double = 1200) -> HubRecord {
        .birth(BirthRecord(site: site, device: nil, bdSeq: bdSeq, at: at, metrics: [
            SparkplugMetric(name: "bdSeq", timestamp: at, value: .int64(Int64(bdSeq))),
            SparkplugMetric(name: "Node Control/Rebirth", timestamp: at, value: .boolean(false)),
            SparkplugMetric(name: "Site/Import kW", timestamp: at, value: .double(importKW)),
            SparkplugMetric(name: "Site/Mode", timestamp: at, value: .string("auto")),
            SparkplugMetric(name: "Site/Meter kWh", timestamp: at, value: .uint64(9_007_199_254_740_993)),  // 2^53 + 1
            SparkplugMetric(name: "Site/Price USD/MWh", timestamp: at, null: .double),
        ]))
    }

    static func deviceBirth(_ site: SiteKey, _ device: String, at: UInt64, kW: Double) -> HubRecord {
        .birth(BirthRecord(site: site, device: device, bdSeq: nil, at: at, metrics: [
            SparkplugMetric(name: "Power kW", timestamp: at, value: .double(kW)),
            SparkplugMetric(name: "Running", timestamp: at, value: .boolean(true)),
        ]))
    }
}

extension String {
    /// psql -At output as rows of `|`-separated columns.
    var psqlRows: [[String]] {
        split(separator: "\n", omittingEmptySubsequences: true).map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
    }
}
