import Control
import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import Synchronization
import HTTPTypes
import Testing
@testable import API

@Suite("The API refuses what it does not understand (new surfaces)")
struct RefusalTests2 {
    @Test func theLoopbackCheckLooksAtTheResolvedAddress() throws {
        // A name anyone can point anywhere: what counts is where it resolves.
        #expect(throws: APIConfigError.self) {
            try APIConfiguration(listen: "127.0.0.1.nip.io:8443", resolve: { _ in ["10.1.2.3"] })
        }
        let ok = try APIConfiguration(listen: "127.0.0.1.nip.io:8443", resolve: { _ in ["127.0.0.1"] })
        #expect(ok.isLoopback && ok.bindAddress == "127.0.0.1", "the server binds the address it checked")
        // Every address must be loopback.
        #expect(throws: APIConfigError.self) { try APIConfiguration(listen: "both.example:8443", resolve: { _ in ["127.0.0.1", "192.0.2.7"] }) }
        #expect(APIConfiguration.isLoopbackAddress("::ffff:127.0.0.1"))
        #expect(!APIConfiguration.isLoopbackAddress("::ffff:10.0.0.1"))
        #expect(!APIConfiguration.isLoopbackAddress("128.0.0.1"))
        // TLS or --insecure: allowed off loopback, bound to the resolved address.
        let tls = try APIConfiguration(listen: "site.example:8443", insecure: true, resolve: { _ in ["2001:db8::1", "192.0.2.7"] })
        #expect(tls.bindAddress == "192.0.2.7")
    }

    @Test func withoutSiteTheStoredVersionRunsAndNothingIsStored() throws {
        let store = try Store.inMemory()
        #expect(throws: ConfigBootstrap.BootstrapError.self) {
            try ConfigBootstrap.resolve(store: store, siteFile: nil, siteYAML: nil, now: t0, actor: "local:serve")
        }
        try store.appendConfig(yaml: apiSiteYAML, author: "test", comment: "initial", at: t0, expected: 0)
        let r = try ConfigBootstrap.resolve(store: store, siteFile: nil, siteYAML: nil, now: t0, actor: "local:serve")
        #expect(r.fromStore && r.version.version == 1 && r.replaced == nil)
        #expect(try store.configHistory().count == 1)
    }

    /// The auth middleware looks tokens up through the async API (GRDB's queue), never the blocking one.
    @Test func authUsesTheNonBlockingTokenLookup() async throws {
        final class Spy: TokenRepository, AuditRepository, Sendable {
            let inner: Store
            let blocking = Mutex(0)
            init(_ s: Store) { inner = s }
            func token(hash: String) throws -> TokenRecord? { blocking.withLock { $0 += 1 }; return try inner.token(hash: hash) }
            func tokenAsync(hash: String) async throws -> TokenRecord? { try await inner.tokenAsync(hash: hash) }
            func tokens() throws -> [TokenRecord] { try inner.tokens() }
            func insertToken(_ t: TokenRecord, audit: AuditEntry?) throws { try inner.insertToken(t, audit: audit) }
            func revokeToken(id: String, at: Double, audit: AuditEntry?) throws -> Bool { try inner.revokeToken(id: id, at: at, audit: audit) }
            func audit(_ entry: AuditEntry) throws { blocking.withLock { $0 += 1 }; try inner.audit(entry) }
            func auditAsync(_ entry: AuditEntry) async throws { try await inner.auditAsync(entry) }
            func auditLog(limit: Int) throws -> [AuditEntry] { try inner.auditLog(limit: limit) }
        }
        let h = try Harness.make()
        await h.tick()
        let spy = Spy(h.store)
        var deps = h.deps
        deps.tokens = spy
        deps.audit = spy
        try await Application(router: buildRouter(deps).router).test(.router) { client in
            try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/events/none", method: .delete, headers: bearer(h.tokens[.operator])) { #expect($0.status == .notFound) }
        }
        #expect(spy.blocking.withLock { $0 } == 0, "blocking store calls on the cooperative pool")
        #expect(try h.store.auditLog().contains { $0.action == "DELETE /v1/events/none" && $0.status == 404 })
    }

    /// The closed key lists match the request types (a field added to a type but not to its list would be refused).
    @Test func strictKeyListsMatchTheRequestTypes() throws {
        func keys<T: Encodable>(_ v: T) throws -> Set<String> {
            let e = JSONEncoder()
            e.keyEncodingStrategy = .convertToSnakeCase
            return Set((try JSONSerialization.jsonObject(with: try e.encode(v)) as? [String: Any] ?? [:]).keys)
        }
        #expect(try keys(CreateEventRequest(id: "a", capKw: 1, from: 1, until: 2, reason: "r")) == Set(CreateEventRequest.keys))
        #expect(try keys(ModeRequest(mode: "m", setpointKw: 1, forS: 1)) == Set(ModeRequest.keys))
        #expect(try keys(ConfigFileRequest(yaml: "y", file: "f")) == Set(ConfigFileRequest.keys))
        #expect(try keys(ApplyConfigRequest(yaml: "y", file: "f", comment: "c", dryRun: true)) == Set(ApplyConfigRequest.keys))
        #expect(try keys(RollbackRequest(version: 1, comment: "c")) == Set(RollbackRequest.keys))
        #expect(try keys(CreateTokenRequest(name: "n", role: "r", expiresInS: 60)) == Set(CreateTokenRequest.keys))
    }
}

@Suite("Event ids under concurrency")
struct EventIDConcurrencyTests {
    /// Many POSTs with one id at once: exactly one creates it, every other is a 409 (none silently replaces it).
    @Test func concurrentCreatesWithOneIdYieldOneEvent() async throws {
        let h = try Harness.make()
        await h.tick()
        let op = bearer(h.tokens[.operator])
        try await h.app().test(.router) { client in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        let b = ByteBuffer(string: #"{"id":"ers-race","cap_kw":\#(1000 * (i + 1)),"until":\#(t0 + 3600),"reason":"r\#(i)"}"#)
                        return try await client.execute(uri: "/v1/events", method: .post, headers: op, body: b) { $0.status }
                    }
                }
                var out: [HTTPResponse.Status] = []
                for try await s in group { out.append(s) }
                return out
            }
            #expect(statuses.filter { $0 == .created }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == .conflict }.count == 7, "\(statuses)")
        }
        let events = h.host.current.persistentState.events.filter { $0.id == "ers-race" }
        #expect(events.count == 1)
        let logged = try h.store.eventLog(limit: 100, kind: .dr).filter { $0.subject == "ers-race" }
        #expect(logged.count == 1 && logged.first.map { $0.message.contains("cap \(events.first?.capKW ?? -1) kW") } == true, "\(logged.map(\.message))")
    }
}
