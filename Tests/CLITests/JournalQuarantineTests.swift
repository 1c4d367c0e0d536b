import Foundation
import Testing
import TestSupport

/// Issue 12 §7: a corrupt OpenADR report journal is moved aside and reported loudly; serve goes on.
@Suite("serve: a corrupt report journal", .serialized)
struct JournalQuarantineTests {
    let exe = switchyardExecutable()

    @Test func aCorruptJournalIsQuarantinedLoudlyAndServeGoesOn() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sy-quarantine-\(UUID().uuidString)")
        let state = dir.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = #"{"pending": [{"key": tru"#
        try garbage.write(to: state.appendingPathComponent("openadr-reports.json"), atomically: true, encoding: .utf8)
        // A VTN that is not there (closed port 1): the ledger is built at start anyway.
        let config = dir.appendingPathComponent("openadr.json").path
        try """
        {"vtn_url": "http://127.0.0.1:1/openadr3/3.0.1", "token_url": "http://127.0.0.1:1/auth/token",
         "client_id": "ven-1", "client_secret": "pw", "poll_s": 60}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let serve = try LoggedProcess(exe, ["serve", "--site", try ServePriceFeedTests.closedSite(in: dir), "--state-dir", state.path,
                                            "--openadr", config, "--listen", "127.0.0.1:0", "--watchdog-s", "0"],
                                      logsIn: dir, name: "serve")
        defer { serve.stop() }
        try await waitUntil("the quarantine to be reported") { serve.stderr.contains("report journal") }
        let moved = try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasPrefix("openadr-reports.json.corrupt-") }
        #expect(moved.count == 1, "\(moved)")
        if let m = moved.first {
            #expect(try String(contentsOfFile: state.appendingPathComponent(m).path, encoding: .utf8) == garbage)
            #expect(serve.stderr.contains(m), "the log names where it went: \(serve.stderr.suffix(1000))")
        }
        #expect(serve.stderr.contains("ERROR"), "\(serve.stderr.suffix(1000))")
        #expect(serve.isRunning, "serve goes on")
    }
}
