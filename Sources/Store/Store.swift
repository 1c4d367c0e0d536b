// The daemon's database: GRDB over SQLite in the state directory (WAL), or in
// memory for tests. Every write is one transaction, so a crash leaves either
// the old or the new row, never half of one.

import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

public struct StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// If-Match named a version that is no longer current.
        case conflict(current: Int)
        case notFound
        case invalid
        case io
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

public final class Store: Sendable {
    public let db: any DatabaseWriter
    /// Where the database file is (nil in memory).
    public let path: String?

    init(db: any DatabaseWriter, path: String?) throws {
        self.db = db
        self.path = path
        try Migrations.migrator.migrate(db)
    }

    /// Opens (creating if needed) `switchyard.sqlite` in `directory`, in WAL mode. The directory is made
    /// 0700 and the database 0600 (SQLite gives its -wal and -shm files the database's mode): it holds
    /// token hashes, the audit trail and every configuration.
    public static func open(directory: String) throws -> Store {
        try PrivateFiles.prepareDirectory(directory)
        let path = URL(fileURLWithPath: directory).appendingPathComponent("switchyard.sqlite").path
        try PrivateFiles.createPrivate(path)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) { chmod(path + suffix, 0o600) }
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        do {
            return try Store(db: try DatabasePool(path: path, configuration: config), path: path)
        } catch {
            throw StoreError(.io, "\(path): cannot open the database: \(error)")
        }
    }

    /// A fresh database in memory (tests).
    public static func inMemory() throws -> Store {
        try Store(db: try DatabaseQueue(), path: nil)
    }

    /// Names of the migrations applied, in order.
    public func appliedMigrations() throws -> [String] {
        try db.read { db in try Migrations.migrator.appliedMigrations(db) }
    }

    // MARK: Config versions

    public func latestConfig() throws -> ConfigVersion? {
        try db.read { db in try ConfigVersion.order(Column("version").desc).fetchOne(db) }
    }

    public func config(version: Int) throws -> ConfigVersion? {
        try db.read { db in try ConfigVersion.fetchOne(db, key: version) }
    }

    /// Newest first.
    public func configHistory(limit: Int = 50) throws -> [ConfigVersion] {
        try db.read { db in try ConfigVersion.order(Column("version").desc).limit(limit).fetchAll(db) }
    }

    /// Stores `yaml` as the next version, atomically, if the current version is
    /// still `expected` (optimistic concurrency; nil means "no version yet" is expected
    /// only when `expected` is 0). Also writes the audit row in the same transaction.
    @discardableResult
    public func appendConfig(yaml: String, author: String, comment: String, at: Double, expected: Int,
                             rollbackOf: Int? = nil, audit: AuditEntry? = nil) throws -> ConfigVersion {
        try db.write { db in
            let current = try Int.fetchOne(db, sql: "SELECT MAX(version) FROM config_version") ?? 0
            guard current == expected else {
                throw StoreError(.conflict(current: current), "config is at version \(current), not \(expected): re-read it and try again")
            }
            let v = ConfigVersion(version: current + 1, yaml: yaml, author: author, createdAt: at, comment: comment, rollbackOf: rollbackOf)
            try v.insert(db)
            if var a = audit {
                a.target = "config v\(v.version)"
                try a.insert(db)
            }
            return v
        }
    }

    // MARK: Audit

    public func audit(_ entry: AuditEntry) throws {
        try db.write { db in var e = entry; try e.insert(db) }
    }

    /// `audit` through GRDB's async API: the write runs on GRDB's queue, not on a cooperative thread.
    public func auditAsync(_ entry: AuditEntry) async throws {
        try await db.write { db in var e = entry; try e.insert(db) }
    }

    /// Newest first.
    public func auditLog(limit: Int = 100) throws -> [AuditEntry] {
        try db.read { db in try AuditEntry.order(Column("id").desc).limit(limit).fetchAll(db) }
    }

    // MARK: Events

    public func logEvents(_ entries: [EventEntry]) throws {
        guard !entries.isEmpty else { return }
        try db.write { db in for var e in entries { try e.insert(db) } }
    }

    /// Newest first.
    public func eventLog(limit: Int = 100, kind: EventEntry.Kind? = nil) throws -> [EventEntry] {
        try db.read { db in
            var q = EventEntry.order(Column("id").desc)
            if let kind { q = q.filter(Column("kind") == kind.rawValue) }
            return try q.limit(limit).fetchAll(db)
        }
    }

    // MARK: Decisions and the time series

    /// Writes a tick's decision, the finished minutes of the series, and events, in one transaction.
    public func record(decision: DecisionEntry?, minutes: [MinuteSample], events: [EventEntry]) throws {
        try db.write { db in
            if var d = decision { try d.insert(db) }
            for m in minutes { try m.upsert(db) }
            for var e in events { try e.insert(db) }
        }
    }

    /// `record` through GRDB's async API (the recorder drains ticks on the cooperative pool).
    public func recordAsync(decision: DecisionEntry?, minutes: [MinuteSample], events: [EventEntry]) async throws {
        try await db.write { db in
            if var d = decision { try d.insert(db) }
            for m in minutes { try m.upsert(db) }
            for var e in events { try e.insert(db) }
        }
    }

    /// `pruneDecisions` through GRDB's async API.
    @discardableResult
    public func pruneDecisionsAsync(before: Double) async throws -> Int {
        try await db.write { db in try DecisionEntry.filter(Column("at") < before).deleteAll(db) }
    }

    /// Newest first.
    public func decisions(limit: Int = 100) throws -> [DecisionEntry] {
        try db.read { db in try DecisionEntry.order(Column("id").desc).limit(limit).fetchAll(db) }
    }

    /// Retention: deletes decisions older than `before`; returns how many.
    @discardableResult
    public func pruneDecisions(before: Double) throws -> Int {
        try db.write { db in
            try DecisionEntry.filter(Column("at") < before).deleteAll(db)
        }
    }

    public func minuteSamples(from: Int64, to: Int64) throws -> [MinuteSample] {
        try db.read { db in
            try MinuteSample.filter(Column("minute") >= from && Column("minute") <= to).order(Column("minute")).fetchAll(db)
        }
    }

    // MARK: Tokens

    public func insertToken(_ t: TokenRecord, audit: AuditEntry? = nil) throws {
        try db.write { db in
            try t.insert(db)
            if var a = audit { a.target = t.id; try a.insert(db) }
        }
    }

    public func token(hash: String) throws -> TokenRecord? {
        try db.read { db in try TokenRecord.filter(Column("secretHash") == hash).fetchOne(db) }
    }

    /// `token(hash:)` through GRDB's async API: the read runs on GRDB's queue, not on a cooperative thread.
    public func tokenAsync(hash: String) async throws -> TokenRecord? {
        try await db.read { db in try TokenRecord.filter(Column("secretHash") == hash).fetchOne(db) }
    }

    public func tokens() throws -> [TokenRecord] {
        try db.read { db in try TokenRecord.order(Column("createdAt")).fetchAll(db) }
    }

    /// Revokes a token; false if there is no such token (or it was already revoked).
    @discardableResult
    public func revokeToken(id: String, at: Double, audit: AuditEntry? = nil) throws -> Bool {
        try db.write { db in
            guard var t = try TokenRecord.fetchOne(db, key: id), t.revokedAt == nil else { return false }
            t.revokedAt = at
            try t.update(db)
            if var a = audit { a.target = id; try a.insert(db) }
            return true
        }
    }
}
