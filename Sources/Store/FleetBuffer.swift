// The fleet uplink's store-and-forward buffer (issue 17): what the edge node could not send while
// the broker was unreachable, kept until it has been sent. Bounded: appending past the capacity
// evicts the oldest rows in the same transaction and logs how many (event_log, kind fleet).

import Foundation
import GRDB

/// One buffered item: an encoded payload (e.g. a Sparkplug NDATA's metrics) with its sample time.
public struct FleetBufferRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "fleet_buffer"
    public enum Kind: String, Codable, Sendable, DatabaseValueConvertible { case sample, event }
    /// Insertion order: oldest first.
    public var id: Int64?
    /// Sample time, seconds since the epoch.
    public var at: Double
    public var kind: Kind
    public var payload: Data

    public init(at: Double, kind: Kind, payload: Data) {
        self.at = at
        self.kind = kind
        self.payload = payload
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

extension Store {
    /// Appends `rows` (one transaction). If the buffer then holds more than `capacity` rows, the oldest
    /// are deleted and an event says how many and from when to when. Returns the number evicted.
    @discardableResult
    public func bufferForFleet(_ rows: [FleetBufferRecord], capacity: Int, now: Double) throws -> Int {
        guard capacity > 0 else { throw StoreError(.invalid, "fleet buffer capacity must be positive, got \(capacity)") }
        return try db.write { db in try Self.append(rows, capacity: capacity, now: now, db) }
    }

    private static func append(_ rows: [FleetBufferRecord], capacity: Int, now: Double, _ db: Database) throws -> Int {
        for var r in rows { try r.insert(db) }
        let count = try FleetBufferRecord.fetchCount(db)
        let excess = count - capacity
        guard excess > 0 else { return 0 }
        // The oldest `excess` rows: only their first and last sample times are needed for the log.
        let ids = try Int64.fetchAll(db, sql: "SELECT id FROM fleet_buffer ORDER BY id LIMIT ?", arguments: [excess])
        guard let firstID = ids.first, let lastID = ids.last,
              let first = try FleetBufferRecord.fetchOne(db, key: firstID), let last = try FleetBufferRecord.fetchOne(db, key: lastID)
        else { return 0 }
        try FleetBufferRecord.filter(Column("id") <= lastID).deleteAll(db)
        var e = EventEntry(at: now, kind: .fleet, subject: "buffer",
                           message: "fleet buffer full (\(capacity) rows): evicted the \(excess) oldest, sampled \(first.at) to \(last.at)")
        try e.insert(db)
        return excess
    }

    /// The oldest `limit` buffered rows, oldest first.
    public func fleetBufferOldest(limit: Int) throws -> [FleetBufferRecord] {
        try db.read { db in try FleetBufferRecord.order(Column("id")).limit(limit).fetchAll(db) }
    }

    /// Removes rows up to and including `id`, once they have been sent.
    @discardableResult
    public func removeFleetBuffer(through id: Int64) throws -> Int {
        try db.write { db in try FleetBufferRecord.filter(Column("id") <= id).deleteAll(db) }
    }

    public func fleetBufferCount() throws -> Int {
        try db.read { db in try FleetBufferRecord.fetchCount(db) }
    }

    // The same, for async callers (the edge node service): GRDB runs them on its own queue, so the caller's
    // task suspends instead of blocking a thread of the cooperative pool.

    @discardableResult
    public func bufferForFleet(_ rows: [FleetBufferRecord], capacity: Int, now: Double) async throws -> Int {
        guard capacity > 0 else { throw StoreError(.invalid, "fleet buffer capacity must be positive, got \(capacity)") }
        return try await db.write { db in try Self.append(rows, capacity: capacity, now: now, db) }
    }

    public func fleetBufferOldest(limit: Int) async throws -> [FleetBufferRecord] {
        try await db.read { db in try FleetBufferRecord.order(Column("id")).limit(limit).fetchAll(db) }
    }

    @discardableResult
    public func removeFleetBuffer(through id: Int64) async throws -> Int {
        try await db.write { db in try FleetBufferRecord.filter(Column("id") <= id).deleteAll(db) }
    }

    public func fleetBufferCount() async throws -> Int {
        try await db.read { db in try FleetBufferRecord.fetchCount(db) }
    }
}
