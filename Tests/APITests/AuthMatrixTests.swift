import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import Testing
import TestSupport
@testable import API

@Suite("API auth matrix")
struct AuthMatrixTests {
    static func path(_ p: String) -> String {
        p.replacingOccurrences(of: "{id}", with: "nope").replacingOccurrences(of: "{version}", with: "1")
    }

    /// Every route × every role × {none, bad, expired, revoked}: 401 without a valid token,
    /// 403 below the route's role, and neither at or above it.
    @Test func everyRouteEveryRoleEveryCredential() async throws {
        let h = try Harness.make()
        await h.tick()  // /healthz is 503 until a device has answered
        let routes = buildRouter(h.deps).routes
        #expect(routes.count >= 20, "routes: \(routes)")
        try await h.app().test(.router) { client in
            for route in routes {
                let uri = Self.path(route.path)
                for (label, token) in [("none", nil), ("bad", "sy_" + String(repeating: "0", count: 64)), ("garbage", "x y z"),
                                       ("expired", h.expired), ("revoked", h.revoked)] as [(String, String?)] {
                    let status = try await client.execute(uri: uri, method: route.method, headers: bearer(token)) { $0.status }
                    if route.role == nil {
                        #expect(status == .ok, "\(route) public with \(label)")
                    } else {
                        #expect(status == .unauthorized, "\(route) with \(label) token gave \(status)")
                    }
                }
                for role in Role.allCases {
                    let (status, body) = try await client.execute(uri: uri, method: route.method, headers: bearer(h.tokens[role])) {
                        ($0.status, $0.body)
                    }
                    guard let need = route.role else { #expect(status == .ok); continue }
                    if role < need {
                        #expect(status == .forbidden, "\(route) as \(role) gave \(status)")
                        #expect(errorMessage(body)?.contains("needs '\(need.rawValue)'") == true)
                    } else {
                        #expect(status != .forbidden && status != .unauthorized, "\(route) as \(role) gave \(status)")
                        #expect(status.code < 500, "\(route) as \(role) gave \(status): \(errorMessage(body) ?? "")")
                    }
                }
            }
        }
    }

    @Test func unauthorizedCarriesChallengeAndTheAuditSkipsReads() async throws {
        let h = try Harness.make()
        try await h.app().test(.router) { client in
            try await client.execute(uri: "/v1/status", method: .get) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(errorMessage(r.body) == "missing bearer token")
            }
            let before = try h.store.auditLog().count
            _ = try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { $0.status }
            #expect(try h.store.auditLog().count == before)
            _ = try await client.execute(uri: "/v1/events/x", method: .delete, headers: bearer(h.tokens[.viewer])) { $0.status }
            let row = try #require(try h.store.auditLog().first)
            #expect(row.actor.hasPrefix("t-viewer (tok_") && row.status == 403 && row.action == "DELETE /v1/events/x")
        }
    }

    @Test func failedAuthenticationIsRateLimited() async throws {
        let h = try Harness.make(maxFailures: 3)
        try await h.app().test(.router) { client in
            for _ in 0..<3 {
                #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer("sy_wrong")) { $0.status } == .unauthorized)
            }
            // Locked out, even with a good token, until the window passes.
            try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.headers[.retryAfter] == "300")
            }
            h.clock.advance(299)
            #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { $0.status } == .tooManyRequests)
            h.clock.advance(1)
            #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { $0.status } == .ok)
        }
    }

    @Test func tokenExpiresOnTheInjectedClock() async throws {
        let h = try Harness.make()
        let t = try Tokens.create(in: h.store, name: "short", role: .viewer, createdBy: "test", creatorRole: "local", at: h.clock.now,
                                  validForS: 60, action: "token create", status: 0)
        try await h.app().test(.router) { client in
            #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer(t.secret)) { $0.status } == .ok)
            h.clock.advance(60)
            try await client.execute(uri: "/v1/status", method: .get, headers: bearer(t.secret)) { r in
                #expect(r.status == .unauthorized)
                #expect(errorMessage(r.body)?.contains("expired") == true)
            }
        }
    }

    @Test func adminCreatesTokensThatWork() async throws {
        let h = try Harness.make()
        try await h.app().test(.router) { client in
            let created = try await client.execute(uri: "/v1/tokens", method: .post, headers: bearer(h.tokens[.admin]),
                                                   body: json(#"{"name":"bob","role":"operator","expires_in_s":3600}"#)) { r in
                #expect(r.status == .created)
                return try decode(TokenDTO.self, r.body)
            }
            let secret = try #require(created.token)
            #expect(created.role == "operator" && created.expiresAt == h.clock.now + 3600)
            #expect(try await client.execute(uri: "/v1/events", method: .post, headers: bearer(secret),
                                             body: json(#"{"cap_kw":2000,"until":\#(h.clock.now + 600),"reason":"x"}"#)) { $0.status } == .created)
            // Listing never shows secrets; the creation is audited once.
            try await client.execute(uri: "/v1/tokens", method: .get, headers: bearer(h.tokens[.admin])) { r in
                #expect(!String(buffer: r.body).contains(secret))
            }
            #expect(try h.store.auditLog().filter { $0.action == "POST /v1/tokens" }.count == 1)
            #expect(try await client.execute(uri: "/v1/tokens/\(created.id)", method: .delete, headers: bearer(h.tokens[.admin])) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer(secret)) { $0.status } == .unauthorized)
        }
    }
}
