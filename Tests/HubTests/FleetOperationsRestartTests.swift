// A hub restarted in the middle of a fleet shed or a rollout carries on with it (FleetOperations' journal): the
// restored shed has the same shares and caps, sends nothing while its sites are still being reborn to the new hub,
// and re-allocates as before once a site is really gone. The journal in PostgreSQL keeps what is unfinished and what
// finished lately, and nothing older.

import Foundation
@testable import Hub
import Synchronization
import Testing
import TestSupport

/// The journal in memory (what the store keeps, without PostgreSQL).
final class MemoryJournal: FleetOperationsJournal {
    let rows = Mutex<[(id: String, kind: String, finished: Bool, state: Data)]>([])
    let failNext = Mutex(0)

    func saveOperation(id: String, kind: String, finished: Bool, state: Data) async throws {
        struct Refused: Error {}
        if failNext.withLock({ n in defer { n = max(0, n - 1) }; return n > 0 }) { throw Refused() }
        rows.withLock { r in
            if let i = r.firstIndex(where: { $0.id == id }) { r[i] = (id, kind, finished, state) } else { r.append((id, kind, finished, state)) }
        }
    }

    func operations(finishedWithin recentS: Double) async throws -> [(id: String, kind: String, state: Data)] {
        rows.withLock { $0.map { ($0.id, $0.kind, $0.state) } }
    }
}

/// A journal whose writes wait until `open()` (PostgreSQL cut off: a query that neither returns nor fails).
final class BlockingJournal: FleetOperationsJournal {
    let inner = MemoryJournal()
    private let gate = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiting = gate.withLock { g in
            g.open = true
            defer { g.waiters = [] }
            return g.waiters
        }
        for c in waiting { c.resume() }
    }

    func saveOperation(id: String, kind: String, finished: Bool, state: Data) async throws {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let go = gate.withLock { g -> Bool in
                if g.open { return true }
                g.waiters.append(c)
                return false
            }
            if go { c.resume() }
        }
        try await inner.saveOperation(id: id, kind: kind, finished: finished, state: state)
    }

    func operations(finishedWithin recentS: Double) async throws -> [(id: String, kind: String, state: Data)] {
        try await inner.operations(finishedWithin: recentS)
    }
}

@Suite struct FleetOperationsRestartTests {
    typealias T = FleetOperationsTests

