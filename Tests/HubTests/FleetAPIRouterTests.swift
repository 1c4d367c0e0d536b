// The fleet API in router mode (no PostgreSQL, no MQTT): the bearer-token parse it shares with the site API
// (HTTPBasics), and the response encoder it shares (snake_case keys, sorted).

import Basics
import Foundation
import HTTPBasics
import HTTPTypes
import Hub
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@Suite("Fleet API router")
struct FleetAPIRouterTests {
    static let secret = "sy_fleet-router-test"

    static func app() -> some ApplicationProtocol {
        let site = SiteKey(group: "ERCOT", edge: "site-a")
        let deps = FleetAPIDependencies(
            status: { [SiteStatus(site: site, importKW: 1200, capKW: 40_000, liveness: .online, devices: 2, devicesOnline: 1)] },
            history: { _, _, _, _, _ in [] },
            token: { hash in hash == TokenSecret.hash(secret) ? HubTokenRecord(id: "tok_1", name: "t", role: .viewer, revoked: false) : nil },
            clock: { 1_795_773_600 }, logger: Logger(label: "fleet-api-test"))
        return Application(router: FleetAPI.router(deps))
    }

    static func message(_ body: ByteBuffer) throws -> String {
        struct E: Decodable { struct M: Decodable { var message: String }; var error: M }
        return try JSONDecoder().decode(E.self, from: Data(body.readableBytesView)).error.message
    }

    @Test func bearerParse() {
        #expect(BearerToken.parse(nil) == .failure(.missing))
        #expect(BearerToken.parse("Bearer abc") == .success("abc"))
        #expect(BearerToken.parse("bearer abc def") == .success("abc def"))
        #expect(BearerToken.parse("Basic abc") == .failure(.malformed))
        #expect(BearerToken.parse("Bearer ") == .failure(.malformed))
        #expect(BearerToken.parse("Bearer") == .failure(.malformed))
        #expect(BearerToken.parse("Bearer " + String(repeating: "x", count: 256)) == .success(String(repeating: "x", count: 256)))
        #expect(BearerToken.parse("Bearer " + String(repeating: "x", count: 257)) == .failure(.malformed))
    }

    @Test func missingMalformedAndUnknownTokensAreRefused() async throws {
        try await Self.app().test(.router) { client in
            let missing = try await client.execute(uri: "/v1/fleet/status", method: .get) { $0 }
            #expect(missing.status == .unauthorized)
            #expect(try Self.message(missing.body) == "missing bearer token")
            #expect(missing.headers[.wwwAuthenticate] == "Bearer realm=\"switchyard-hub\"")
            let malformed = try await client.execute(uri: "/v1/fleet/status", method: .get, headers: [.authorization: "Basic \(Self.secret)"]) { $0 }
            #expect(malformed.status == .unauthorized)
            #expect(try Self.message(malformed.body) == "malformed Authorization header: expected 'Bearer <token>'")
            let unknown = try await client.execute(uri: "/v1/fleet/status", method: .get, headers: [.authorization: "Bearer sy_other"]) { $0 }
            #expect(unknown.status == .unauthorized)
            #expect(try Self.message(unknown.body) == "unknown token")
        }
    }

    @Test func statusIsSnakeCaseWithSortedKeys() async throws {
        try await Self.app().test(.router) { client in
            let r = try await client.execute(uri: "/v1/fleet/status", method: .get, headers: [.authorization: "Bearer \(Self.secret)"]) { $0 }
            #expect(r.status == .ok)
            let text = String(buffer: r.body)
            #expect(text.hasPrefix("{\"sites\":[{\"cap_kw\":40000,\"devices\":2,\"devices_online\":1,\"import_kw\":1200,\"liveness\":\"online\""), "\(text)")
            let expected = try JSONEncoder.apiResponse.encode(FleetStatusDTO(sites: [SiteStatusDTO(
                SiteStatus(site: SiteKey(group: "ERCOT", edge: "site-a"), importKW: 1200, capKW: 40_000, liveness: .online,
                           devices: 2, devicesOnline: 1))]))
            #expect(text == String(decoding: expected, as: UTF8.self))
        }
    }
}
