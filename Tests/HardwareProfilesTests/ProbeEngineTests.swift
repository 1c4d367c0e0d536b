import Foundation
import HardwareProfiles
import Modbus
import Testing

@Suite("Reading a profile through the planner")
struct ProbeEngineTests {
    func profile(_ extra: String, transport: String = "  protocols: [tcp]\n") throws -> DeviceProfile {
        let text = meterHeader.replacingOccurrences(of: "  protocols: [tcp]\n", with: transport) + extra
        let (p, d) = parseProfile(text)
        #expect(d.isEmpty, "\(d)")
        return try #require(p)
    }

    func meterBus() -> MemoryBus {
        let bus = MemoryBus([:])
        bus.set(.holding, 0, f32(1500) + f32(12.5) + f32(3.25) + f32(230) + f32(6.5) + f32(50))
        return bus
    }

    @Test("points are merged into as few requests as the limits allow")
    func merging() async throws {
        let p = try profile("", transport: "  protocols: [tcp]\n  max_registers_per_read: 6\n")
        let bus = meterBus()
        let result = try await ProfileProbe.read(profile: p, bus: bus)
        #expect(bus.requests == [ReadSpan(table: .holding, address: 0, count: 6), ReadSpan(table: .holding, address: 6, count: 6)])
        #expect(result.requestCount == 2)
        #expect(result.reading("active_power_w")?.outcome.number == 1500)
        #expect(result.reading("frequency_hz")?.outcome.number == 50)
        #expect(result.reading("current_l1_a")?.raw == f32(6.5))
    }

    @Test("a failed request fails only its points; the others still read")
    func failureIsolation() async throws {
        let p = try profile("  - {name: x_absent, table: holding, address: 500, type: uint16}\n")
        let result = try await ProfileProbe.read(profile: p, bus: meterBus())
        #expect(result.failures.map(\.name) == ["x_absent"])
        #expect(result.reading("x_absent")?.outcome.failure?.contains("ILLEGAL DATA ADDRESS") == true)
        #expect(result.reading("voltage_l1_v")?.outcome.number == 230)
    }

    @Test("scale registers are read in the same plan")
    func scaleRegister() async throws {
        let p = try profile("""
              - {name: x_w_sf, table: holding, address: 30, type: int16}
              - {name: x_w, table: holding, address: 31, type: int16, scale_register: x_w_sf}

            """)
        let bus = meterBus()
        bus.set(.holding, 30, [UInt16(bitPattern: -2), 12345])
        let result = try await ProfileProbe.read(profile: p, bus: bus)
        #expect(result.reading("x_w")?.outcome.number == 123.45)
        #expect(result.requestCount == 2)  // 0…11, then 30…31 (a gap of 18 is not bridged)
    }

    @Test("forbidden ranges are never read, even to bridge a gap")
    func forbidden() async throws {
        let p = try profile("  - {name: x_far, table: holding, address: 14, type: uint16}\n",
                            transport: "  protocols: [tcp]\n  forbidden:\n    - {table: holding, start: 12, end: 13}\n")
        let bus = meterBus()
        bus.set(.holding, 14, [7])
        let result = try await ProfileProbe.read(profile: p, bus: bus)
        #expect(result.failures.isEmpty)
        #expect(!bus.requests.contains { $0.address <= 13 && $0.address + $0.count > 12 })
        #expect(result.reading("x_far")?.outcome.number == 7)
    }

    @Test("requests are spaced by the minimum request gap on the injected clock")
    func requestGap() async throws {
        let p = try profile("", transport: "  protocols: [tcp]\n  max_registers_per_read: 4\n  min_request_gap_ms: 25\n")
        let clock = RecordingClock()
        let result = try await ProfileProbe.read(profile: p, bus: meterBus(), clock: clock)
        #expect(result.requestCount == 3)
        #expect(clock.sleeps == [.milliseconds(25), .milliseconds(25)])
    }

    @Test("poll classes select points")
    func pollClasses() async throws {
        let p = try profile("  - {name: x_slow, table: holding, address: 12, type: uint16, poll: slow}\n")
        let bus = meterBus()
        bus.set(.holding, 12, [1])
        let result = try await ProfileProbe.read(profile: p, bus: bus, pollClasses: [.slow])
        #expect(result.readings.map(\.name) == ["x_slow"])
    }
}
