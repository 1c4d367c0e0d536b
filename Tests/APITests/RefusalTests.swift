import Basics
import Control
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Store
import Testing
@testable import API

/// Issue 12 §6: the API refuses what it does not understand.
@Suite("The API refuses what it does not understand")
struct RefusalTests {
    static func body(_ obj: [String: Any]) throws -> ByteBuffer { ByteBuffer(data: try JSONSerialization.data(withJSONObject: obj)) }

    @Test func aMisspeltKeyInAnEventIsRefusedAndCreatesNothing() async throws {
        let h = try Harness.make()
        await h.tick()
        try await h.app().test(.router) { client in
            let b = try Self.body(["cap_kw": 0, "form": t0 + 3600, "until": t0 + 7200, "reason": "typo"])
            try await client.execute(uri: "/v1/events", method: .post, headers: bearer(h.tokens[.operator]), body: b) { r in
                #expect(r.status == .unprocessableContent)
                let m = errorMessage(r.body) ?? ""
                #expect(m.contains("'form'"), "\(m)")
            }
        }
        #expect(h.host.current.persistentState.events.isEmpty, "a refused body must not create an event")
        #expect(try h.store.eventLog(limit: 10, kind: .dr).isEmpty)
    }

    /// Every route with a JSON body names the unknown key.
    @Test(arguments: [
        ("PUT", "/v1/devices/asic-1/mode", Role.operator, ["mode": "auto", "setpoint": 3] as [String: any Sendable], "setpoint"),
        ("POST", "/v1/config/validate", Role.viewer, ["yaml": apiSiteYAML, "yml": "x"], "yml"),
        ("POST", "/v1/config/diff", Role.viewer, ["yaml": apiSiteYAML, "file": "a.yaml", "extra": true], "extra"),
        ("PUT", "/v1/config", Role.admin, ["yaml": apiSiteYAML, "comment": "c", "dryrun": true], "dryrun"),
        ("POST", "/v1/config/rollback", Role.admin, ["version": 1, "coment": "c"], "coment"),
        ("POST", "/v1/tokens", Role.admin, ["name": "n", "role": "viewer", "expires_in": 3600], "expires_in"),
    ])
    func everyJSONRouteNamesTheUnknownKey(method: String, uri: String, role: Role, fields: [String: any Sendable], key: String) async throws {
        let h = try Harness.make()
        await h.tick()
        var h1 = bearer(h.tokens[role])
        h1[.ifMatch] = "1"
        let hdr = h1
        let before = try h.store.tokens().count
        try await h.app().test(.router) { client in
            try await client.execute(uri: uri, method: HTTPRequest.Method(method)!, headers: hdr, body: try Self.body(fields)) { r in
                #expect(r.status == .unprocessableContent, "\(method) \(uri)")
                #expect(errorMessage(r.body)?.contains("'\(key)'") == true, "\(errorMessage(r.body) ?? "")")
            }
        }
        #expect(try h.store.latestConfig()?.version == 1)
        #expect(try h.store.tokens().count == before)
        #expect(h.host.current.persistentState.overrides.isEmpty)
    }

    @Test func anExistingEventIdIsAConflictUnlessReplacedWithIfMatch() async throws {
        let h = try Harness.make()
        await h.tick()
        let op = bearer(h.tokens[.operator])
        try await h.app().test(.router) { client in
            let first = try Self.body(["id": "ers-1", "cap_kw": 0, "until": t0 + 3600, "reason": "shed all"])
            let etag = try await client.execute(uri: "/v1/events", method: .post, headers: op, body: first) { r in
                #expect(r.status == .created)
                return r.headers[.eTag]
            }
            let tag = try #require(etag, "a created event has an ETag")
            let second = try Self.body(["id": "ers-1", "cap_kw": 39000, "until": t0 + 3600, "reason": "oops"])
            try await client.execute(uri: "/v1/events", method: .post, headers: op, body: second) { r in
                #expect(r.status == .conflict)
                #expect(errorMessage(r.body)?.contains("ers-1") == true)
            }
            #expect(h.host.current.persistentState.events.map(\.capKW) == [0])
            // A stale or wrong If-Match: 412, nothing changes.
            var wrong = op
            wrong[.ifMatch] = "\"nope\""
            try await client.execute(uri: "/v1/events", method: .post, headers: wrong, body: second) { r in
                #expect(r.status == .preconditionFailed)
            }
            #expect(h.host.current.persistentState.events.map(\.capKW) == [0])
            // The event's ETag: an explicit replace.
            var replace = op
            replace[.ifMatch] = tag
            let newTag = try await client.execute(uri: "/v1/events", method: .post, headers: replace, body: second) { r in
                #expect(r.status == .ok)
                return r.headers[.eTag]
            }
            #expect(h.host.current.persistentState.events.map(\.capKW) == [39000])
            #expect(newTag != nil && newTag != tag)
            // The list shows the same ETag.
            let listed = try await client.execute(uri: "/v1/events", method: .get, headers: op) {
                try JSONSerialization.jsonObject(with: Data(buffer: $0.body)) as? [[String: Any]] ?? []
            }
            #expect(listed.map { $0["etag"] as? String } == [newTag])
        }
    }

