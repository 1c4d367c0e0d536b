// The staged rollout's rules: canary alone, then batches, each only after the one before has passed; stop at the
// first failure and send nothing more.

@testable import Hub
import Testing
import TestSupport

@Suite struct RolloutTests {
    static let sites = (1...7).map { SiteKey(group: "ERCOT", edge: "s\($0)") }
    static let sha = String(repeating: "ab", count: 32)

    func sent(_ actions: [RolloutAction]) -> [SiteKey] {
        actions.flatMap { a -> [SiteKey] in if case .apply(let x) = a { x.map(\.site) } else { [] } }
    }

    /// Passes `site` through: accepted, then a tick under the new configuration in normal mode.
    func pass(_ r: inout Rollout, _ site: SiteKey, now: Double) -> [RolloutAction] {
        _ = r.observe(.answered(site, commandID: r.commandIDs[site]!, accepted: true, result: "applied v2"), now: now)
        return r.observe(.reported(site, configSHA256: Self.sha, mode: "normal"), now: now)
    }

    @Test func canaryFirstThenBatchesEachAfterTheLastHasPassed() {
        var r = Rollout(id: "r1", sha256: Self.sha, sites: Self.sites, batchSize: 3)
        #expect(r.batchCount == 3)
        #expect(sent(r.start(now: 0)) == [Self.sites[0]])
        // The canary's report under the old configuration does not pass it.
        _ = r.observe(.answered(Self.sites[0], commandID: r.commandIDs[Self.sites[0]]!, accepted: true, result: "applied v2"), now: 1)
        #expect(r.observe(.reported(Self.sites[0], configSHA256: "old", mode: "normal"), now: 1).isEmpty)
        #expect(sent(r.observe(.reported(Self.sites[0], configSHA256: Self.sha, mode: "normal"), now: 2)) == Array(Self.sites[1...3]))
        // Two of three passed: nothing new yet.
        #expect(pass(&r, Self.sites[1], now: 3).isEmpty)
        #expect(pass(&r, Self.sites[3], now: 3).isEmpty)
        #expect(sent(pass(&r, Self.sites[2], now: 4)) == Array(Self.sites[4...6]))
        for s in Self.sites[4...6] { _ = pass(&r, s, now: 5) }
        #expect(r.phase == .done)
        #expect(r.summary.first == "rollout r1 of abababababab: done, 7 sites passed")
        #expect(r.summary[1] == "ERCOT/s1 (canary): passed")
    }

    @Test func aRefusalStopsTheRolloutAndNothingMoreIsSent() {
        var r = Rollout(id: "r2", sha256: Self.sha, sites: Self.sites, batchSize: 3)
        _ = r.start(now: 0)
        #expect(r.observe(.answered(Self.sites[0], commandID: r.commandIDs[Self.sites[0]]!, accepted: false, result: "validation: unknown key"), now: 1).isEmpty)
        #expect(r.phase == .stopped(site: Self.sites[0], reason: "refused the configuration: validation: unknown key"))
        #expect(r.tick(now: 1000).isEmpty)
        #expect(r.observe(.reported(Self.sites[0], configSHA256: Self.sha, mode: "normal"), now: 2).isEmpty)
        #expect(r.states[Self.sites[1]] == .waiting)
    }

    @Test func anAlarmUnderTheNewConfigurationStopsIt() {
        var r = Rollout(id: "r3", sha256: Self.sha, sites: Self.sites, batchSize: 2)
        _ = r.start(now: 0)
        _ = pass(&r, Self.sites[0], now: 1)
        _ = r.observe(.answered(Self.sites[1], commandID: r.commandIDs[Self.sites[1]]!, accepted: true, result: "ok"), now: 2)
        #expect(r.observe(.reported(Self.sites[1], configSHA256: Self.sha, mode: "over-cap"), now: 2).isEmpty)
        #expect(r.phase == .stopped(site: Self.sites[1], reason: "governor over-cap under the new configuration"))
        // Its batch-mate passing later changes nothing.
        #expect(pass(&r, Self.sites[2], now: 3).isEmpty)
    }

