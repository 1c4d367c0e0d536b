import Foundation
import Testing
import TestSupport

/// TestSupport's process wrapper (in this target to spare a test bundle).
@Suite("PeerProcess drains its child")
struct PeerProcessTests {
    /// A child that prints 1 MiB on each stream after READY, then DONE, and exits. A wrapper that
    /// stopped reading at READY would leave it blocked on a full pipe (64 KiB) forever: the time
    /// limit turns that hang into a failure.
    @Test(.timeLimit(.minutes(1))) func chattyChildRunsToTheEnd() async throws {
        let script = """
            import sys
            print("READY 1234", flush=True)
            line = "x" * 1023 + "\\n"
            for _ in range(1024):
                sys.stdout.write(line)
                sys.stderr.write(line)
            sys.stdout.write("DONE\\n")
            sys.stdout.flush()
            """
        let peer = try await PeerProcess.start("/usr/bin/env", ["python3", "-u", "-c", script])
        #expect(peer.port == 1234)
        let status = await peer.waitForExit()
        #expect(status == 0, "\(peer.standardError.suffix(500))")
        let read = peer.bytesRead
        #expect(read.stdout == "READY 1234\n".utf8.count + 1024 * 1024 + "DONE\n".utf8.count)
        #expect(read.stderr == 1024 * 1024)
        #expect(peer.standardOutput.hasSuffix("x\nDONE\n"))
        #expect(peer.standardOutput.utf8.count <= 256 * 1024)
    }

    @Test(.timeLimit(.minutes(1))) func childExitingBeforeReadyReportsItsStderr() async {
        do {
            _ = try await PeerProcess.start("/usr/bin/env", ["python3", "-c", "import sys; sys.stderr.write('no port today\\n'); sys.exit(3)"])
            Issue.record("start should have thrown")
        } catch {
            #expect("\(error)".contains("exited 3 before ready: no port today"), "\(error)")
        }
    }
}
