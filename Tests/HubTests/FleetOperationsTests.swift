// FleetOperations on a fake host and a hand-moved time: what it sends for a shed (caps until the end, nothing to an
// offline site, the others' shares grown after one allocation period) and for a rollout (canary alone, then the
// batches; a refusal stops it), and what it refuses before sending anything.

import Basics
import Foundation
@testable import Hub
import Synchronization
import Testing

/// A host whose fleet is set by the test, and which records what it is asked to send.
final class FakeCommandHost: FleetCommandHost, Sendable {
    struct State {
        var rows: [SiteKey: SiteStatus] = [:]
        var inputs: [SiteKey: SiteShedInput] = [:]
        var sent: [(site: SiteKey, request: FleetCommandRequest, id: String)] = []
        var replies: [String: FleetCommandReply] = [:]
        var counter = 0
    }
    let state = Mutex(State())

    func set(_ site: SiteKey, liveness: SiteLiveness = .online, importKW: Double? = nil, sha: String? = nil, mode: String = "normal",
             offer: [OfferStep]? = nil) {
        state.withLock { s in
            s.rows[site] = SiteStatus(site: site, importKW: importKW, governorMode: mode, liveness: liveness, configSHA256: sha, offer: offer)
            if let offer, let kw = importKW, liveness == .online { s.inputs[site] = SiteShedInput(offer: try! OfferCurve(steps: offer), importKW: kw) }
            else { s.inputs[site] = nil }
        }
    }

    func status() async -> [SiteStatus] { state.withLock { Array($0.rows.values) } }

    func shedInputs(region: String) -> (sites: [SiteKey: SiteShedInput], missing: [SiteKey: String]) {
        state.withLock { s in
            var missing: [SiteKey: String] = [:]
            for (k, row) in s.rows where k.group == region && s.inputs[k] == nil { missing[k] = row.liveness == .online ? "no offer curve" : "\(row.liveness)" }
            return (s.inputs.filter { $0.key.group == region }, missing)
        }
    }

    func send(_ request: FleetCommandRequest, to site: SiteKey, commandID: String?) async -> FleetSendResult {
        state.withLock { s in
            s.counter += 1
            let id = commandID ?? "c\(s.counter)"
            guard s.rows[site]?.liveness == .online else { return .notSent(commandID: id, reason: "site \(site) is offline") }
            s.sent.append((site, request, id))
            return .sent(commandID: id)
        }
    }

    func reply(commandID: String) -> FleetCommandReply? { state.withLock { $0.replies[commandID] } }

    func answer(_ id: String, accepted: Bool, result: String) { state.withLock { $0.replies[id] = FleetCommandReply(accepted: accepted, result: result, at: 0) } }

    var sent: [(site: SiteKey, request: FleetCommandRequest, id: String)] { state.withLock { $0.sent } }
    func clearSent() { state.withLock { $0.sent = [] } }
}

final class ManualTime: Sendable {
    let t = Mutex(1_800_000_000.0)
    var now: Double { t.withLock { $0 } }
    func advance(_ s: Double) { t.withLock { $0 += s } }
}

@Suite struct FleetOperationsTests {
    static let a = SiteKey(group: "ERCOT", edge: "a")
    static let b = SiteKey(group: "ERCOT", edge: "b")
    static let c = SiteKey(group: "ERCOT", edge: "c")
    static let d = SiteKey(group: "ERCOT", edge: "d")

