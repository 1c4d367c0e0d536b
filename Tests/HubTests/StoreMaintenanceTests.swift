// The store's maintenance on a manual clock against a throwaway PostgreSQL: a pass at start, then one per period;
// old day partitions dropped, today's and tomorrow's created; a failed pass (PostgreSQL refuses the drop) is logged
// and the next period's pass does the work; crossing midnight moves both ends.

import Basics
import Foundation
import Hub
import Logging
import Synchronization
import Testing
import TestSupport

/// Collects log records (message and level).
final class CapturedLogs: LogHandler, Sendable {
    struct Record: Sendable { var level: Logger.Level; var message: String; var metadata: [String: String] }
    let stored = Mutex<[Record]>([])
    var records: [Record] { stored.withLock { $0 } }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .info }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        stored.withLock { $0.append(Record(level: level, message: "\(message)", metadata: (metadata ?? [:]).mapValues { "\($0)" })) }
    }
}

@Suite("Hub store maintenance", .serialized, .timeLimit(.minutes(3)))
struct StoreMaintenanceTests {
    /// 2026-11-27 10:00:00 UTC.
    static let base = Date(timeIntervalSince1970: 1_795_773_600)

    @Test func retentionLimitsAreValidated() {
        #expect(HubRetention.problem(days: 1) == nil && HubRetention.problem(days: 30) == nil && HubRetention.problem(days: 3650) == nil)
        #expect(HubRetention.problem(days: 0) == "--retention-days must be 1…3650 (days of samples kept), not 0")
        #expect(HubRetention.problem(days: 3651) != nil && HubRetention.problem(days: -5) != nil)
    }

    @Test func dropsOldPartitionsCreatesTomorrowsAndRetriesAFailureNextPeriod() async throws {
        try await StoreFixture.withFreshStore { server, store in
            // Partitions of 40, 31, 30 and 29 days ago (before the hub ran its maintenance).
            for back in [40.0, 31, 30, 29] {
                try await store.prepareSamplePartitions(now: Self.base.addingTimeInterval(-back * 86_400), daysAhead: 0)
            }
            #expect(try await store.samplePartitions() == ["samples_20261018", "samples_20261027", "samples_20261028", "samples_20261029"])
            // Something depends on the oldest partition: PostgreSQL refuses to drop it, so the first pass fails.
            _ = try await server.psql("CREATE VIEW hold_old AS SELECT * FROM samples_20261018")

            let clock = ManualClock()
            let capture = CapturedLogs()
            let logger = Logger(label: "maintenance-test", factory: { _ in capture })
            let (passes, passesIn) = AsyncStream.makeStream(of: StoreMaintenancePass.self)
            let service = StoreMaintenanceService(store: store, retentionDays: 30, period: .seconds(3600), clock: clock,
                                                  now: { Self.base.addingTimeInterval(Double(clock.now.offset.components.seconds)) },
                                                  logger: logger, observe: { passesIn.yield($0) })
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await service.run() }
                var it = passes.makeAsyncIterator()

                // At start: tomorrow's partition is made, retention fails, the failure is logged.
                let first = try #require(await it.next())
                #expect(first.at == Self.base)
                #expect(first.dropped.isEmpty)
                let failure = try #require(first.error)
                #expect(failure.contains("retention") && failure.contains("depend"), "\(failure)")
                let errors = capture.records.filter { $0.level == .error }
                #expect(errors.count == 1)
                #expect(errors.first?.message == "hub store: maintenance failed; trying again next period")
                #expect(errors.first?.metadata["error"]?.contains("depend") == true)
                #expect(try await store.samplePartitions().suffix(2) == ["samples_20261127", "samples_20261128"])
                #expect(try await store.samplePartitions().first == "samples_20261018")

                // Nothing more happens until the period has passed.
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(3599))
                await clock.waitForSleepers(1)
                #expect(try await store.samplePartitions().first == "samples_20261018")

                // The obstacle goes; the next period's pass drops what is older than 30 days.
                _ = try await server.psql("DROP VIEW hold_old")
                clock.advance(by: .seconds(1))
                let second = try #require(await it.next())
                #expect(second.error == nil)
                #expect(second.at == Self.base.addingTimeInterval(3600))
                #expect(second.dropped == ["samples_20261018", "samples_20261027"])
                #expect(try await store.samplePartitions() == ["samples_20261028", "samples_20261029", "samples_20261127", "samples_20261128"])

                // Past midnight (one pass per period, whatever the jump): the window moves by a day at both ends.
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(13 * 3600))
                let third = try #require(await it.next())
                #expect(third.error == nil)
                #expect(third.dropped == ["samples_20261028"])
                #expect(try await store.samplePartitions() == ["samples_20261029", "samples_20261127", "samples_20261128", "samples_20261129"])
                #expect(capture.records.filter { $0.level == .error }.count == 1)
                #expect(capture.records.contains { $0.message == "hub store: retention dropped old samples partitions" })

                tasks.cancelAll()
                try await tasks.waitForAll()
            }
        }
    }
}
