// The hub deployed as docs/fleet.md says (issue 18, "deployment: broker, PostgreSQL, TLS, tokens"): a PostgreSQL that
// takes the hub's user only over TLS with a password (hostssl, scram-sha-256), a mosquitto that takes only known users
// under the fleet ACL, and the fleet API over TLS. Driven through the built `switchyard` binary, checked with peers
// we did not write: the server's own pg_stat_ssl (through psql), curl verifying the API's certificate, and the
// broker's refusals.

import Foundation
import Hub
import Logging
import Sparkplug
import Testing
import TestSupport

@Suite("Hub deployment: TLS and passwords", .serialized, .timeLimit(.minutes(3)))
struct HubDeploymentTests {
    static let password = "hub-pg-secret"

    /// A cluster where `hub` (password) may connect only over TLS, and `postgres` over loopback without one (the
    /// test's own psql).
    static func withTLSPostgres(_ pki: TestPKI, _ body: (PostgresServer) async throws -> Void) async throws {
        try await withPostgres { pg in
            try await pg.psql("CREATE ROLE hub LOGIN PASSWORD '\(password)'")
            try await pg.psql("CREATE DATABASE fleet OWNER hub")
            try await pg.enableTLS(certificate: pki.path("server.crt"), key: pki.path("server.key"), hba: """
                local all all trust
                host all postgres 127.0.0.1/32 trust
                hostssl all hub 127.0.0.1/32 scram-sha-256

                """)
            try await body(pg)
        }
    }

    func config(_ pg: PostgresServer, _ tls: HubStoreTLS, password: String? = Self.password) -> HubStoreConfiguration {
        HubStoreConfiguration(host: "127.0.0.1", port: pg.port, username: "hub", password: password, database: "fleet",
                              maximumConnections: 2, tls: tls)
    }

