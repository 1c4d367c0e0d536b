import Basics
import Foundation
import Testing
@testable import Control
@testable import Simulation

/// Start-up is not comm loss (docs/governor.md, "Start-up"): until every polled device has answered once,
/// within the comm-loss limit (`ControlOptions.commLossAfterS`, 10 s) from the loop's first pass, the mode is
/// `starting`. A device still silent at the limit is lost: the site meter makes it comm loss, any other
/// device is reported as never having answered.
@Suite("Start-up before the first poll", .serialized)
struct StartupTests {
    /// Ticks the rig once a second of the ManualClock, as `serve` does, and returns each pass's report.
    func run(_ rig: Rig, seconds: Int, poll first: Bool = true) async -> [TickReport] {
        let clock = ManualClock()
        let time = LoopTime(clock: clock, startingAt: t0)
        var out: [TickReport] = []
        for k in 0..<seconds {
            out.append(await rig.loop.tick(now: time.now, poll: k > 0 || first))
            rig.sim.step(.seconds(1))
            clock.advance(by: .seconds(1))
        }
        return out
    }

    @Test func beforeTheFirstPollIsStartingNotCommLoss() async throws {
        let rig = try await Rig.make(wire: false)
        let r = await run(rig, seconds: 3, poll: false)
        // The first pass runs before any device has answered: starting, 0 of the 6 polled devices.
        #expect(r[0].mode == .starting, "\(r[0].mode)")
        #expect(r[0].startup?.answered == 0 && r[0].startup?.total == 6 && r[0].startup?.endsAt == t0 + 10)
        #expect(!r[0].interventions.contains { $0.contains("comm loss") }, "\(r[0].interventions)")
        #expect(r[0].brokerFeasible, "missing readings are not an overload: \(r[0].interventions)")
        // The next pass polls: every device answers, start-up is over.
        #expect(r[1].startup == nil && r[1].mode != .starting && r[1].mode != .commLoss, "\(r[1].mode)")
        #expect(r[1].neverAnswered.isEmpty)
        await rig.stop()
    }

    @Test func aSiteMeterThatNeverAnswersIsCommLossAfterTheLimit() async throws {
        let rig = try await Rig.make(wire: false)
        rig.sim.inject(.silent, device: "site-meter")
        let r = await run(rig, seconds: 14)
        for k in 0..<10 {
            #expect(r[k].mode == .starting, "t+\(k) s: \(r[k].mode)")
            #expect(r[k].startup?.waiting == ["site-meter"] && r[k].startup?.answered == 5, "t+\(k) s: \(String(describing: r[k].startup))")
            // Nothing rises while the site meter has not been read, and mining is not shed as on comm loss.
            #expect(!r[k].interventions.contains { $0.contains("comm loss") }, "t+\(k) s: \(r[k].interventions)")
        }
        #expect(r[1].interventions.contains { $0.hasPrefix("starting: meters under site not read yet: no ramp-up") }, "\(r[1].interventions)")
        // At the limit (10 s after the first pass) it is comm loss: mining sheds to its safe level.
        for k in 10..<14 {
            #expect(r[k].mode == .commLoss, "t+\(k) s: \(r[k].mode)")
            #expect(r[k].startup == nil && r[k].neverAnswered == ["site-meter"], "t+\(k) s")
        }
        #expect(r[10].interventions.contains { $0.contains("comm loss: 3 mining container(s) shed to safe level") }, "\(r[10].interventions)")
        #expect(rig.miningSetpoints() == [0, 0, 0])
        await rig.stop()
    }

    @Test func aContainerThatNeverAnswersIsNamedAfterTheLimit() async throws {
        let rig = try await Rig.make(wire: false)
        rig.sim.inject(.silent, device: "asic-2")
        let r = await run(rig, seconds: 12)
        #expect(r[0].mode == .starting && r[0].startup?.waiting == ["asic-2"] && r[0].startup?.answered == 5)
        #expect(r[9].mode == .starting)
        // The site meter answers: past the limit the mode is not comm loss; the silent container is named, and never written.
        #expect(r[10].startup == nil && r[10].mode != .commLoss && r[10].mode != .starting, "\(r[10].mode)")
        #expect(r[10].neverAnswered == ["asic-2"])
        #expect(LiveFrame.render(r[10], site: "hil").contains("comm loss    1 device(s) never answered since start: asic-2"))
        #expect(r.allSatisfy { !$0.writes.contains { $0.device == "asic-2" } })
        await rig.stop()
    }
}
