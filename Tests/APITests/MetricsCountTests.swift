import Control
import Hummingbird
import HummingbirdTesting
import Testing
@testable import API

/// Modbus errors are counted where the poll fails, not recovered from the poller's streak at each tick.
@Suite struct MetricsCountTests {
    /// Three failed polls between two ticks, with a success in between that resets the streak,
    /// must add three to switchyard_modbus_errors_total (a per-tick look at the streak saw one).
    @Test func aFailureStreakThatResetsBetweenTicksCountsEveryError() async throws {
        let h = try Harness.make()
        let loop = h.host.current
        let r0 = await h.tick()
        h.deps.metrics.observe(r0, tickDuration: .milliseconds(1), loop: loop)
        let meter = try #require(loop.poller.targets.firstIndex { $0.id == "site-meter" })
        // Between two ticks (as the under-frequency watch polls the meter): fail, fail, answer, fail.
        for answers in [false, false, true, false] {
            h.sim.inject(answers ? nil : .silent, device: "site-meter")
            await loop.poller.pollDevice(meter, now: h.clock.now, level: 2, tick: 1_000)
        }
        h.sim.inject(nil, device: "site-meter")
        let r1 = await h.tick()
        h.deps.metrics.observe(r1, tickDuration: .milliseconds(1), loop: loop)
        let text = try await scrape(h)
        let line = #"switchyard_modbus_errors_total{site="hil",device="site-meter",code="timeout"} "#
        let sample = try #require(text.split(separator: "\n").first { $0.hasPrefix(line) }, "\(text)")
        #expect(Double(sample.dropFirst(line.count)) == 3)
    }

    /// Every device's error series exist from the first poll, at 0, for every code (docs/api.md), though the loop
    /// keeps no handle to each: the factory (the Prometheus registry) holds them, and an error finds its series there.
    @Test func everyDevicesErrorSeriesExistAtZeroFromTheFirstPollAndCountWhereTheyAre() async throws {
        let h = try Harness.make()
        let loop = h.host.current
        let r0 = await h.tick()
        h.deps.metrics.observe(r0, tickDuration: .milliseconds(1), loop: loop)
        var text = try await scrape(h)
        let polled = loop.poller.targets.map(\.id)
        #expect(!polled.isEmpty)
        for d in polled {
            for c in DeviceFault.codes {
                #expect(text.contains(#"switchyard_modbus_errors_total{site="hil",device="\#(d)",code="\#(c)"} 0"#), "\(d) \(c)")
            }
        }
        #expect(text.contains(#"switchyard_write_errors_total{site="hil",device="asic-1",code="timeout"} 0"#))
        // One failed poll of one device: its timeout series goes to 1, no other series moves, no new one appears.
        let meter = try #require(loop.poller.targets.firstIndex { $0.id == "site-meter" })
        let before = text.split(separator: "\n").filter { $0.hasPrefix("switchyard_modbus_errors_total{") }.count
        h.sim.inject(.silent, device: "site-meter")
        await loop.poller.pollDevice(meter, now: h.clock.now, level: 2, tick: 1_000)
        h.sim.inject(nil, device: "site-meter")
        text = try await scrape(h)
        let series = text.split(separator: "\n").filter { $0.hasPrefix("switchyard_modbus_errors_total{") }
        #expect(series.count == before)
        #expect(series.filter { !$0.hasSuffix(" 0") } == [#"switchyard_modbus_errors_total{site="hil",device="site-meter",code="timeout"} 1"#])
    }

    func scrape(_ h: Harness) async throws -> String {
        try await h.app().test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(h.tokens[.viewer])) { String(buffer: $0.body) }
        }
    }
}
