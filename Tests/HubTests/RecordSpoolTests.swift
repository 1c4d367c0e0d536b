// The hub's record spool (RecordSpool.swift): the codec, the queue that spills to it, and what a later hub finds.

import Foundation
@testable import Hub
import Sparkplug
import Testing

@Suite("Hub record spool")
struct RecordSpoolTests {
    static func tempDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sy-spool-\(UUID().uuidString)").path
    }

    static let site = SiteKey(group: "ERCOT", edge: "tx-01")

    /// One batch of every kind, with a null sample, a device, a historical sample and a birth's metrics, and a command
    /// with an outcome.
    static func batch(_ i: Int) -> [HubRecord] {
        let at = 1_795_680_000_000 + UInt64(i) * 1000
        return [
            .birth(BirthRecord(site: site, device: i % 2 == 0 ? nil : "pdu-\(i)", bdSeq: UInt64(i % 256), at: at, metrics: [
                SparkplugMetric(name: "Site/Import kW", alias: 7, timestamp: at, value: .double(Double(i) * 1.5)),
                SparkplugMetric(name: "Site/Mode", timestamp: at, value: .string("mining ⚡ \(i)")),
                SparkplugMetric(name: "Site/Offer/Step 1 kW", timestamp: at, null: .double),
            ])),
            .samples([
                MetricSample(site: site, device: nil, name: "Site/Import kW", at: at, value: .double(1234.5 + Double(i)), historical: false),
                MetricSample(site: site, device: "c-3", name: "Power kW", at: at - 500, value: .float(12.25), historical: true),
                MetricSample(site: SiteKey(group: "PJM", edge: "pa-02"), device: nil, name: "Site/Alarms", at: at, value: nil, historical: false),
                MetricSample(site: site, device: nil, name: "Site/Config Version", at: at, value: .int64(-Int64(i)), historical: false),
                MetricSample(site: site, device: nil, name: "Site/Running", at: at, value: .boolean(i % 3 == 0), historical: true),
            ]),
            .death(site: site, device: i % 2 == 0 ? nil : "pdu-\(i)", bdSeq: i % 3 == 0 ? nil : UInt64(i), at: at + 1),
            .sequenceGap(site: site, expected: UInt8(i % 256), received: UInt8((i + 3) % 256), at: at + 2),
            .command(HubCommand(id: "hub-1-\(i)", site: site, device: i % 2 == 0 ? nil : "asic-\(i)", issuedAt: at, expiresAt: at + 7_200_000,
                                payloadJSON: #"{"kind": "dr-event-create", "cap_kw": \#(i * 100), "reason": "ERCOT EEA ⚡"}"#)),
            .commandOutcome(commandID: "hub-1-\(i)", status: HubCommandStatus.allCases.filter { $0 != .issued }[i % 4],
                            outcome: i % 3 == 0 ? "" : "cap \(i * 100) kW applied", at: at + 900),
        ]
    }

    /// Takes everything, committing each take as the writer does after a store write.
    static func drain(_ queue: RecordQueue) throws -> [HubRecord] {
        var taken: [HubRecord] = []
        while true {
            let (records, _, through) = try queue.take(maxRecords: 1000)
            if records.isEmpty { return taken }
            taken += records
            if let through { try queue.commit(through: through) }
        }
    }

    @Test func everyKindOfRecordReadsBackAsItWasWritten() throws {
        for i in 0..<20 {
            let b = Self.batch(i)
            #expect(try RecordSpoolCodec.decode(RecordSpoolCodec.encode(b)) == b)
        }
        // A cut body is refused, not misread.
        let body = RecordSpoolCodec.encode(Self.batch(1))
        #expect(throws: (any Error).self) { try RecordSpoolCodec.decode(Array(body.dropLast(3))) }
    }

    @Test func aFullMemoryQueueSpillsToTheSpoolAndNothingIsDroppedOrReordered() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queue = RecordQueue(capacity: 3, spool: try RecordSpool(directory: dir))
        var taken: [HubRecord] = []
        // 10 batches against room for 3: 7 wait on disk only.
        for i in 0..<10 { #expect(queue.push(Self.batch(i)).ok) }
        // A small take (one batch at most each time) returns the three in memory, then the disk ones in order;
        // batches pushed while the disk ones are being read go behind them.
        var rounds = 0
        while true {
            let (records, _, through) = try queue.take(maxRecords: 1)
            if records.isEmpty { break }
            taken += records
            if let through { try queue.commit(through: through) }
            rounds += 1
            if rounds == 5 { for i in 10..<12 { #expect(queue.push(Self.batch(i)).ok) } }
        }
        #expect(taken == (0..<12).flatMap { Self.batch($0) })
        #expect(queue.spool?.pendingBytes == 0)
        // Caught up: the next batch waits in memory again (taken without reading the disk).
        #expect(queue.push(Self.batch(99)).ok)
        #expect(try queue.take(maxRecords: 100).records == Self.batch(99))
    }

    @Test func withoutASpoolAFullQueueDropsAndSaysSo() throws {
        let queue = RecordQueue(capacity: 2)
        #expect(queue.push(Self.batch(0)).ok && queue.push(Self.batch(1)).ok)
        #expect(!queue.push(Self.batch(2)).ok)
        // A command (or its outcome) is never refused for lack of room: it waits in memory past the capacity.
        let command = Array(Self.batch(3).suffix(2))
        #expect(queue.push(command, command: true).ok)
        #expect(!queue.push(Self.batch(4)).ok)
        #expect(try queue.take(maxRecords: 100).records == Self.batch(0) + Self.batch(1) + command)
    }

    @Test func aCommandIsSyncedToTheSpoolAndReadBackInOrderBehindTheBatchesOnDisk() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queue = RecordQueue(capacity: 1, spool: try RecordSpool(directory: dir))
        let command = Array(Self.batch(9).suffix(2))
        #expect(queue.push(Self.batch(0)).ok && queue.push(Self.batch(1)).ok)
        #expect(queue.push(command, command: true, sync: true).ok)
        #expect(queue.push(Self.batch(2)).ok)
        // A kill now: the next hub's queue has all four batches, the command in its place.
        queue.abandonSpool()
        let next = RecordQueue(capacity: 1, spool: try RecordSpool(directory: dir))
        #expect(try Self.drain(next) == Self.batch(0) + Self.batch(1) + command + Self.batch(2))
    }

    @Test func aKilledHubsUncommittedBatchesComeFirstForTheNextAndATornTailIsCut() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try RecordSpool(directory: dir)
            let queue = RecordQueue(capacity: 100, spool: spool)
            for i in 0..<6 { #expect(queue.push(Self.batch(i)).ok) }
            // The store got the first two batches' write.
            let first = try queue.take(maxRecords: 2 * Self.batch(0).count)
            #expect(first.records == Self.batch(0) + Self.batch(1))
            try queue.commit(through: try #require(first.through))
            // A kill in the middle of the seventh frame's write: half of it is on disk.
            let frame = RecordSpoolCodec.frame(Self.batch(6))
            _ = try spool.append(Array(frame.prefix(frame.count / 2)))
            queue.abandonSpool()
        }
        let spool = try RecordSpool(directory: dir)
        let queue = RecordQueue(capacity: 100, spool: spool)
        #expect(queue.push(Self.batch(7)).ok)
        let taken = try Self.drain(queue)
        // Batches 2…5 (uncommitted), then the new one; the committed ones and the torn frame are not there.
        #expect(taken == [2, 3, 4, 5, 7].flatMap { Self.batch($0) })
    }

    @Test func aSecondHubOnTheSameSpoolIsRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try RecordSpool(directory: dir)
        let error = #expect(throws: RecordSpoolError.self) { try RecordSpool(directory: dir) }
        #expect(error?.description.contains("another hub is using this spool directory") == true, "\(String(describing: error))")
        first.abandon()
        _ = try RecordSpool(directory: dir)
    }

    /// A lock the previous holder lets go of within half a second is taken, not refused: the hub it belonged to may
    /// still be exiting, or a child process just being started holds a copy of the descriptor until its exec (a
    /// fresh-clone run lost a reopen so).
    @Test func aLockReleasedWithinHalfASecondIsTakenNotRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try RecordSpool(directory: dir)
        // The other holder: a thread that lets go 0.1 s from now.
        let releaser = Thread {
            usleep(100_000)
            first.abandon()
        }
        releaser.start()
        let second = try RecordSpool(directory: dir)
        #expect(first.isClosed)
        #expect(second.pendingBytes == 0)
    }

    @Test func onceEverythingIsCommittedALargeSpoolStartsAgainEmpty() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try RecordSpool(directory: dir, compactBytes: 4096)
        let queue = RecordQueue(capacity: 1, spool: spool)
        for i in 0..<20 { #expect(queue.push(Self.batch(i)).ok) }
        let grown = spool.end
        #expect(grown > 4096)
        let taken = try Self.drain(queue)
        #expect(taken == (0..<20).flatMap { Self.batch($0) })
        let size = try #require(try FileManager.default.attributesOfItem(atPath: spool.path)[.size] as? Int)
        #expect(spool.end == 0 && spool.committed == 0 && size == 0)
        // And a hub opening it finds nothing to write again.
        spool.abandon()
        #expect(try RecordSpool(directory: dir).pendingBytes == 0)
    }
}
