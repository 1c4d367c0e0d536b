// The fleet store-and-forward buffer: bounded, oldest-first eviction that is logged, and
// committed rows that are there after reopening the database.

import Foundation
import GRDB
import Testing
@testable import Store

@Suite("Fleet store-and-forward buffer")
struct FleetBufferTests {
    func row(_ i: Int) -> FleetBufferRecord { FleetBufferRecord(at: Double(i), kind: .sample, payload: Data([UInt8(i % 256)])) }

    @Test func migrationCreatesTheTable() throws {
        let s = try Store.inMemory()
        #expect(try s.appliedMigrations().last == "v2-fleet-buffer")
        #expect(try s.fleetBufferCount() == 0)
    }

    @Test func keepsOrderAndRemovesWhatWasSent() throws {
        let s = try Store.inMemory()
        #expect(try s.bufferForFleet((0..<5).map(row), capacity: 10, now: 100) == 0)
        let oldest = try s.fleetBufferOldest(limit: 3)
        #expect(oldest.map(\.at) == [0, 1, 2])
        #expect(try s.removeFleetBuffer(through: oldest.last!.id!) == 3)
        #expect(try s.fleetBufferOldest(limit: 10).map(\.at) == [3, 4])
    }

    @Test func evictsTheOldestAndLogsIt() throws {
        let s = try Store.inMemory()
        try s.bufferForFleet((0..<8).map(row), capacity: 10, now: 100)
        #expect(try s.bufferForFleet((8..<13).map(row), capacity: 10, now: 200) == 3)
        #expect(try s.fleetBufferOldest(limit: 100).map(\.at) == (3..<13).map(Double.init))
        let events = try s.eventLog(limit: 10, kind: .fleet)
        #expect(events.count == 1)
        #expect(events.first?.message == "fleet buffer full (10 rows): evicted the 3 oldest, sampled 0.0 to 2.0")
        #expect(throws: StoreError.self) { try s.bufferForFleet([row(0)], capacity: 0, now: 1) }
    }

    @Test func committedRowsSurviveReopening() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleetbuf-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let s = try Store.open(directory: dir)
            try s.bufferForFleet((0..<50).map(row), capacity: 1000, now: 1)
            // Dropped without any shutdown step of ours (GRDB still closes its connections: this is not a kill -9 test).
        }
        let reopened = try Store.open(directory: dir)
        #expect(try reopened.fleetBufferOldest(limit: 100).map(\.at) == (0..<50).map(Double.init))
    }

    /// The async forms the edge node service uses (GRDB's own queue): the same order, eviction and log.
    @Test func theAsyncFormsKeepOrderEvictAndLog() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleetbuf-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try Store.open(directory: dir)
        #expect(try await s.bufferForFleet((0..<8).map(row), capacity: 10, now: 100) == 0)
        #expect(try await s.bufferForFleet((8..<13).map(row), capacity: 10, now: 200) == 3)
        #expect(try await s.fleetBufferCount() == 10)
        let oldest = try await s.fleetBufferOldest(limit: 4)
        #expect(oldest.map(\.at) == [3, 4, 5, 6])
        #expect(try await s.removeFleetBuffer(through: oldest.last!.id!) == 4)
        #expect(try await s.fleetBufferOldest(limit: 100).map(\.at) == (7..<13).map(Double.init))
        #expect(try s.eventLog(limit: 10, kind: .fleet).map(\.message) == ["fleet buffer full (10 rows): evicted the 3 oldest, sampled 0.0 to 2.0"])
        await #expect(throws: StoreError.self) { try await s.bufferForFleet([row(0)], capacity: 0, now: 1) }
    }
}

