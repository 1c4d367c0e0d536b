// The chaos soak (ChaosSoak.swift) in the suite: seeded, every kind of chaos, at the real 1 s tick. `make soak` runs a
// long one (release build): SWITCHYARD_SOAK_SECONDS (at least 300), SWITCHYARD_SOAK_SITES and SWITCHYARD_SOAK_SEED set
// the length, the number of sites and the seed; SWITCHYARD_SOAK_VERBOSE prints each chaos event as it happens
// (docs/fleet.md, "Chaos soak").

import Foundation
import Testing
import TestSupport

@Suite("Chaos soak", .serialized, .timeLimit(.minutes(60 * 24)))
struct ChaosSoakTests {
    static func setting(_ name: String) -> Int? { ProcessInfo.processInfo.environment[name].flatMap { Int($0) } }

    @Test func partitionsABrokerRestartAHubKillAndPostgresRestartsLoseNothing() async throws {
        var soak = ChaosSoak()
        soak.seconds = max(300, Self.setting("SWITCHYARD_SOAK_SECONDS") ?? 300)
        // 12 sites in the suite (about 3 min of a debug build on the 2-core box); `make soak` runs 40.
        soak.sites = Self.setting("SWITCHYARD_SOAK_SITES") ?? 12
        soak.seed = UInt64(Self.setting("SWITCHYARD_SOAK_SEED") ?? 18)
        soak.partitions = max(4, soak.seconds / 50)
        let figures = try await soak.run()
        print(figures)
        #expect(figures.capViolations.isEmpty, "\(figures.capViolations.prefix(10))")
        #expect(figures.wrongSamples.isEmpty, "\(figures.wrongSamples.prefix(10))")
        #expect(figures.expiredCommandsInForce.isEmpty, "\(figures.expiredCommandsInForce.prefix(10))")
        // Nothing the sites sent is lost: what the hub took waits in its spool through PostgreSQL's outages and the
        // hub's kill (RecordSpool.swift); what the sites could not send they buffered and sent as historical.
        #expect(figures.recordsDropped == 0)
        #expect(figures.lostSampleCount == 0, "\(figures.lostSamples.prefix(10))")
        // Every command the hub sent is in its PostgreSQL, through the outages and the kill, with the answer it took.
        #expect(figures.unrecordedCommands.isEmpty, "\(figures.unrecordedCommands.prefix(10))")
        // The chaos did happen: data came back through the buffers, and commands went out.
        #expect(figures.historicalSamples > 0 && figures.sheds > 0 && figures.commandsSent > 0)
        #expect(figures.virtualSeconds >= soak.seconds)
    }
}
