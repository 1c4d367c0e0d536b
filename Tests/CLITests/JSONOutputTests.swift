import Foundation
import Testing
import TestSupport

/// Issue 14: `--json` output is built with Codable (never by string interpolation); it parses and carries the fields.
@Suite("CLI: --json output is JSON")
struct JSONOutputTests {
    let exe = switchyardExecutable()

    @Test func tokenCreateAndRevokeJSON() async throws {
        let dir = try scratchDir("sy-json")
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state").path
        let name = "ops-night_shift.1"  // names are 1…64 of A-Z a-z 0-9 . _ -
        let r = try await runCommand(exe, ["token", "create", "--state-dir", state, "--role", "viewer", "--name", name, "--json"],
                                     environment: ["HOME": dir.path, "PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String], "\(r.stdout)")
        #expect(obj["name"] == name)
        #expect(obj["role"] == "viewer")
        #expect(obj["token"]?.hasPrefix("sy_") == true)
        let id = try #require(obj["id"])
        let v = try await runCommand(exe, ["token", "revoke", id, "--state-dir", state, "--json"],
                                     environment: ["HOME": dir.path, "PATH": "/usr/bin:/bin"])
        #expect(v.status == 0, "\(v.stderr)")
        let revoked = try #require(try JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as? [String: Any], "\(v.stdout)")
        #expect(revoked["ok"] as? Bool == true && revoked["id"] as? String == id)
    }

    @Test func configValidateJSON() async throws {
        let site = packageRoot.appendingPathComponent("examples/demo-site.yaml").path
        let r = try await runCommand(exe, ["config", "validate", site, "--json"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        #expect(obj["valid"] as? Bool == true && obj["site"] as? String == "demo" && obj["devices"] as? Int == 38)
    }
}
