import Foundation
import Testing
import TestSupport

/// With `--json`, a failing command prints one JSON object on stderr: `error`, and for an error in a
/// file also `file`, `line` and `column` (Switchyard.swift's `reportAndExit` and `printError`).
@Suite("CLI: --json errors carry their position")
struct JSONErrorTests {
    let exe = switchyardExecutable()

    func object(_ stderr: String) throws -> [String: Any] {
        let lines = stderr.split(separator: "\n")
        let only = try #require(lines.count == 1 ? lines.first : nil, "not one line: \(stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(only.utf8)) as? [String: Any], "\(only)")
    }

    func tempFile(_ name: String, _ text: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-jsonerr-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func aFileErrorNamesFileLineAndColumn() async throws {
        let site = try tempFile("bad.yaml", "site: {id: x\n  oops: [\n")
        defer { try? FileManager.default.removeItem(at: site.deletingLastPathComponent()) }
        let r = try await runCommand(exe, ["dispatch", "--site", site.path, "--snapshot", site.path, "--json"])
        #expect(r.status != 0)
        let o = try object(r.stderr)
        #expect(o["file"] as? String == site.path, "\(o)")
        #expect(o["line"] as? Int == 2, "\(o)")
        #expect((o["column"] as? Int).map { $0 >= 1 } == true, "\(o)")
        #expect((o["error"] as? String)?.hasPrefix("\(site.path):2:") == true, "\(o)")
    }

    @Test func probeErrorsAreJSONToo() async throws {
        // Before, probe wrote "error: …" as text even with --json.
        let r = try await runCommand(exe, ["probe", "--profile", "/nonexistent/profile.yaml", "--tcp", "127.0.0.1:9", "--json"])
        #expect(r.status == 65, "\(r.stderr)")
        let o = try object(r.stderr)
        #expect((o["error"] as? String)?.isEmpty == false, "\(o)")
        #expect(r.stdout.isEmpty)
        // Without --json it stays one text line.
        let t = try await runCommand(exe, ["probe", "--profile", "/nonexistent/profile.yaml", "--tcp", "127.0.0.1:9"])
        #expect(t.stderr.hasPrefix("error: ") && t.stderr.split(separator: "\n").count == 1, "\(t.stderr)")
    }

    @Test func aMessageWithoutPositionHasOnlyError() async throws {
        let r = try await runCommand(exe, ["token", "create", "--role", "operator", "--json"])
        let o = try object(r.stderr)
        #expect(Set(o.keys) == ["error"], "\(o)")
    }
}
