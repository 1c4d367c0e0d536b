import Foundation
import Testing
import TestSupport

/// Every failure is one `error: …` line on stderr; with `--json`, one JSON object `{"error": …}`.
@Suite("CLI error lines")
struct ErrorLineTests {
    let exe = switchyardExecutable()

    func lines(_ s: String) -> [String] { s.split(separator: "\n").map(String.init) }

    func jsonError(_ stderr: String) throws -> String {
        let only = try #require(lines(stderr).count == 1 ? lines(stderr).first : nil, "not one line: \(stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(only.utf8)) as? [String: Any], "\(only)")
        return try #require(obj["error"] as? String, "\(only)")
    }

    @Test func aNegativeAddressSaysWhatIsWrong() async throws {
        let r = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:9", "--address", "-1"])
        #expect(r.status == 64)
        #expect(lines(r.stderr).count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("error: --address '-1' is not a register address 0…65535"), "\(r.stderr)")
        #expect(!r.stderr.contains("Missing value"))
        let j = try await runCommand(exe, ["modbus", "read", "--tcp", "127.0.0.1:9", "--address", "-1", "--json"])
        #expect(j.status == 64)
        #expect(try jsonError(j.stderr).hasPrefix("--address '-1' is not a register address"))
        #expect(j.stdout.isEmpty)
    }

    @Test func usageErrorsAreOneErrorLine() async throws {
        let r = try await runCommand(exe, ["token", "create", "--role", "operator"])
        #expect(r.status == 64)
        #expect(lines(r.stderr) == ["error: Missing expected argument '--name <name>'"], "\(r.stderr)")
        let j = try await runCommand(exe, ["token", "create", "--role", "operator", "--json"])
        #expect(try jsonError(j.stderr) == "Missing expected argument '--name <name>'")
        // An unknown option names itself.
        let u = try await runCommand(exe, ["status", "--bogus"])
        #expect(u.status == 64 && lines(u.stderr).count == 1 && u.stderr.hasPrefix("error: ") && u.stderr.contains("--bogus"), "\(u.stderr)")
    }

    @Test func runtimeErrorsAreJSONWithJSON() async throws {
        // Nothing listens on port 9 of loopback: unreachable, exit 69.
        let r = try await runCommand(exe, ["status", "--server", "http://127.0.0.1:9", "--token", "sy_x"], environment: ["HOME": "/nonexistent"])
        #expect(r.status == 69, "\(r.stderr)")
        #expect(lines(r.stderr).count == 1 && r.stderr.hasPrefix("error: cannot reach http://127.0.0.1:9"), "\(r.stderr)")
        let j = try await runCommand(exe, ["status", "--server", "http://127.0.0.1:9", "--token", "sy_x", "--json"], environment: ["HOME": "/nonexistent"])
        #expect(j.status == 69)
        #expect(try jsonError(j.stderr).hasPrefix("cannot reach http://127.0.0.1:9"))
        // A file error keeps its FILE:LINE:COL position inside the JSON message.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-err-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let site = dir.appendingPathComponent("bad.yaml")
        try "site: {id: x\n  oops: [\n".write(to: site, atomically: true, encoding: .utf8)
        let f = try await runCommand(exe, ["dispatch", "--site", site.path, "--snapshot", site.path, "--json"])
        #expect(f.status != 0)
        let message = try jsonError(f.stderr)
        #expect(message.hasPrefix(site.path + ":2:"), "\(message)")
    }

    @Test func helpStillPrintsNormally() async throws {
        let r = try await runCommand(exe, ["modbus", "read", "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("--address"))
        #expect(!r.stderr.contains("error"))
    }
}
