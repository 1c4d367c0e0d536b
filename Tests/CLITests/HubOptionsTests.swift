// `switchyard hub`'s options are validated before anything starts (no broker or PostgreSQL needed): one error line,
// exit 64.

import Foundation
import Testing
import TestSupport

@Suite("CLI hub options")
struct HubOptionsTests {
    let exe = switchyardExecutable()

    @Test func listenTakesHostAndAPortIncludingZero() async throws {
        for bad in ["127.0.0.1:65536", "127.0.0.1", ":8444", "127.0.0.1:x", "127.0.0.1:-1"] {
            let r = try await runCommand(exe, ["hub", "run", "--listen", bad])
            #expect(r.status == 64, "\(bad): \(r.stderr)")
            #expect(r.stderr.contains("--listen '\(bad)' should be HOST:PORT"), "\(bad): \(r.stderr)")
        }
        // Port 0 (a free port) and an ordinary port pass --listen's check: the next check (the host id) is the one
        // that fails.
        for good in ["127.0.0.1:0", "0.0.0.0:8444", "localhost:10"] {
            let r = try await runCommand(exe, ["hub", "run", "--listen", good, "--host-id", "a/b"])
            #expect(r.status == 64, "\(good): \(r.stderr)")
            #expect(!r.stderr.contains("--listen"), "\(good): \(r.stderr)")
            #expect(r.stderr.contains("--host-id 'a/b'"), "\(good): \(r.stderr)")
        }
    }
}
