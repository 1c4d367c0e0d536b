// Scheduled fleet sheds (`fleet event create --from +1h`): nothing is allocated or sent before the start; at the start
// the shed is allocated over the region's sites as they are then; a scheduled shed survives a hub restart, can be
// cancelled before it starts, and fails with its reason if no site can take part when its time comes.

import Basics
import Foundation
import HTTPBasics
@testable import Hub
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct FleetScheduledShedTests {
    typealias T = FleetOperationsTests

    static func caps(_ host: FakeCommandHost) -> [SiteKey: Double] {
        host.sent.reduce(into: [:]) { out, s in if case let .createEvent(_, capKW, _, _) = s.request { out[s.site] = capKW } }
    }

    @Test func aScheduledShedWaitsForItsStartAndIsAllocatedOverTheSitesAsTheyAreThen() async throws {
        let host = T.fleet(), time = ManualTime(), journal = MemoryJournal()
        let ops = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        let start = time.now + 3600
        let r = try await ops.startShed(region: "ERCOT", targetMW: 25, from: start, until: start + 7200, reason: "peak window")
        #expect(r.state == "scheduled" && r.shares.isEmpty && r.allocatedMw == 0 && r.from == ISO8601.format(start))
        #expect(host.sent.isEmpty, "nothing is sent before the start")
        await ops.flushJournal()
        #expect(journal.rows.withLock { $0.map(\.kind) } == ["scheduled shed"])

        // Before the start, a's offer changes: the allocation uses what the sites offer at the start.
        time.advance(3599)
        await ops.step()
        #expect(host.sent.isEmpty)
        host.set(T.a, importKW: 30_000, offer: [OfferStep(mw: 5, dollarsPerHour: 900)])
        time.advance(1)
        await ops.step()
        let report = try await ops.shedReport(id: r.id)
        #expect(report.state == "active")
        #expect(report.from == ISO8601.format(start))
        // Least value lost per MW over the offers as they are at the start (a's changed one included).
        let expected = FleetShedAllocator.allocate(targetMW: 25, offers: host.shedInputs(region: "ERCOT").sites.mapValues(\.offer))
        #expect(abs(report.allocatedMw - 25) < 1e-9 && abs(report.usdPerHourLost - expected.dollarsPerHour) < 1e-6, "\(report)")
        #expect(Set(Self.caps(host).keys) == Set(report.shares.map { SiteKey(group: "ERCOT", edge: $0.site) }))
        await ops.flushJournal()
        #expect(journal.rows.withLock { $0.map(\.kind) } == ["shed"], "the journal row is now the running shed's")
    }

    @Test func aScheduledShedSurvivesARestartAndACancelBeforeItsStartSendsNothing() async throws {
        let host = T.fleet(), time = ManualTime(), journal = MemoryJournal()
        let first = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        let kept = try await first.startShed(region: "ERCOT", targetMW: 10, from: time.now + 600, until: time.now + 1200, reason: "kept")
        let dropped = try await first.startShed(region: "ERCOT", targetMW: 10, from: time.now + 600, until: time.now + 1200, reason: "dropped")
        await first.flushJournal()

        // A new hub reads both back; one is cancelled before its start.
        time.advance(60)
        let again = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        #expect(try await again.restore() == 2)
        let cancelled = try await again.cancelShed(id: dropped.id)
        #expect(cancelled.state == "cancelled" && cancelled.cancelledAt == ISO8601.format(time.now) && cancelled.ended)
        await #expect(throws: FleetOperationError.self) { try await again.cancelShed(id: dropped.id) }
        time.advance(540)
        await again.step()
        // Only the kept one started; the cancelled one sent nothing, ever.
        #expect(try await again.shedReport(id: kept.id).state == "active")
        #expect(try await again.shedReport(id: dropped.id).state == "cancelled")
        #expect(host.sent.allSatisfy { if case let .createEvent(e, _, _, _) = $0.request { e.hasPrefix(kept.id) } else { false } })
        #expect(!host.sent.isEmpty)
    }

    @Test func aScheduledShedThatFindsNoSiteAtItsStartFailsAndSaysWhy() async throws {
        let host = T.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let r = try await ops.startShed(region: "ERCOT", targetMW: 10, from: time.now + 120, until: time.now + 600, reason: "x")
        for site in [T.a, T.b, T.c, T.d] { host.set(site, liveness: .offline, importKW: 0) }
        time.advance(120)
        await ops.step()
        let report = try await ops.shedReport(id: r.id)
        #expect(report.state == "failed" && report.ended)
        #expect(report.problem?.contains("at its start: no site of region 'ERCOT' can take part in a shed") == true, "\(String(describing: report.problem))")
        #expect(host.sent.isEmpty)
    }

    @Test func theAPITakesALaterStartAndRefusesOneInThePast() async throws {
        let host = T.fleet(), time = ManualTime()
        try await FleetCommandAPITests.app(host, time: time).test(.router) { client in
            try await client.execute(uri: "/v1/fleet/events", method: .post, headers: FleetCommandAPITests.headers("sy_operator"),
                                     body: ByteBuffer(string: #"{"region":"ERCOT","shed_mw":5,"from":"+1h","until":"+2h","reason":"peak"}"#)) { r in
                #expect(r.status == .created)
                let d = JSONDecoder()
                d.keyDecodingStrategy = .convertFromSnakeCase
                let report = try d.decode(FleetShedReport.self, from: Data(buffer: r.body))
                #expect(report.state == "scheduled" && report.from == ISO8601.format(time.now + 3600) && report.until == ISO8601.format(time.now + 7200))
            }
            try await client.execute(uri: "/v1/fleet/events", method: .post, headers: FleetCommandAPITests.headers("sy_operator"),
                                     body: ByteBuffer(string: #"{"region":"ERCOT","shed_mw":5,"from":"2020-01-01T00:00:00Z","until":"+2h","reason":"x"}"#)) { r in
                #expect(r.status == .unprocessableContent)
                #expect(String(buffer: r.body).contains("in the past"), "\(String(buffer: r.body))")
            }
        }
        #expect(host.sent.isEmpty)
    }
}
