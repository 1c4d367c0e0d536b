// `switchyard hub`'s options (--listen, --retention-days) are validated before anything starts (no broker or PostgreSQL needed): one error line,
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
        for good in ["127.0.0.1:0", "[::1]:8444", "localhost:10"] {
            let r = try await runCommand(exe, ["hub", "run", "--listen", good, "--host-id", "a/b"])
            #expect(r.status == 64, "\(good): \(r.stderr)")
            #expect(!r.stderr.contains("--listen"), "\(good): \(r.stderr)")
            #expect(r.stderr.contains("--host-id 'a/b'"), "\(good): \(r.stderr)")
        }
    }

    @Test func retentionDaysIsOneToThreeThousandSixHundredFifty() async throws {
        for bad in ["0", "3651", "100000"] {
            let r = try await runCommand(exe, ["hub", "run", "--retention-days", bad])
            #expect(r.status == 64, "\(bad): \(r.stderr)")
            #expect(r.stderr.contains("--retention-days must be 1…3650 (days of samples kept), not \(bad)"), "\(bad): \(r.stderr)")
        }
        for good in ["1", "3650"] {
            let r = try await runCommand(exe, ["hub", "run", "--retention-days", good, "--host-id", "a/b"])
            #expect(r.status == 64 && !r.stderr.contains("--retention-days") && r.stderr.contains("--host-id 'a/b'"), "\(good): \(r.stderr)")
        }
    }
}
