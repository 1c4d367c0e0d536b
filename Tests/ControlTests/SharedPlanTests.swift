import Foundation
import HardwareProfiles
import Modbus
import Site
import Testing
import TestSupport
@testable import Control
@testable import Simulation

/// Issue 15 (the steady loop's memory): devices of one profile share its read plans and slot table, and only the
/// very same profile value shares: a profile that merely has the same id gets plans of its own.
@Suite struct SharedPlanTests {
    @Test func devicesOfOneProfileShareItsPlansAndAnotherProfileWithItsIdDoesNot() async throws {
        let (site, profiles, _, sim) = try DemoRig.demoSite(seed: 3)
        let asics = site.devices.filter { $0.profile == "reference-asic-container" }
        #expect(asics.count >= 3)
        let asic = try #require(profiles["reference-asic-container"])
        // The same id, one point fewer: a different profile.
        var trimmed = asic
        trimmed.points.removeLast()
        var targets = asics.prefix(2).map { Poller.Target(id: $0.id, profile: asic, bus: SimulatedBus(simulator: sim, device: $0.id)!) }
        targets.append(Poller.Target(id: asics[2].id, profile: trimmed, bus: SimulatedBus(simulator: sim, device: asics[2].id)!))
        let poller = try Poller(targets: targets, serial: true)
        func storage(_ i: Int) -> UnsafeRawPointer? {
            poller.plans[i].byLevel.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
        }
        #expect(storage(0) == storage(1), "two devices of one profile share one plan")
        #expect(storage(2) != storage(0), "a profile with the same id and other points has its own plan")
        #expect(poller.plans[0].slots === poller.plans[1].slots, "and one slot table")
        #expect(poller.plans[2].slots.names.count == poller.plans[0].slots.names.count - 1)
        // Each device still reads its own registers into its own telemetry.
        await poller.poll(now: 1, level: 2)
        for t in targets {
            let row = try #require(poller.telemetry(t.id))
            #expect(row.lastSuccess == 1, "\(t.id) polled")
            #expect(row.value("active_power_w") != nil, "\(t.id) has its power")
        }
    }
}
