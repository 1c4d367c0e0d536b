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

    func scrape(_ h: Harness) async throws -> String {
        try await h.app().test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get, headers: bearer(h.tokens[.viewer])) { String(buffer: $0.body) }
        }
    }
}