    @Test func aRestartedHubCarriesOnWithItsShedAndWaitsForRebirths() async throws {
        let journal = MemoryJournal(), time = ManualTime()
        let first = T.fleet()
        let before = FleetOperations(host: first, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        let started = try await before.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        await before.flushJournal()
        #expect(journal.rows.withLock { $0.count } == 1, "the shed is in the journal once started")

        // The hub dies. A new one starts 5 s later: a and b are reborn at once, c not yet.
        time.advance(5)
        let second = FakeCommandHost()
        second.set(T.a, importKW: 10_000, offer: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)])
        second.set(T.b, importKW: 20_000, offer: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)])
        let after = FleetOperations(host: second, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        #expect(try await after.restore() == 1)
        let restored = try #require(await after.shedReports().first)
        #expect(restored.id == started.id && restored.shares.map(\.shareMw) == started.shares.map(\.shareMw)
                && restored.shares.map(\.capKw) == started.shares.map(\.capKw) && restored.targetMw == 40)

        // 32 s after the start (past one allocation period, so a hub that never restarted would now re-allocate c's
        // share), c is still being reborn: nothing is sent, nothing taken back, while the wait lasts (one
        // allocation period from the restart).
        time.advance(27)
        await after.step()
        #expect(second.sent.isEmpty, "a site not yet reborn is not taken for gone: \(second.sent.map(\.site))")
        // c is back within the wait: the shed goes on as it was, nothing re-sent.
        second.set(T.c, importKW: 5_000, offer: [OfferStep(mw: 15, dollarsPerHour: 300)])
        time.advance(1)
        await after.step()
        #expect(second.sent.isEmpty, "\(second.sent.map(\.site))")
        #expect(await after.shedReports()[0].meteredMw == 40)

        // Then c really goes: after one allocation period its share goes to a and b, as on a hub that never restarted.
        second.set(T.c, liveness: .offline, importKW: 5_000)
        time.advance(31)
        await after.step()
        #expect(T.caps(second.sent) == [T.a: 0, T.b: 15_000])
        #expect(!second.sent.contains { $0.site == T.c })
    }

    @Test func aSiteThatNeverComesBackIsDroppedAfterTheWait() async throws {
        let journal = MemoryJournal(), time = ManualTime()
        let before = FleetOperations(host: T.fleet(), configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        _ = try await before.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        await before.flushJournal()
        time.advance(10)  // the hub restarts 10 s into the shed
        let second = FakeCommandHost()
        second.set(T.a, importKW: 10_000, offer: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)])
        second.set(T.b, importKW: 20_000, offer: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)])
        let after = FleetOperations(host: second, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        try await after.restore()
        time.advance(25)  // 35 s into the shed: past its allocation period, inside the wait (30 s from the restart)
        await after.step()
        #expect(second.sent.isEmpty)
        time.advance(6)  // the wait is over
        await after.step()
        #expect(T.caps(second.sent) == [T.a: 0, T.b: 15_000])
    }

    @Test func aFailedJournalWriteIsRetriedAtTheNextPoll() async throws {
        let journal = MemoryJournal(), time = ManualTime()
        journal.failNext.withLock { $0 = 1 }
        let ops = FleetOperations(host: T.fleet(), now: { time.now }, journal: journal)
        _ = try await ops.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        await ops.flushJournal()
        #expect(journal.rows.withLock { $0.isEmpty })
        #expect(await ops.journalProblem != nil)
        time.advance(1)
        await ops.step()
        await ops.flushJournal()
        #expect(journal.rows.withLock { $0.count } == 1)
        #expect(await ops.journalProblem == nil)
    }

    /// The journal is written off the poll (JournalWriter.swift): with a journal that does not answer (PostgreSQL
    /// cut off), a shed still starts and its caps go out, and the polls go on re-allocating; once the journal
    /// answers, it gets the shed's newest state. Before, `startShed` waited on the journal's write.
    @Test func aJournalThatDoesNotAnswerDelaysNoCommand() async throws {
        let journal = BlockingJournal(), time = ManualTime(), host = T.fleet()
        let ops = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        let started = await StoreOutageTests.within(.seconds(20)) {
            try? await ops.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        }
        let shed = try #require(started ?? nil, "startShed returned within 20 s of real time")
        #expect(T.caps(host.sent).count == 3, "\(host.sent)")
        // c goes away; the next allocation period's poll re-allocates its share at once, the journal still silent.
        host.set(T.c, liveness: .offline, importKW: 5_000)
        host.clearSent()
        time.advance(31)
        let stepped = await StoreOutageTests.within(.seconds(20)) { await ops.step(); return true }
        #expect(stepped == true)
        #expect(!host.sent.isEmpty && !host.sent.contains { $0.site == T.c }, "\(host.sent.map(\.site))")
        #expect(journal.inner.rows.withLock { $0.isEmpty })
        journal.open()
        await ops.flushJournal()
        let rows = journal.inner.rows.withLock { $0 }
        #expect(rows.count == 1 && rows.first?.id == shed.id)
        // The newest state, the one after the re-allocation (its cap for c withdrawn), as the operations hold it.
        let now = try FleetOperations.journalEncoder.encode(try #require(await ops.sheds[shed.id]))
        #expect(rows.first?.state == now)
        let entry = try JSONDecoder().decode(FleetOperations.ShedEntry.self, from: now)
        #expect(entry.caps[T.c] == nil && entry.shed.isFinished(now: time.now) == false)
    }

    @Test func aRolloutIsRestoredWithItsProgress() async throws {
        let journal = MemoryJournal(), time = ManualTime()
        let host = T.fleet()
        let before = FleetOperations(host: host, now: { time.now }, journal: journal)
        let started = try await before.startRollout(yaml: "site: {id: x}\n", sites: [T.a, T.b, T.c], batchSize: 2, comment: "v2")
        await before.flushJournal()
        let after = FleetOperations(host: host, now: { time.now }, journal: journal)
        #expect(try await after.restore() == 1)
        let restored = try await after.rolloutReport(id: started.id)
        #expect(restored == started)
    }

    @Test func theStoreKeepsUnfinishedAndRecentOperations() async throws {
        try await withPostgres { pg in
            try await HubStore.withRunning(StoreFixture.configuration(pg), logger: StoreFixture.logger) { store in
                try await store.migrate()
                try await store.saveOperation(id: "fs-1", kind: "shed", finished: false, state: Data(#"{"v": 1}"#.utf8))
                try await store.saveOperation(id: "fs-1", kind: "shed", finished: false, state: Data(#"{"v": 2}"#.utf8))
                try await store.saveOperation(id: "fs-old", kind: "shed", finished: true, state: Data(#"{"v": 3}"#.utf8))
                try await store.saveOperation(id: "ro-1", kind: "rollout", finished: true, state: Data(#"{"v": 4}"#.utf8))
                try await pg.psql("UPDATE fleet_operations SET updated_at = now() - interval '8 days' WHERE id = 'fs-old'")
                let rows = try await store.operations(finishedWithin: FleetOperations.keptFinishedS)
                #expect(rows.map(\.id) == ["fs-1", "ro-1"])
                #expect(rows.map { String(decoding: $0.state, as: UTF8.self) } == [#"{"v": 2}"#, #"{"v": 4}"#])
                #expect(try await pg.psql("SELECT count(*) FROM fleet_operations").trimmingCharacters(in: .whitespacesAndNewlines) == "3")
                // An unknown kind is refused by the table.
                await #expect(throws: HubStoreError.self) { try await store.saveOperation(id: "x", kind: "other", finished: false, state: Data("{}".utf8)) }
            }
        }
    }
}
