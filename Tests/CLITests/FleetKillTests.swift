import Foundation
import Testing
import TestSupport

// Store-and-forward survives kill -9 (issue 17, docs/fleet.md): a real `switchyard serve` on the demo site with a
// `fleet:` section and no broker buffers its ticks in its SQLite store; it is SIGKILLed, started again on the same
// state directory, and only then do the broker (Debian's mosquitto) and the pinned pysparkplug host come up.
// Every sample that was in the store when the first process died reaches the host, flagged historical, in order,
// once.

@Suite("CLI: fleet store-and-forward across kill -9", .serialized, .timeLimit(.minutes(3)))
struct FleetKillTests {
    let exe = switchyardExecutable()

    /// The loop times (ms) of the samples in the store's fleet buffer, oldest first (read with Python's sqlite3,
    /// a second connection, as the daemon writes).
    func bufferedTimes(_ stateDir: String) async throws -> [Int64] {
        let script = """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1], timeout=10)
        print(" ".join(str(round(at * 1000)) for (at,) in db.execute("SELECT at FROM fleet_buffer ORDER BY id")))
        """
        let r = try await runCommand("/usr/bin/env", ["python3", "-c", script, stateDir + "/switchyard.sqlite"])
        guard r.status == 0 else { throw TimedOut(description: "reading the fleet buffer: \(r.stderr)") }
        return r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int64($0) }
    }

    /// One message to the host's control topic (paho-mqtt, as the host itself uses).
    func control(_ port: Int, _ word: String) async throws {
        let script = """
        import sys
        import paho.mqtt.publish as publish
        publish.single("switchyard-test/control", sys.argv[2], qos=1, hostname="127.0.0.1", port=int(sys.argv[1]))
        """
        let r = try await runCommand("/usr/bin/env", ["python3", "-c", script, "\(port)", word])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func bufferedSamplesSurviveKill9AndAreAllSent() async throws {
        let dir = try scratchDir("sy-fleet-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try freeLoopbackPort()
        // The demo site with its devices out of reach (the loop ticks on in comm-loss) and a broker not yet there.
        let site = try ServePriceFeedTests.closedSite(in: dir)
        try (try String(contentsOfFile: site, encoding: .utf8)
             + "\nfleet:\n  broker: {host: 127.0.0.1, port: \(port)}\n  group_id: kill-test\n  primary_host_id: hq\n")
            .write(toFile: site, atomically: true, encoding: .utf8)
        let stateDir = dir.appendingPathComponent("state").path
        let args = ["serve", "--site", site, "--state-dir", stateDir,
                    "--profiles-dir", packageRoot.appendingPathComponent("hardware-profiles").path,
                    "--listen", "127.0.0.1:0", "--watchdog-s", "0", "--tick-ms", "100"]

        let first = try LoggedProcess(exe, args, logsIn: dir, name: "serve-1")
        defer { first.stop() }
        var before: [Int64] = []
        try await waitUntil("50 samples in the fleet buffer") {
            before = (try? await bufferedTimes(stateDir)) ?? []
            return before.count >= 50
        }
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        #expect(first.process.terminationReason == .uncaughtSignal)
        // What the store holds after the kill: at least what it held before (nothing buffered is rolled back).
        let atKill = try await bufferedTimes(stateDir)
        #expect(Array(atKill.prefix(before.count)) == before)

        let second = try LoggedProcess(exe, args, logsIn: dir, name: "serve-2")
        defer { second.stop() }
        try await waitUntil("the restarted daemon to buffer more") { (try? await bufferedTimes(stateDir))?.count ?? 0 > atKill.count }

        let broker = try await MosquittoBroker.start(port: port)
        defer { broker.stop() }
        let host = try await PeerProcess.python("sparkplug_host.py", ["\(port)", "hq", "1000000"])
        defer { host.stop() }
        try await control(port, "online")
        try await waitUntil("the backfill") { second.stderr.contains("fleet: backfill done") }
        try await control(port, "done")
        _ = await host.waitForExit()
        #expect(second.isRunning)

        let line = try #require(host.standardOutput.split(separator: "\n").last.map(String.init))
        let verdict = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(verdict["errors"] as? [String] == [], "\(line.prefix(2_000))")
        let historical = (verdict["historical"] as? [String: [[Any]]])?["Site/Governor Mode"] ?? []
        let received = historical.map { ($0.first as? NSNumber)?.int64Value ?? -1 }
        #expect(zip(received, received.dropFirst()).allSatisfy { $0 < $1 }, "oldest first, no duplicates")
        let missing = Set(atKill).subtracting(received)
        #expect(missing.isEmpty, "\(missing.count) of the \(atKill.count) samples buffered by the killed daemon never arrived")
        #expect(received.count > atKill.count, "and the restarted daemon's own offline samples follow")
        print("kill -9: \(atKill.count) samples in the store at the kill; \(received.count) historical samples received")
    }
}