    @Test func silenceOrGoingOfflineStopsIt() {
        var a = Rollout(id: "r4", sha256: Self.sha, sites: Self.sites, timeoutS: 60)
        _ = a.start(now: 100)
        #expect(a.tick(now: 159).isEmpty && a.phase == .running)
        _ = a.tick(now: 160)
        #expect(a.phase == .stopped(site: Self.sites[0], reason: "no answer 60 s after the command"))

        var b = Rollout(id: "r5", sha256: Self.sha, sites: Self.sites, timeoutS: 60)
        _ = b.start(now: 0)
        _ = b.observe(.answered(Self.sites[0], commandID: b.commandIDs[Self.sites[0]]!, accepted: true, result: "ok"), now: 1)
        _ = b.tick(now: 60)
        #expect(b.phase == .stopped(site: Self.sites[0], reason: "no tick under the new configuration 60 s after the command"))

        var c = Rollout(id: "r6", sha256: Self.sha, sites: Self.sites)
        _ = c.start(now: 0)
        #expect(c.observe(.offline(Self.sites[3]), now: 1).isEmpty && c.phase == .running, "a site not yet sent to may be offline")
        _ = c.observe(.offline(Self.sites[0]), now: 2)
        #expect(c.phase == .stopped(site: Self.sites[0], reason: "went offline during the rollout"))
    }

    @Test func anAnswerToAnotherCommandIsIgnored() {
        var r = Rollout(id: "r7", sha256: Self.sha, sites: Self.sites)
        _ = r.start(now: 0)
        _ = r.observe(.answered(Self.sites[0], commandID: "someone-else", accepted: false, result: "no"), now: 1)
        #expect(r.phase == .running)
    }

    /// Random observations in random order: no site is sent to twice, a batch is sent only when every site before
    /// it has passed, and nothing is sent once stopped.
    @Test func randomObservationsKeepTheRules() {
        var rng = SeededRandom(seed: 77)
        var progressed = 0, stopped = 0
        for _ in 0..<300 {
            let n = rng.int(1, 12)
            let sites = Array(Self.sites.prefix(min(n, 7))) + (0..<max(0, n - 7)).map { SiteKey(group: "PJM", edge: "p\($0)") }
            var r = Rollout(id: "rr", sha256: Self.sha, sites: sites, batchSize: rng.int(1, 4), timeoutS: 30)
            var everSent: [SiteKey] = sent(r.start(now: 0))
            var now = 0.0
            for _ in 0..<60 {
                now += rng.range(0, 10)
                let s = sites[rng.int(0, sites.count - 1)]
                let o: RolloutObservation
                switch rng.int(0, 9) {
                case 0: o = .offline(s)
                case 1: o = .answered(s, commandID: r.commandIDs[s] ?? "x", accepted: false, result: "no")
                case 2: o = .reported(s, configSHA256: Self.sha, mode: "comm-loss")
                case 3, 4, 5: o = .answered(s, commandID: r.commandIDs[s] ?? "x", accepted: true, result: "ok")
                default: o = .reported(s, configSHA256: rng.chance(0.8) ? Self.sha : "old", mode: "normal")
                }
                let wasStopped = r.phase != .running
                let new = sent(rng.chance(0.1) ? r.tick(now: now) : r.observe(o, now: now))
                if wasStopped { #expect(new.isEmpty) }
                if !new.isEmpty {
                    for earlier in everSent { if case .passed = r.states[earlier] {} else { Issue.record("\(earlier) not passed before \(new)") } }
                }
                #expect(Set(new).isDisjoint(with: everSent))
                everSent += new
            }
            #expect(everSent == Array(sites.prefix(everSent.count)), "sites are sent to in order")
            if everSent.count > 1 { progressed += 1 }
            if case .stopped = r.phase { stopped += 1 }
        }
        // The walk reaches both: rollouts past their canary, and stopped ones.
        #expect(progressed > 30 && stopped > 30, "\(progressed) progressed, \(stopped) stopped")
    }
}
