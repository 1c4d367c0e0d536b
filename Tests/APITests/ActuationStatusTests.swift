import Control
import Foundation
import Hummingbird
import HummingbirdTesting
import Signals
import Simulation
import Store
import Testing
@testable import API

/// A container that ignores its setpoint and a frozen meter, as status, devices, /metrics and the event log show them.
@Suite("Not-following and frozen in status, metrics and the event log")
struct ActuationStatusTests {
    @Test func notFollowingAndFrozenAreShownAndLoggedOnce() async throws {
        let h = try Harness.make()
        let rec = TickRecorder(store: h.store, metrics: h.deps.metrics, decisionRetentionS: 3600)
        for _ in 0..<10 { let r = await h.tick(); try rec.write(r, loop: h.host.current) }
        h.sim.inject(.ignoreSetpoint, device: "asic-2")
        h.host.current.addEvent(DREvent.operatorCap(id: "ers-1", capKW: 1200, from: h.clock.now, until: h.clock.now + 3600, reason: "test"))
        for _ in 0..<25 {
            let started = ContinuousClock.now
            let r = await h.tick()
            h.deps.metrics.observe(r, tickDuration: ContinuousClock.now - started, loop: h.host.current)
            try rec.write(r, loop: h.host.current)
        }
        h.sim.inject(.frozen, device: "site-meter")
        for _ in 0..<15 { let r = await h.tick(); try rec.write(r, loop: h.host.current) }
        #expect(h.host.current.actuator.followState("asic-2") == .notFollowing)
        #expect(h.host.current.meterWatch.status("site-meter") == .frozen)
        try await h.app().test(.router) { client in
            let status = try await client.execute(uri: "/v1/status", method: .get, headers: bearer(h.tokens[.viewer])) { String(buffer: $0.body) }
            #expect(status.contains(#""not_following":["asic-2"]"#), "\(status)")
            #expect(status.contains(#""suspect_meters":{"site-meter":"frozen"}"#), "\(status)")
            let devices = try await client.execute(uri: "/v1/devices", method: .get, headers: bearer(h.tokens[.viewer])) { String(buffer: $0.body) }
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(devices.utf8)) as? [[String: Any]])
            let row = { (id: String) in rows.first { $0["id"] as? String == id } }
            #expect(row("asic-2")?["actuation"] as? String == "not-following")
            #expect(row("asic-1")?["actuation"] as? String == "following")
            #expect(row("site-meter")?["meter"] as? String == "frozen")
            #expect(row("xfmr-1-meter")?["meter"] as? String == "ok")
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: bearer(h.tokens[.viewer])) { String(buffer: $0.body) }
            #expect(metrics.contains(#"switchyard_device_not_following{site="hil",device="asic-2"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"switchyard_device_not_following{site="hil",device="asic-1"} 0"#))
            #expect(metrics.contains(#"switchyard_meter_state{site="hil",device="site-meter",state="frozen"} 1"#))
            #expect(metrics.contains(#"switchyard_meter_state{site="hil",device="site-meter",state="ok"} 0"#))
        }
        let log = try h.store.eventLog(limit: 1000).map(\.message)
        #expect(log.filter { $0.contains("asic-2 not-following") }.count == 1, "\(log)")
        #expect(log.filter { $0.contains("site-meter frozen:") }.count == 1, "\(log)")
    }
}
