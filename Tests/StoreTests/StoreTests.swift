import Basics
import Foundation
import GRDB
import Testing
@testable import Store

@Suite("Store")
struct StoreTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ])
    func sha256MatchesNISTVectors(input: String, digest: String) {
        #expect(SHA256.hex(input) == digest)
    }

    @Test func sha256AcrossBlockBoundaries() {
        // 55, 56 and 64 bytes straddle the padding boundary; compare with known digests.
        #expect(SHA256.hex(String(repeating: "a", count: 55)) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(SHA256.hex(String(repeating: "a", count: 56)) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        #expect(SHA256.hex(String(repeating: "a", count: 64)) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    @Test func migrationsAreNamedAndApplied() throws {
        let s = try Store.inMemory()
        #expect(try s.appliedMigrations() == ["v1-config-audit-events-decisions-series-tokens", "v2-fleet-buffer"])
    }

    @Test func onDiskIsWALAndSurvivesReopen() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let s = try Store.open(directory: dir)
            let mode = try s.db.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(mode == "wal")
            try s.appendConfig(yaml: "a: 1\n", author: "t", comment: "one", at: 1, expected: 0)
        }
        let again = try Store.open(directory: dir)
        #expect(try again.latestConfig()?.yaml == "a: 1\n")
        #expect(try again.appliedMigrations().count == 2)  // v1 and v2-fleet-buffer
    }

    @Test func configVersionsUseOptimisticConcurrency() throws {
        let s = try Store.inMemory()
        let v1 = try s.appendConfig(yaml: "x: 1\n", author: "alice", comment: "first", at: 10, expected: 0)
        #expect(v1.version == 1)
        #expect(v1.sha256 == SHA256.hex("x: 1\n"))
        let v2 = try s.appendConfig(yaml: "x: 2\n", author: "bob", comment: "second", at: 20, expected: 1,
                                    audit: AuditEntry(at: 20, actor: "bob", role: "admin", action: "PUT /v1/config", status: 200))
        #expect(v2.version == 2)
        #expect(throws: StoreError.self) { try s.appendConfig(yaml: "x: 3\n", author: "carol", comment: "stale", at: 30, expected: 1) }
        #expect(try s.latestConfig()?.version == 2)
        #expect(try s.configHistory().map(\.version) == [2, 1])
        #expect(try s.auditLog().first?.target == "config v2")
    }

    @Test func twoConcurrentAppendsOneWins() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try Store.open(directory: dir)
        try s.appendConfig(yaml: "v: 0\n", author: "t", comment: "base", at: 0, expected: 0)
        for round in 0..<10 {
            let expected = try s.latestConfig()!.version
            let results = await withTaskGroup(of: Bool.self) { g in
                for i in 0..<2 {
                    g.addTask { (try? s.appendConfig(yaml: "v: \(round)-\(i)\n", author: "op\(i)", comment: "race", at: 1, expected: expected)) != nil }
                }
                return await g.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1, "round \(round): \(results)")
        }
        #expect(try s.latestConfig()?.version == 11)
    }

    @Test func tokensStoreOnlyTheHash() throws {
        let s = try Store.inMemory()
        let t = try Tokens.create(in: s, name: "alice", role: .operator, createdBy: "local:root", creatorRole: "local", at: 100,
                                  validForS: 3600, action: "token create", status: 0)
        #expect(t.secret.hasPrefix("sy_") && t.secret.count == 67)
        let stored = try #require(try s.token(hash: Tokens.hash(t.secret)))
        #expect(stored.role == .operator)
        #expect(stored.secretHash != t.secret)
        #expect(stored.isValid(at: 100 + 3599))
        #expect(!stored.isValid(at: 100 + 3600))
        let raw = try s.db.read { db in try String.fetchAll(db, sql: "SELECT secretHash FROM api_token") }
        #expect(!raw.contains(t.secret))
        #expect(try s.revokeToken(id: stored.id, at: 200))
        #expect(try !s.revokeToken(id: stored.id, at: 201))
        #expect(try s.token(hash: Tokens.hash(t.secret))?.isValid(at: 150) == false)
        #expect(try s.auditLog().map(\.action) == ["token create"])
        #expect(Role.viewer < .operator && Role.operator < .admin)
    }

    @Test func minutesAreMeansAndDecisionsArePruned() throws {
        let s = try Store.inMemory()
        var acc = MinuteAccumulator()
        var finished: [MinuteSample] = []
        // 60 ticks in minute 1000, then one in 1001.
        for i in 0..<60 {
            if let m = acc.add(at: 60_000 + Double(i), miningKW: Double(i), inferenceKW: 10, importKW: i % 2 == 0 ? 100 : nil,
                               capKW: 500, priceUsdPerMWh: 40) { finished.append(m) }
        }
        #expect(finished.isEmpty)
        if let m = acc.add(at: 60_060, miningKW: 0, inferenceKW: 0, importKW: nil, capKW: 0, priceUsdPerMWh: 0) { finished.append(m) }
        let m = try #require(finished.first)
        #expect(m.minute == 1000 && m.samples == 60)
        #expect(m.miningKW == 29.5 && m.importKW == 100 && m.capKW == 500)
        for t in [10.0, 20, 30] {
            try s.record(decision: DecisionEntry(at: t, fastPath: nil, mode: "normal", siteKW: 1, limitKW: 2, priceUsdPerMWh: 3,
                                                 setpointsJSON: "{}", reasonsJSON: "{}", interventionsJSON: "[]"),
                         minutes: finished, events: [EventEntry(at: t, kind: .governor, message: "n\(t)")])
        }
        #expect(try s.minuteSamples(from: 0, to: 2000).count == 1)  // upserted, not duplicated
        #expect(try s.pruneDecisions(before: 25) == 2)
        #expect(try s.decisions().map(\.at) == [30])
        #expect(try s.eventLog(kind: .governor).count == 3)
    }
}