    /// The error a first query gets (postgres-nio's pool fails the waiting query once its connection attempt fails).
    func firstQueryError(_ c: HubStoreConfiguration) async -> String? {
        var logger = Logger(label: "hub-deployment-test")
        logger.logLevel = .critical
        do {
            try await HubStore.withRunning(c, logger: logger) { store in _ = try await store.migrate() }
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func theStoreVerifiesTheServerAndTakesPasswords() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        try await Self.withTLSPostgres(pki) { pg in
            var logger = Logger(label: "hub-deployment-test")
            logger.logLevel = .error
            // verify-full against the right CA, with the password: connected over TLS (the server says so).
            let ok = config(pg, HubStoreTLS(mode: .verifyFull, rootCertFile: pki.path("ca.crt")))
            let sessions = try await HubStore.withRunning(ok, logger: logger) { store -> String in
                _ = try await store.migrate()
                // Asked by psql, not by the hub: the server's view of the hub's sessions (open while the pool runs).
                return try await pg.psql("SELECT a.datname, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'hub'")
            }
            let rows = sessions.split(separator: "\n").map(String.init)
            #expect(!rows.isEmpty && rows.allSatisfy { $0 == "fleet|t" }, "the hub's sessions, all encrypted: \(sessions)")

            // Plain: the server refuses the hub's user (hostssl only).
            let plain = await firstQueryError(config(pg, HubStoreTLS(mode: .disable)))
            #expect(plain?.contains("no pg_hba.conf entry") == true && plain?.contains("no encryption") == true, "\(plain ?? "connected")")
            // A server certificate from another CA: refused by the hub before any password is sent.
            let stranger = await firstQueryError(config(pg, HubStoreTLS(mode: .verifyFull, rootCertFile: pki.path("other-ca.crt"))))
            #expect(stranger?.lowercased().contains("certificate") == true, "\(stranger ?? "connected")")
            // A wrong password: the server's message.
            let wrong = await firstQueryError(config(pg, HubStoreTLS(mode: .require), password: "guess"))
            #expect(wrong?.contains("password authentication failed for user \"hub\"") == true, "\(wrong ?? "connected")")
            // A root certificate file that is not there: named before anything is dialled.
            let missing = await firstQueryError(config(pg, HubStoreTLS(mode: .verifyCA, rootCertFile: "/nonexistent/ca.crt")))
            #expect(missing?.contains("root certificate /nonexistent/ca.crt: no such file, or not readable") == true, "\(missing ?? "connected")")
        }
    }

    @Test func theHubBinaryRunsWithTLSEverywhereAndBrokerCredentials() async throws {
        let pki = try TestPKI.make()
        defer { pki.remove() }
        try await Self.withTLSPostgres(pki) { pg in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-hub-deploy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let pgPassword = dir.appendingPathComponent("pg-password").path, mqttPassword = dir.appendingPathComponent("mqtt-password").path
            try "\(Self.password)\n".write(toFile: pgPassword, atomically: true, encoding: .utf8)
            try "hub-secret\n".write(toFile: mqttPassword, atomically: true, encoding: .utf8)
            let pgArgs = ["--pg-port", "\(pg.port)", "--pg-user", "hub", "--pg-database", "fleet", "--pg-password-file", pgPassword,
                          "--pg-sslmode", "verify-full", "--pg-sslrootcert", pki.path("ca.crt")]
            let env = ["PATH": "/usr/bin:/bin", "HOME": dir.path]
            let exe = switchyardExecutable()

            // A token, straight into the database over TLS.
            let token = try await runCommand(exe, ["hub", "token", "create", "--name", "deploy", "--role", "viewer"] + pgArgs, environment: env)
            #expect(token.status == 0, "\(token.stderr)")
            let secret = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            // The same without TLS: the server's refusal, one line.
            let plain = try await runCommand(exe, ["hub", "token", "create", "--name", "x", "--role", "viewer"] + pgArgs.dropLast(4) + ["--pg-sslmode", "disable"],
                                             environment: env)
            #expect(plain.status != 0 && plain.stderr.contains("no encryption"), "\(plain.stderr)")

            let broker = try await MosquittoBroker.start(auth: .init(users: ["hub": "hub-secret", "site-a": "a-secret"], acl: HubSpoofTests.acl))
            defer { broker.stop() }
            let hub = try await PeerProcess.start(exe, ["hub", "run", "--broker", "127.0.0.1:\(broker.port)", "--host-id", "hq",
                                                        "--mqtt-username", "hub", "--mqtt-password-file", mqttPassword,
                                                        "--listen", "127.0.0.1:0", "--tls-cert", pki.path("server.crt"), "--tls-key", pki.path("server.key"),
                                                        "--spool-dir", pki.path("hub-spool")] + pgArgs,
                                                  readyPrefix: "switchyard hub: fleet API on", environment: env)
            defer { hub.stop() }
            let url = try #require(hub.readyWords.first)
            #expect(url.hasPrefix("https://127.0.0.1:"), "\(hub.outputUntilReady)")
            // curl verifies the API's certificate against the CA and gets the fleet with the token.
            let status = try await runCommand("/usr/bin/curl", ["-s", "--cacert", pki.path("ca.crt"), "-o", "/dev/null", "-w", "%{http_code}",
                                                                "-H", "Authorization: Bearer \(secret)", url + "/v1/fleet/status"])
            #expect(status.stdout == "200", "\(status.stdout) \(status.stderr) \(hub.standardError)")
            let plainHTTP = try await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url.replacingOccurrences(of: "https", with: "http") + "/v1/fleet/status"])
            #expect(plainHTTP.stdout != "200")

            // The hub's STATE, read with a site's credentials (the ACL lets sites read STATE): ONLINE, so the hub's
            // own credentials were taken.
            let site = MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "deploy-site-a", username: "site-a", password: "a-secret"))
            defer { site.close() }
            try await site.connect(will: nil)
            var events = site.events.makeAsyncIterator()
            #expect(await events.next() == .connected)
            try await site.subscribe("spBv1.0/STATE/hq")
            var state: String?
            while let e = await events.next() {
                if case .message(let m) = e { state = String(decoding: m.payload, as: UTF8.self); break }
            }
            #expect(state?.contains("\"online\":true") == true, "STATE: \(state ?? "none")")
        }
    }

    @Test func badDeploymentOptionsAreRefusedByName() async throws {
        let exe = switchyardExecutable()
        let cases: [([String], String)] = [
            (["--pg-sslmode", "sometimes"], "--pg-sslmode 'sometimes' is not one of disable, prefer, require, verify-ca, verify-full"),
            (["--pg-password-file", "/nonexistent/pw"], "--pg-password-file /nonexistent/pw: no such file, or not readable"),
            (["--pg-sslmode", "require", "--pg-sslrootcert", "/etc/hostname"], "only used with sslmode verify-ca or verify-full, not require"),
            (["--mqtt-cert", "/etc/hostname"], "give both --mqtt-cert and --mqtt-key, or neither"),
            (["--mqtt-ca", "/nonexistent/ca.pem"], "--mqtt-ca /nonexistent/ca.pem: no such file, or not readable"),
            (["--mqtt-password-file", "/etc/hostname"], "--mqtt-password-file needs --mqtt-username"),
            (["--listen", "0.0.0.0:0"], "refusing to listen on 0.0.0.0:0 without TLS: give --tls-cert and --tls-key, or --insecure"),
            (["--tls-cert", "/etc/hostname"], "give both --tls-cert and --tls-key, or neither"),
        ]
        for (args, message) in cases {
            // Nothing listens on port 9: a run that got past its options would fail differently.
            let r = try await runCommand(exe, ["hub", "run", "--broker", "127.0.0.1:9", "--pg-port", "9"] + args,
                                         environment: ["PATH": "/usr/bin:/bin", "HOME": "/tmp"])
            #expect(r.status == 64, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }
}
