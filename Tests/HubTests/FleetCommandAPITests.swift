// The fleet API's command routes on a fake host (no MQTT, no PostgreSQL): roles, and every bad request refused
// with its message and nothing sent.

import Basics
import Foundation
import HTTPBasics
@testable import Hub
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite struct FleetCommandAPITests {
    static let tokens: [String: HubTokenRecord] = [
        "sy_viewer": HubTokenRecord(id: "v", name: "v", role: .viewer, revoked: false),
        "sy_operator": HubTokenRecord(id: "o", name: "o", role: .operator, revoked: false),
        "sy_admin": HubTokenRecord(id: "a", name: "a", role: .admin, revoked: false),
    ]

    static func app(_ host: FakeCommandHost, time: ManualTime) -> some ApplicationProtocol {
        let byHash = Dictionary(uniqueKeysWithValues: tokens.map { (TokenSecret.hash($0.key), $0.value) })
        let deps = FleetAPIDependencies(status: { await host.status() }, history: { _, _, _, _, _ in [] },
                                        token: { byHash[$0] }, clock: { time.now }, logger: Logger(label: "test"))
        let ops = FleetOperations(host: host, now: { time.now })
        let router = FleetAPI.router(deps)
        FleetCommandAPI.register(on: router, deps: deps, operations: ops)
        return Application(router: router)
    }

    static func headers(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }

    @Test func badShedRequestsAreRefusedWithTheirMessageAndNothingIsSent() async throws {
        let host = FleetOperationsTests.fleet(), time = ManualTime()
        try await Self.app(host, time: time).test(.router) { client in
            let cases: [(String, Int, String)] = [
                (#"{"region":"NOPE","shed_mw":5,"until":"+1h","reason":"x"}"#, 422, "no site is known in region 'NOPE' (regions: ERCOT)"),
                (#"{"region":"ERCOT","shed_mw":-5,"until":"+1h","reason":"x"}"#, 422, "'shed_mw' must be a positive number of MW, not -5.0"),
                (#"{"region":"ERCOT","shed_mw":0,"until":"+1h","reason":"x"}"#, 422, "'shed_mw' must be a positive number of MW, not 0.0"),
                (#"{"region":"ERCOT","shed_mw":5,"until":"+1h","reason":"x","cap_kw":3}"#, 422, "unknown key 'cap_kw' in the request body (allowed: region, shed_mw, from, until, reason)"),
                (#"{"region":"ERCOT","shed_mw":5,"until":"tomorrow","reason":"x"}"#, 422, "'until' should be now, +DURATION (+30m, +2h, +1h30m) or ISO 8601 UTC (2026-11-27T18:00:00Z), found 'tomorrow'"),
                (#"{"region":"ERCOT","shed_mw":5,"from":"2020-01-01T00:00:00Z","until":"+2h","reason":"x"}"#, 422, "in the past"),
                (#"{"region":"ERCOT","shed_mw":5,"until":"now","reason":"x"}"#, 422, "must be after 'from' and now"),
                (#"{"region":"ERCOT","until":"+1h","reason":"x"}"#, 400, "missing field 'shed_mw'"),
                (#"{"region":"ERCOT","shed_mw":"five","until":"+1h","reason":"x"}"#, 400, "'shed_mw' has the wrong type"),
                (#"{"region":"ERCOT","shed_mw":5,"until":"+1h","reason":"  "}"#, 422, "the reason must not be empty"),
                ("[1]", 400, "expected an object"),
            ]
            for (body, status, message) in cases {
                try await client.execute(uri: "/v1/fleet/events", method: .post, headers: Self.headers("sy_operator"),
                                         body: ByteBuffer(string: body)) { r in
                    #expect(Int(r.status.code) == status, "\(body): \(String(buffer: r.body))")
                    #expect(String(buffer: r.body).contains(message), "\(body): \(String(buffer: r.body))")
                }
            }
            // A viewer may not start one.
            try await client.execute(uri: "/v1/fleet/events", method: .post, headers: Self.headers("sy_viewer"),
                                     body: ByteBuffer(string: #"{"region":"ERCOT","shed_mw":5,"until":"+1h","reason":"x"}"#)) { r in
                #expect(r.status == .forbidden)
            }
            // An operator may not start a rollout.
            try await client.execute(uri: "/v1/fleet/rollouts", method: .post, headers: Self.headers("sy_operator"),
                                     body: ByteBuffer(string: #"{"yaml":"x: 1","sites":["a"]}"#)) { r in
                #expect(r.status == .forbidden)
            }
            let rollouts: [(String, String)] = [
                (#"{"yaml":"x: 1","sites":["a"],"region":"ERCOT"}"#, "give exactly one of 'sites' and 'region'"),
                (#"{"yaml":"x: 1"}"#, "give exactly one of 'sites' and 'region'"),
                (#"{"yaml":"x: 1","sites":["zz"]}"#, "no site 'zz' in the fleet"),
                (#"{"yaml":"x: 1","region":"NOPE"}"#, "no site is known in region 'NOPE'"),
                (#"{"yaml":"x: 1","sites":["a","ERCOT/a"]}"#, "a site appears twice in 'sites'"),
                (#"{"yaml":"x: 1","sites":["a"],"batch_size":0}"#, "the batch size must be 1…1000, not 0"),
                (#"{"yaml":"  ","sites":["a"]}"#, "the configuration is empty"),
                (#"{"yaml":"x: 1","sites":["a"],"batch":2}"#, "unknown key 'batch'"),
            ]
            for (body, message) in rollouts {
                try await client.execute(uri: "/v1/fleet/rollouts", method: .post, headers: Self.headers("sy_admin"),
                                         body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .unprocessableContent, "\(body): \(String(buffer: r.body))")
                    #expect(String(buffer: r.body).contains(message), "\(body): \(String(buffer: r.body))")
                }
            }
            try await client.execute(uri: "/v1/fleet/events/nope", method: .get, headers: Self.headers("sy_viewer")) { r in
                #expect(r.status == .notFound)
                #expect(String(buffer: r.body).contains("no fleet shed 'nope'"))
            }
        }
        #expect(host.sent.isEmpty)
    }

    @Test func aShedStartedThroughTheAPIIsReportedToViewers() async throws {
        let host = FleetOperationsTests.fleet(), time = ManualTime()
        try await Self.app(host, time: time).test(.router) { client in
            let id = try await client.execute(uri: "/v1/fleet/events", method: .post, headers: Self.headers("sy_operator"),
                                              body: ByteBuffer(string: #"{"region":"ERCOT","shed_mw":40,"from":"now","until":"+2h","reason":"utility call"}"#)) { r in
                #expect(r.status == .created, "\(String(buffer: r.body))")
                let d = JSONDecoder()
                d.keyDecodingStrategy = .convertFromSnakeCase
                let report = try d.decode(FleetShedReport.self, from: Data(buffer: r.body))
                #expect(report.shares.map(\.capKw) == [10_000, 20_000, 5_000])
                #expect(report.until == ISO8601.format(time.now + 7200))
                return report.id
            }
            try await client.execute(uri: "/v1/fleet/events/\(id)", method: .get, headers: Self.headers("sy_viewer")) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body).contains(#""target_mw":40"#), "\(String(buffer: r.body))")
            }
            try await client.execute(uri: "/v1/fleet/events", method: .get, headers: Self.headers("sy_viewer")) { r in
                #expect(String(buffer: r.body).contains(id))
            }
        }
        #expect(host.sent.count == 3)
    }
}
