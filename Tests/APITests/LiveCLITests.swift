import Foundation
import Testing
import TestSupport

/// The `switchyard` CLI against a running daemon on loopback (no devices answer:
/// every device address is a closed loopback port).
@Suite("Live: CLI against the daemon", .serialized)
struct LiveCLITests {
    let exe = switchyardExecutable()
    let dir: String
    let siteFile: String
    let profiles = packageRoot.appendingPathComponent("hardware-profiles").path

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-live-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        siteFile = dir + "/site.yaml"
        try Self.site(cap: 3800).write(toFile: siteFile, atomically: true, encoding: .utf8)
    }

    static func site(cap: Int) -> String {
        var s = apiSiteYAML.replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: \(cap)")
        // Closed privileged loopback ports: connection refused at once.
        for p in ["20001", "20002", "20003", "20004", "20006"] { s = s.replacingOccurrences(of: "127.0.0.1:\(p)", with: "127.0.0.1:\(p.suffix(1))") }
        return s
    }

    /// A clean environment: no SWITCHYARD_* and an empty HOME, unless given.
    func run(_ args: [String], env: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        var e = ["PATH": "/usr/bin:/bin", "HOME": dir + "/home"]
        for (k, v) in env { e[k] = v }
        return try await runCommand(exe, args, environment: e)
    }

    /// `withSite: false` restarts on the stored configuration (a given --site wins and is stored as a new version).
    func startDaemon(withSite: Bool = true) async throws -> (PeerProcess, String) {
        let site = withSite ? ["--site", siteFile] : []
        let p = try await PeerProcess.start(exe, ["serve"] + site + ["--state-dir", dir + "/state", "--profiles-dir", profiles,
                                                  "--listen", "127.0.0.1:0", "--tick-ms", "200", "--watchdog-s", "0"],
                                            readyPrefix: "switchyard API listening on",
                                            environment: ["PATH": "/usr/bin:/bin", "HOME": dir + "/home"])
        return (p, try #require(p.readyWords.first))
    }

    func token(_ role: String) async throws -> String {
        let r = try await run(["token", "create", "--state-dir", dir + "/state", "--role", role, "--name", "live-\(role)"])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func cliAgainstARunningDaemon() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let admin = try await token("admin"), viewer = try await token("viewer"), op = try await token("operator")
        #expect(admin.hasPrefix("sy_"))
        let (daemon, url) = try await startDaemon()
        defer { daemon.stop() }
        let auth = ["--server", url, "--token", admin]

        let st = try await run(["status", "--json"] + auth)
        #expect(st.status == 0, "\(st.stderr)")
        #expect(st.stdout.contains("\"site\" : \"hil\""), "\(st.stdout)")
        #expect(st.stdout.contains("\"config_version\" : 1"))

        // Lookup order: env, then the config file.
        let viaEnv = try await run(["devices"], env: ["SWITCHYARD_SERVER": url, "SWITCHYARD_TOKEN": viewer])
        #expect(viaEnv.status == 0 && viaEnv.stdout.contains("asic-1"), "\(viaEnv.stderr)")
        try FileManager.default.createDirectory(atPath: dir + "/home/.config/switchyard", withIntermediateDirectories: true)
        try "server: \(url)\ntoken: \"\(viewer)\"\n".write(toFile: dir + "/home/.config/switchyard/config.yaml", atomically: true, encoding: .utf8)
        let viaFile = try await run(["explain", "asic-1"])
        #expect(viaFile.status == 0 && viaFile.stdout.contains("asic-1"), "\(viaFile.stderr)")
        let flagWins = try await run(["status", "--token", "sy_wrong"])
        #expect(flagWins.status == 77)
        try FileManager.default.removeItem(atPath: dir + "/home/.config/switchyard/config.yaml")

        // Exit codes: auth 77, unreachable 69, usage 64, validation 65; each error one line.
        let forbidden = try await run(["event", "create", "--cap-kw", "2000", "--until", "+1h", "--reason", "x", "--server", url, "--token", viewer])
        #expect(forbidden.status == 77)
        #expect(forbidden.stderr.split(separator: "\n").count == 1 && forbidden.stderr.contains("needs 'operator'"), "\(forbidden.stderr)")
        #expect(try await run(["status", "--server", url]).status == 77)
        #expect(try await run(["status", "--server", "http://127.0.0.1:9", "--token", admin]).status == 69)
        let usage = try await run(["status"])
        #expect(usage.status == 64 && usage.stderr.contains("no server"))

        let badFile = dir + "/bad.yaml"
        try Self.site(cap: 3800).replacingOccurrences(of: "cap_kw: 3800", with: "cap_kw: lots").write(toFile: badFile, atomically: true, encoding: .utf8)
        let v = try await run(["config", "validate", badFile, "--profiles-dir", profiles])
        #expect(v.status == 65 && v.stderr.hasPrefix("\(badFile):7:"), "\(v.stderr)")
        let badApply = try await run(["config", "apply", badFile, "--comment", "bad"] + auth)
        #expect(badApply.status == 65 && badApply.stderr.contains("bad.yaml:7:"), "\(badApply.stderr)")

        // Diff, apply, history, rollback.
        let newFile = dir + "/new.yaml"
        try Self.site(cap: 3000).write(toFile: newFile, atomically: true, encoding: .utf8)
        #expect(try await run(["config", "validate", newFile, "--profiles-dir", profiles]).status == 0)
        let diff = try await run(["config", "diff", newFile] + auth)
        #expect(diff.stdout.contains("~ tree.children[xfmr-1].cap_kw: 3800 → 3000"), "\(diff.stdout)\(diff.stderr)")
        let apply = try await run(["config", "apply", newFile, "--comment", "lower xfmr-1"] + auth)
        #expect(apply.status == 0 && apply.stdout.hasPrefix("applied v2"), "\(apply.stdout)\(apply.stderr)")
        let stale = try await run(["config", "apply", newFile, "--comment", "stale", "--if-match", "1"] + auth)
        #expect(stale.status == 75, "\(stale.stderr)")
        let hist = try await run(["config", "history", "--json"] + auth)
        #expect(hist.stdout.contains("\"comment\" : \"lower xfmr-1\""))
        let rb = try await run(["config", "rollback", "1", "--comment", "undo"] + auth)
        #expect(rb.status == 0 && rb.stdout.contains("as v3"), "\(rb.stdout)\(rb.stderr)")

        // Events and modes as an operator.
        let ev = try await run(["event", "create", "--cap-kw", "2000", "--until", "+1h", "--reason", "grid", "--id", "ers-9", "--server", url, "--token", op])
        #expect(ev.status == 0 && ev.stdout.contains("in force now"), "\(ev.stderr)")
        #expect(try await run(["event", "list", "--json", "--server", url, "--token", viewer]).stdout.contains("ers-9"))
        let mode = try await run(["mode", "set", "asic-1", "manual", "--setpoint-kw", "300", "--for", "2h", "--server", url, "--token", op])
        #expect(mode.status == 0, "\(mode.stderr)")
        #expect(try await run(["event", "cancel", "ers-9", "--server", url, "--token", op]).status == 0)
        #expect(try await run(["event", "cancel", "ers-9", "--server", url, "--token", op]).status == 1)
        let audit = try await run(["audit", "--json", "--server", url, "--token", op])
        #expect(audit.stdout.contains("PUT /v1/devices/asic-1/mode") && audit.stdout.contains("live-operator"))
        // The admin API creates tokens too.
        let t = try await run(["token", "create", "--role", "viewer", "--name", "remote-made"] + auth)
        #expect(t.status == 0 && t.stdout.hasPrefix("sy_"), "\(t.stderr)")
        #expect(try await run(["status", "--server", url, "--token", t.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]).status == 0)
    }

    /// kill -9 while `config apply` runs: after a restart the config is exactly the old or the new version.
    @Test func killDuringApplyLeavesOldOrNew() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let admin = try await token("admin")
        var previous = Self.site(cap: 3800)
        for round in 0..<3 {
            let (daemon, url) = try await startDaemon(withSite: round == 0)
            let next = Self.site(cap: 3000 + round * 100)
            let f = dir + "/round\(round).yaml"
            try next.write(toFile: f, atomically: true, encoding: .utf8)
            let apply = Process()
            apply.executableURL = URL(fileURLWithPath: exe)
            apply.arguments = ["config", "apply", f, "--comment", "round \(round)", "--server", url, "--token", admin]
            apply.standardOutput = FileHandle.nullDevice
            apply.standardError = FileHandle.nullDevice
            try apply.run()
            if round > 0 { apply.waitUntilExit() }  // round 0: kill at once; later rounds: kill after the reply too
            daemon.signal(SIGKILL)
            daemon.stop()
            apply.waitUntilExit()

            let (again, url2) = try await startDaemon(withSite: false)
            let shown = try await run(["config", "show", "--server", url2, "--token", admin])
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout == previous || shown.stdout == next, "round \(round): running config is neither old nor new")
            let status = try await run(["status", "--json", "--server", url2, "--token", admin])
            #expect(status.status == 0)
            if round > 0 { #expect(shown.stdout == next, "an acknowledged apply must survive kill -9") }
            previous = shown.stdout
            again.stop()
        }
    }

    @Test func refusesPlainHTTPOffLoopbackAndServesTLS() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let refused = try await run(["serve", "--site", siteFile, "--state-dir", dir + "/state", "--profiles-dir", profiles, "--listen", "0.0.0.0:0"])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("refusing to listen on 0.0.0.0:0 without TLS"), "\(refused.stderr)")
        // TLS from cert/key files (a self-signed pair made here), checked with curl.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { return }
        let gen = try await runCommand("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                                                            "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let admin = try await token("admin")
        let p = try await PeerProcess.start(exe, ["serve", "--site", siteFile, "--state-dir", dir + "/state", "--profiles-dir", profiles,
                                                  "--listen", "127.0.0.1:0", "--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem",
                                                  "--tick-ms", "200", "--watchdog-s", "0"],
                                            readyPrefix: "switchyard API listening on", environment: ["PATH": "/usr/bin:/bin", "HOME": dir + "/home"])
        defer { p.stop() }
        let url = try #require(p.readyWords.first)
        #expect(url.hasPrefix("https://"))
        let ok = try await runCommand("/usr/bin/curl", ["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(admin)", url + "/v1/status"])
        #expect(ok.stdout == "200", "\(ok.stdout) \(ok.stderr)")
        let plain = try await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url.replacingOccurrences(of: "https", with: "http") + "/healthz"])
        #expect(plain.stdout != "200")
    }

    /// Control characters stored in a reason reach the terminal escaped, never raw.
    @Test func storedControlCharactersAreEscapedInTables() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let op = try await token("operator")
        let (daemon, url) = try await startDaemon()
        defer { daemon.stop() }
        let ev = try await run(["event", "create", "--cap-kw", "2000", "--until", "+1h", "--reason", "grid\u{1B}[2J\r\nFAKE\u{7}",
                                "--id", "ers-esc", "--server", url, "--token", op])
        #expect(ev.status == 0, "\(ev.stderr)")
        let list = try await run(["event", "list", "--server", url, "--token", op])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(!list.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7F }, "raw control characters: \(list.stdout.debugDescription)")
        #expect(list.stdout.contains(#"grid\x1b[2J\r\nFAKE\x07"#), "\(list.stdout)")
        #expect(list.stdout.split(separator: "\n").count == 2, "one header and one row: \(list.stdout)")
    }

    /// The server takes the `config apply` request and the reply never comes: the change may be
    /// committed, so the CLI must not say "unreachable".
    @Test func aLostApplyReplyIsOutcomeUnknown() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/dropper.py"
        try """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0)); s.listen(8)
        import sys
        sys.stdout.write("READY %d\\n" % s.getsockname()[1]); sys.stdout.flush()  # one write: the reader may see a partial line
        while True:
            c, _ = s.accept()
            data = b""
            while b"\\r\\n\\r\\n" not in data:
                chunk = c.recv(65536)
                if not chunk: break
                data += chunk
            c.close()
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let dropper = try await PeerProcess.start("/usr/bin/env", ["python3", "-u", script])
        defer { dropper.stop() }
        let r = try await run(["config", "apply", siteFile, "--comment", "lost", "--if-match", "1",
                               "--server", "http://127.0.0.1:\(dropper.port)", "--token", "sy_x"])
        #expect(r.status == 76, "\(r.status): \(r.stderr)")
        #expect(r.stderr.contains("outcome unknown: check `config history`"), "\(r.stderr)")
        // Nothing listening at all: the request was never sent, so that stays "unreachable".
        let refused = try await run(["config", "apply", siteFile, "--comment", "x", "--if-match", "1",
                                     "--server", "http://127.0.0.1:9", "--token", "sy_x"])
        #expect(refused.status == 69, "\(refused.stderr)")
    }

    /// §5: a given --site wins over a stale state dir, is stored as a new version, and says so; without --site
    /// the stored configuration runs.
    @Test func aGivenSiteWinsLoudlyAndARestartWithoutItKeepsTheStoredOne() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let admin = try await token("admin")
        let (first, url) = try await startDaemon()
        let newFile = dir + "/new.yaml"
        try Self.site(cap: 3000).write(toFile: newFile, atomically: true, encoding: .utf8)
        let apply = try await run(["config", "apply", newFile, "--comment", "lower", "--server", url, "--token", admin])
        #expect(apply.status == 0 && apply.stdout.hasPrefix("applied v2"), "\(apply.stderr)")
        first.stop()

        // The old file again, given explicitly: it wins, as v3, with a NOTICE on stderr.
        let loud = try await PeerProcess.start(exe, ["serve", "--site", siteFile, "--state-dir", dir + "/state", "--profiles-dir", profiles,
                                                     "--listen", "127.0.0.1:0", "--tick-ms", "200", "--watchdog-s", "0"],
                                               readyPrefix: "NOTICE: configuration", readyOnStderr: true,
                                               environment: ["PATH": "/usr/bin:/bin", "HOME": dir + "/home"])
        #expect(loud.outputUntilReady.contains("differs from the stored v2") && loud.outputUntilReady.contains("stored as v3"),
                "\(loud.outputUntilReady)")
        loud.stop()

        let (again, url2) = try await startDaemon(withSite: false)
        defer { again.stop() }
        let shown = try await run(["config", "show", "--server", url2, "--token", admin])
        #expect(shown.stdout == Self.site(cap: 3800), "the given file is what runs")
        let hist = try await run(["config", "history", "--json", "--server", url2, "--token", admin])
        #expect(hist.stdout.contains("replaces v2"), "\(hist.stdout)")
        #expect(!hist.stdout.contains("\"version\" : 4"), "a restart without --site stores nothing")
    }
}