    static func fleet() -> FakeCommandHost {
        let host = FakeCommandHost()
        host.set(a, importKW: 30_000, offer: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)])
        host.set(b, importKW: 25_000, offer: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)])
        host.set(c, importKW: 20_000, offer: [OfferStep(mw: 15, dollarsPerHour: 300)])
        host.set(d, importKW: 10_000)  // no offer: left out
        return host
    }

    static func caps(_ sent: [(site: SiteKey, request: FleetCommandRequest, id: String)]) -> [SiteKey: Double] {
        sent.reduce(into: [:]) { out, s in if case let .createEvent(_, kw, _, _) = s.request { out[s.site] = kw } }
    }

    @Test func aShedSendsEachShareAsACapUntilItsEndAndReportsWhoIsLeftOut() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let until = time.now + 7200
        let report = try await ops.startShed(region: "ERCOT", targetMW: 40, until: until, reason: "utility call")
        #expect(Self.caps(host.sent) == [Self.a: 10_000, Self.b: 20_000, Self.c: 5_000])
        for s in host.sent { if case let .createEvent(_, _, end, reason) = s.request { #expect(end == until); #expect(reason.hasPrefix("utility call")) } }
        #expect(report.shares.map(\.site) == ["a", "b", "c"])
        #expect(report.shares.map(\.shareMw) == [20, 5, 15])
        #expect(report.shares.map(\.capKw) == [10_000, 20_000, 5_000])
        #expect(report.shares.map(\.usdPerHourLost) == [200, 125, 300])
        #expect(report.leftOut == [.init(site: "d", reason: "no offer curve")])
        #expect(report.allocatedMw == 40 && report.shortfallMw == 0 && !report.ended)
    }

    @Test func aTargetAboveTheOfferIsAShortfallNotARefusal() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let report = try await ops.startShed(region: "ERCOT", targetMW: 100, until: time.now + 3600, reason: "big call")
        #expect(report.allocatedMw == 65)
        #expect(report.shortfallMw == 35)
    }

    @Test func aSiteThatDropsOffIsCoveredByTheOthersAfterOneAllocationPeriod() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, configuration: .init(allocationPeriod: .seconds(30)), now: { time.now })
        _ = try await ops.startShed(region: "ERCOT", targetMW: 40, until: time.now + 7200, reason: "utility call")
        // Every site meets its share; then c dies.
        host.set(Self.a, importKW: 10_000, offer: [OfferStep(mw: 20, dollarsPerHour: 200), OfferStep(mw: 10, dollarsPerHour: 400)])
        host.set(Self.b, importKW: 20_000, offer: [OfferStep(mw: 10, dollarsPerHour: 250), OfferStep(mw: 10, dollarsPerHour: 600)])
        host.set(Self.c, liveness: .offline, importKW: 5_000)
        host.clearSent()
        time.advance(10)
        await ops.step()
        #expect(host.sent.isEmpty, "within the period nothing is re-allocated")
        time.advance(20)
        await ops.step()
        let sent = host.sent
        #expect(!sent.contains { $0.site == Self.c }, "nothing is sent to the offline site")
        // c's 15 MW go to a (its next 10 MW at $40/MWh) and b (5 more at $25/MWh): a 30, b 10.
        #expect(Self.caps(sent) == [Self.a: 0, Self.b: 15_000])
        #expect(sent.filter { if case .cancelEvent = $0.request { true } else { false } }.map(\.site).sorted { $0.edge < $1.edge } == [Self.a, Self.b])
        let report = await ops.shedReports()[0]
        #expect(report.shares.map(\.site) == ["a", "b"])
        #expect(report.shares.map(\.shareMw) == [30, 10])
        #expect(report.leftOut.contains(.init(site: "c", reason: "offline: its share went to the others")))
    }

    @Test func badRequestsAreRefusedAndNothingIsSent() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        await #expect(throws: FleetOperationError.invalid("no site is known in region 'NYISO' (regions: ERCOT)")) {
            try await ops.startShed(region: "NYISO", targetMW: 10, until: time.now + 60, reason: "x")
        }
        await #expect(throws: FleetOperationError.invalid("the shed must be a positive, finite number of MW, not -5.0")) {
            try await ops.startShed(region: "ERCOT", targetMW: -5, until: time.now + 60, reason: "x")
        }
        await #expect(throws: FleetOperationError.self) { try await ops.startShed(region: "ERCOT", targetMW: 5, until: time.now - 1, reason: "x") }
        let offline = SiteKey(group: "PJM", edge: "p")
        host.set(offline, liveness: .offline)
        await #expect(throws: FleetOperationError.invalid("no site of region 'PJM' can take part in a shed (p: offline)")) {
            try await ops.startShed(region: "PJM", targetMW: 5, until: time.now + 60, reason: "x")
        }
        await #expect(throws: FleetOperationError.invalid("site PJM/p is offline: a rollout starts only with every site online")) {
            try await ops.startRollout(yaml: "site: x\n", sites: [Self.a, offline], batchSize: 2, comment: nil)
        }
        #expect(host.sent.isEmpty)
    }

    @Test func aRolloutRunsTheCanaryAloneThenTheBatches() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let yaml = "site: new\n"
        let sha = SHA256.hex(yaml)
        let start = try await ops.startRollout(yaml: yaml, sites: [Self.b, Self.a, Self.c, Self.d], batchSize: 2, comment: "v2")
        #expect(start.sites.map(\.site) == ["b", "a", "c", "d"] && start.sites[0].canary)
        #expect(host.sent.map(\.site) == [Self.b])
        guard case let .applyConfig(sentSHA, sentYAML, comment) = host.sent[0].request else { Issue.record("not an apply"); return }
        #expect(sentSHA == sha && sentYAML == yaml && comment == "v2")
        // Accepted, but no tick under the new configuration yet: nothing more.
        host.answer(host.sent[0].id, accepted: true, result: "accepted: applied")
        await ops.step()
        #expect(host.sent.count == 1)
        host.set(Self.b, importKW: 25_000, sha: sha)
        time.advance(1)
        await ops.step()
        #expect(host.sent.map(\.site) == [Self.b, Self.a, Self.c])
        for s in host.sent.dropFirst() { host.answer(s.id, accepted: true, result: "accepted") }
        host.set(Self.a, importKW: 1, sha: sha)
        host.set(Self.c, importKW: 1, sha: sha)
        time.advance(1)
        await ops.step()
        #expect(host.sent.map(\.site) == [Self.b, Self.a, Self.c, Self.d])
        host.answer(host.sent[3].id, accepted: true, result: "accepted")
        host.set(Self.d, importKW: 1, sha: sha)
        time.advance(1)
        await ops.step()
        let done = try await ops.rolloutReport(id: start.id)
        #expect(done.phase == "done")
        #expect(done.sites.map(\.state) == ["passed", "passed", "passed", "passed"])
    }

    @Test func aRefusedCanaryStopsTheRolloutAndNothingMoreIsSent() async throws {
        let host = Self.fleet(), time = ManualTime()
        let ops = FleetOperations(host: host, now: { time.now })
        let start = try await ops.startRollout(yaml: "bad: yaml\n", sites: [Self.a, Self.b, Self.c], batchSize: 5, comment: nil)
        host.answer(host.sent[0].id, accepted: false, result: "rejected: out-of-range: the site file is invalid")
        await ops.step()
        for _ in 0..<5 { time.advance(60); await ops.step() }
        #expect(host.sent.map(\.site) == [Self.a])
        let r = try await ops.rolloutReport(id: start.id)
        #expect(r.phase == "stopped" && r.stoppedAt == "a")
        #expect(r.stopReason == "refused the configuration: rejected: out-of-range: the site file is invalid")
        #expect(r.sites.map(\.state) == ["failed", "waiting", "waiting"])
    }

    @Test func fleetTimesAreNowRelativeOrISO8601() {
        #expect(FleetTime.resolve("now", now: 100) == 100)
        #expect(FleetTime.resolve("+2h", now: 100) == 7300)
        #expect(FleetTime.resolve("+1h30m", now: 0) == 5400)
        #expect(FleetTime.resolve("2026-11-27T18:00:00Z", now: 0) == ISO8601.parse("2026-11-27T18:00:00Z"))
        for bad in ["+", "+2x", "+-1h", "tomorrow", "+0s", ""] { #expect(FleetTime.resolve(bad, now: 0) == nil, "\(bad)") }
    }
}