    @Test func diffAndValidateGiveOneFileLineColumnLine() async throws {
        let h = try Harness.make()
        await h.tick()
        let bad = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: lots")
        let broken = "site: [\n  id: x\n"
        try await h.app().test(.router) { client in
            for uri in ["/v1/config/diff", "/v1/config/validate"] {
                for yaml in [bad, broken] {
                    try await client.execute(uri: uri, method: .post, headers: bearer(h.tokens[.viewer]),
                                             body: try Self.body(["yaml": yaml, "file": "new.yaml"])) { r in
                        #expect(r.status == .unprocessableContent, "\(uri)")
                        let m = errorMessage(r.body) ?? ""
                        #expect(m.range(of: #"^new\.yaml:\d+:\d+: \S"#, options: .regularExpression) != nil, "\(uri): \(m)")
                        #expect(!m.contains("\n"), "\(uri): \(m)")
                    }
                }
            }
        }
    }

    @Test func unknownPathsAndWrongMethodsAnswerWithJSON() async throws {
        let h = try Harness.make()
        try await h.app().test(.router) { client in
            try await client.execute(uri: "/v1/nope", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(errorMessage(r.body)?.contains("/v1/nope") == true, "\(String(buffer: r.body))")
            }
            try await client.execute(uri: "/v1/status", method: .delete, headers: bearer(h.tokens[.admin])) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.headers[.allow] == "GET")
                #expect(errorMessage(r.body)?.contains("DELETE") == true, "\(String(buffer: r.body))")
            }
            try await client.execute(uri: "/v1/events/ers-1", method: .get) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.headers[.allow] == "DELETE")
            }
            try await client.execute(uri: "/v1/config", method: .post) { r in
                #expect(r.status == .methodNotAllowed)
                #expect(r.headers[.allow] == "GET, PUT")
            }
        }
    }

    @Test func healthzIsUnhealthyWhenNoDeviceAnsweredWithinTheStaleLimit() async throws {
        let h = try Harness.make()
        try await h.app().test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(errorMessage(r.body)?.contains("no device has answered") == true, "\(String(buffer: r.body))")
            }
            await h.tick()
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            // stale_after_s is 3 on this site: past it without an answer, unhealthy again.
            h.clock.advance(3.5)
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(errorMessage(r.body)?.contains("3 s") == true, "\(String(buffer: r.body))")
            }
        }
    }

    @Test func aNameThatOnlyLooksLikeLoopbackIsNotLoopback() throws {
        // RFC 6761: .invalid never resolves; starting with "127." proves nothing.
        #expect(throws: APIConfigError.self) { try APIConfiguration(listen: "127.0.0.1.invalid:8443") }
        #expect(throws: APIConfigError.self) { try APIConfiguration(listen: "0.0.0.0:8443") }
        #expect(try APIConfiguration(listen: "127.0.0.1:0").isLoopback)
        #expect(try APIConfiguration(listen: "127.8.9.10:0").isLoopback)
        #expect(try APIConfiguration(listen: "[::1]:0").isLoopback)
        #expect(try APIConfiguration(listen: "localhost:0").isLoopback)
    }

    @Test func aSiteFileGivenToServeWinsAndIsStoredAsANewVersion() throws {
        let store = try Store.inMemory()
        try store.appendConfig(yaml: apiSiteYAML, author: "test", comment: "initial", at: t0, expected: 0)
        let newer = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: 3000")
        let r = try ConfigBootstrap.resolve(store: store, siteFile: "new.yaml", siteYAML: newer, now: t0 + 60, actor: "local:serve")
        #expect(r.version.version == 2 && r.version.yaml == newer && !r.fromStore)
        #expect(r.version.comment.contains("new.yaml"))
        // The same file again: nothing new is stored.
        let again = try ConfigBootstrap.resolve(store: store, siteFile: "new.yaml", siteYAML: newer, now: t0 + 120, actor: "local:serve")
        #expect(again.version.version == 2)
        #expect(try store.configHistory().count == 2)
    }
}
