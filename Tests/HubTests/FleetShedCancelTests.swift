// Cancelling a fleet shed (DELETE /v1/fleet/events/{id}, `fleet event cancel`): every cap in force is withdrawn, a
// site offline at the cancel gets its cancel when it is heard again (before the shed's end), nothing is re-allocated
// afterwards, a second cancel and a cancel after the end are refused, and all of it survives a hub restart.

import Basics
import Foundation
import HTTPBasics
@testable import Hub
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite struct FleetShedCancelTests {
    typealias T = FleetOperationsTests

    static func cancels(_ sent: [(site: SiteKey, request: FleetCommandRequest, id: String)]) -> [SiteKey: String] {
        sent.reduce(into: [:]) { out, s in if case let .cancelEvent(e) = s.request { out[s.site] = e } }
    }

    @Test func aCancelWithdrawsEveryCapAndReachesAnOfflineSiteWhenItIsBack() async throws {
        let host = T.fleet(), time = ManualTime(), journal = MemoryJournal()
        let ops = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        let started = try await ops.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        let events = host.sent.reduce(into: [SiteKey: String]()) { out, s in if case let .createEvent(e, _, _, _) = s.request { out[s.site] = e } }
        #expect(events.keys.sorted() == [T.a, T.b, T.c])
        // c goes offline, then the operator cancels.
        host.set(T.c, liveness: .offline, importKW: 5_000)
        time.advance(5)
        await ops.step()
        host.clearSent()
        time.advance(1)
        let report = try await ops.cancelShed(id: started.id)
        #expect(Self.cancels(host.sent) == [T.a: events[T.a]!, T.b: events[T.b]!], "the online sites' caps are withdrawn at once")
        #expect(report.ended && report.cancelledAt == ISO8601.format(time.now))
        #expect(report.shares.filter { $0.site != "c" }.allSatisfy { $0.capKw == nil }, "the withdrawn caps: \(report.shares)")
        #expect(report.shares.first { $0.site == "c" }?.capKw != nil, "c, offline, still holds its cap until it hears the cancel")

        // Nothing more while c is away, and no re-allocation however short the others now are.
        host.set(T.a, importKW: 30_000, offer: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)])
        host.set(T.b, importKW: 25_000, offer: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)])
        host.clearSent()
        time.advance(40)
        await ops.step()
        #expect(host.sent.isEmpty, "\(host.sent.map(\.site))")

        // A hub restart here keeps the cancel still owed to c.
        await ops.flushJournal()
        let again = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now }, journal: journal)
        #expect(try await again.restore() == 1)
        // c is heard again: its cancel goes out, once.
        host.set(T.c, importKW: 5_000, offer: [OfferStep(mw: 15, dollarsPerHour: 300)])
        time.advance(1)
        await again.step()
        #expect(Self.cancels(host.sent) == [T.c: events[T.c]!])
        #expect(try await again.shedReport(id: started.id).shares.allSatisfy { $0.capKw == nil })
        host.clearSent()
        time.advance(1)
        await again.step()
        #expect(host.sent.isEmpty)
        await again.flushJournal()
        #expect(journal.rows.withLock { $0.first?.finished } == true, "the journal says it is over")

        await #expect(throws: FleetOperationError.invalid("fleet shed '\(started.id)' was cancelled at \(report.cancelledAt!): nothing to cancel")) {
            try await again.cancelShed(id: started.id)
        }
        await #expect(throws: FleetOperationError.notFound("no fleet shed 'fs-nope'")) { try await again.cancelShed(id: "fs-nope") }
    }

    @Test func aCancelAfterTheEndIsRefused() async throws {
        let host = T.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let started = try await ops.startShed(region: "ERCOT", targetMW: 10, until: time.now + 60, reason: "short call")
        time.advance(61)
        host.clearSent()
        await #expect(throws: FleetOperationError.self) { try await ops.cancelShed(id: started.id) }
        #expect(host.sent.isEmpty)
    }

    @Test func theRouteIsForOperatorsAndSaysWhy() async throws {
        let host = T.fleet(), time = ManualTime()
        try await FleetCommandAPITests.app(host, time: time).test(.router) { client in
            let id = try await client.execute(uri: "/v1/fleet/events", method: .post, headers: FleetCommandAPITests.headers("sy_operator"),
                                              body: ByteBuffer(string: #"{"region":"ERCOT","shed_mw":40,"until":"+1h","reason":"x"}"#)) { r in
                #expect(r.status == .created)
                return try JSONDecoder().decode([String: AnyCodable].self, from: Data(buffer: r.body))["id"]?.string ?? ""
            }
            try await client.execute(uri: "/v1/fleet/events/\(id)", method: .delete, headers: FleetCommandAPITests.headers("sy_viewer")) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/v1/fleet/events/fs-nope", method: .delete, headers: FleetCommandAPITests.headers("sy_operator")) { r in
                #expect(r.status == .notFound && String(buffer: r.body).contains("no fleet shed 'fs-nope'"))
            }
            host.clearSent()
            try await client.execute(uri: "/v1/fleet/events/\(id)", method: .delete, headers: FleetCommandAPITests.headers("sy_operator")) { r in
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                #expect(String(buffer: r.body).contains(#""cancelled_at":""#) && String(buffer: r.body).contains(#""ended":true"#))
            }
            #expect(Self.cancels(host.sent).keys.sorted() == [T.a, T.b, T.c])
            try await client.execute(uri: "/v1/fleet/events/\(id)", method: .delete, headers: FleetCommandAPITests.headers("sy_operator")) { r in
                #expect(r.status == .unprocessableContent && String(buffer: r.body).contains("nothing to cancel"))
            }
        }
    }
}

/// Just enough of a JSON value to read a string field.
struct AnyCodable: Decodable {
    let string: String?
    init(from decoder: any Decoder) throws {
        string = try? decoder.singleValueContainer().decode(String.self)
    }
}
