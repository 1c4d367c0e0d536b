// The hub's store across a PostgreSQL crash (SIGKILL) with a write in flight, and a restart a few seconds later: the
// write in flight ends (committed or failed: the host's writer retries a failure), and the next write succeeds. A
// write that neither returns nor fails stops the host's record writer for good (found by the chaos soak).

import Foundation
import Hub
import Testing
import TestSupport

@Suite("Hub store: PostgreSQL crash with a write in flight", .serialized, .timeLimit(.minutes(3)))
struct StoreOutageTests {
    typealias F = StoreFixture

    /// `body`'s result, or nil if it has not finished within `limit` of real time (it is then left running).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
        let box = ResultBox<T>()
        let task = Task { box.set(await body()) }
        _ = task
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let r = box.get() { return r }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return box.get()
    }

    /// Direct, and through a TCP relay (as behind a proxy such as HAProxy or pgbouncer: while the server is down the
    /// relay accepts a connection and then closes it).
    @Test(arguments: [false, true])
    func aWriteInFlightAtACrashEndsAndTheNextOneLands(relayed: Bool) async throws {
        try await withPostgres { server in
            let relay = relayed ? try TCPRelay(targetPort: server.port) : nil
            defer { relay?.stop() }
            var config = F.configuration(server)
            if let relay { config.port = relay.port }
            try await HubStore.withRunning(config, logger: F.logger) { store in
                try await store.migrate()
                try await store.write(StoreCrashTests.batch(0, size: 100))
                let inFlight = Task { () -> String in
                    do { try await store.write(StoreCrashTests.batch(1, size: 50_000)); return "committed" } catch { return "failed: \(error)" }
                }
                // Crash once the write is inside its transaction (the server shows it), not before it starts.
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline {
                    let busy = try await server.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()")
                    if busy.trimmingCharacters(in: .whitespacesAndNewlines) != "0" { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                await server.crash()
                try await Task.sleep(for: .seconds(2))
                try await server.restart()
                let first = await Self.within(.seconds(60)) { await inFlight.value }
                #expect(first != nil, "the write in flight at the crash neither returned nor failed within 60 s of the restart")
                let next = await Self.within(.seconds(60)) { () -> String in
                    do { try await store.write(StoreCrashTests.batch(2, size: 100)); return "committed" } catch { return "failed: \(error)" }
                }
                #expect(next == "committed", "the next write: \(next ?? "never ended")")
                print("in flight: \(first ?? "never ended"); next: \(next ?? "never ended")")
            }
        }
    }
}

final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T?
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T? { lock.withLock { value } }
}
