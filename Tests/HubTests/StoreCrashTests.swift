// Crash safety: batches the store acknowledged (write returned) survive PostgreSQL being killed with SIGKILL (the
// postmaster and every backend, no shutdown) and restarted on the same data directory; a batch in flight at the kill
// is there whole or not at all. The throwaway cluster runs with fsync and synchronous_commit on (PostgresServer).
// SIGKILL keeps the kernel's page cache, so this shows that an acknowledged commit is in the WAL, not that the disk
// survives a power cut.

import Foundation
import Hub
import Sparkplug
import Testing
import TestSupport

@Suite struct StoreCrashTests {
    typealias F = StoreFixture

    static func batch(_ n: Int, size: Int) -> [HubRecord] {
        // Batch n: metric "batch-n", `size` samples one second apart.
        [.samples((0..<size).map {
            F.sample(F.siteA, nil, "batch-\(n)", at: F.t0 + UInt64($0) * 1000, .double(Double(n * 100_000 + $0)))
        })]
    }

    @Test func acknowledgedBatchesSurviveSIGKILL() async throws {
        try await withPostgres { server in
            let size = 500
            // Ten acknowledged batches, then one large batch racing the kill.
            let inFlightAcknowledged = try await F.withStore(server) { store -> Bool in
                for n in 0..<10 { try await store.write(Self.batch(n, size: size)) }
                return await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        do {
                            try await store.write(Self.batch(10, size: 20_000))
                            return true
                        } catch {
                            return false
                        }
                    }
                    await server.crash()
                    // A write still waiting now can never be acknowledged (the server is gone): stop it rather than
                    // let it wait for a connection. One cancelled counts as not acknowledged.
                    group.cancelAll()
                    return await group.next() ?? false
                }
            }
            try await server.restart()
            let counts = try await F.withStore(server) { store -> [Int] in
                var counts: [Int] = []
                for n in 0...10 {
                    let history = try await store.history(site: F.siteA, device: nil, metric: "batch-\(n)",
                                                          since: F.t0, until: F.t0 + F.day)
                    // Every value is the one written.
                    #expect(history.enumerated().allSatisfy { $0.element.number == Double(n * 100_000 + $0.offset) })
                    counts.append(history.count)
                }
                return counts
            }
            #expect(Array(counts[0..<10]) == Array(repeating: size, count: 10))
            if inFlightAcknowledged {
                #expect(counts[10] == 20_000)
            } else {
                #expect(counts[10] == 0 || counts[10] == 20_000)
            }
            // The server did crash recovery (not a clean start).
            #expect(server.log.contains("database system was interrupted") || server.log.contains("not properly shut down"))
        }
    }

    /// A cluster whose owner died without stopping it (a killed test process) is stopped and removed by the next
    /// start.
    @Test func aClusterWhoseOwnerDiedIsRemovedByTheNextStart() async throws {
        let orphan = try await PostgresServer.start()
        let other = try await PostgresServer.start()
        do {
            // A pid that no longer runs: a child that has exited and been reaped.
            let exited = Process()
            exited.executableURL = URL(fileURLWithPath: "/bin/true")
            try exited.run()
            exited.waitUntilExit()
            try "\(exited.processIdentifier)\n".write(to: orphan.directory.appendingPathComponent("owner.pid"), atomically: true, encoding: .utf8)
            PostgresServer.reapAbandoned()
            #expect(!FileManager.default.fileExists(atPath: orphan.directory.path))
            await #expect(throws: (any Error).self) { try await orphan.psql("SELECT 1") }  // the server is gone
            // A cluster whose owner (this process) is alive is left alone.
            #expect(FileManager.default.fileExists(atPath: other.directory.path))
            #expect(try await other.psql("SELECT 1").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        } catch {
            await orphan.stop()
            await other.stop()
            throw error
        }
        await orphan.stop()
        await other.stop()
    }
}
