import Foundation
import HardwareProfiles
import Modbus
import Testing
import TestSupport
@testable import Simulation

/// The reference containers' firmware notes: "Writes outside the documented limits are answered with
/// exception 03 (ILLEGAL DATA VALUE) and not applied." Every documented range, in memory and over the
/// wire with mbpoll (libmodbus's CLI, a master we did not write).
@Suite("Container write limits (firmware notes)", .serialized)
struct WriteLimitTests {
    /// (device, point, register, words of a refused value, words of an accepted value, accepted value)
    static let cases: [(String, String, Int, [UInt16], [UInt16], Double)] = [
        // power_setpoint_w 0…1 500 000 W (uint32, high word first): 2 000 000 W refused, 500 000 W accepted.
        ("asic-1", "power_setpoint_w", 0x0100, [0x001E, 0x8480], [0x0007, 0xA120], 500_000),
        // run_command 0…2: 3 refused, 2 (sleep) accepted.
        ("asic-1", "run_command", 0x0102, [3], [2], 2),
        // comm_watchdog_s 10…3600: 0 (disable) refused, 3601 refused below; 60 accepted.
        ("asic-1", "comm_watchdog_s", 0x0103, [0], [60], 60),
        ("asic-2", "comm_watchdog_s", 0x0103, [3601], [3600], 3600),
        // fallback_setpoint_w 0…1 500 000 W.
        ("asic-2", "fallback_setpoint_w", 0x0104, [0x001E, 0x8480], [0x0000, 0x03E8], 1000),
        // gpu_power_cap_w 100…1200 W: 99 and 1201 refused.
        ("gpu-1", "gpu_power_cap_w", 0x0106, [99], [450], 450),
        ("gpu-1", "gpu_power_cap_w", 0x0106, [1201], [1200], 1200),
        ("gpu-1", "power_setpoint_w", 0x0100, [0x001E, 0x8480], [0x0004, 0x93E0], 300_000),
    ]

    @Test func outOfRangeWritesAreRefusedInMemory() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        for (device, point, address, bad, good, value) in Self.cases {
            let bus = try #require(SimulatedBus(simulator: sim, device: device))
            let before = try #require(sim.pointValue(device, point))
            do {
                try await bus.writeRegisters(address: address, values: bad)
                Issue.record("\(device) \(point) \(bad): accepted, should be ILLEGAL DATA VALUE")
            } catch let e as ModbusError {
                #expect(e.kind == .exception(.illegalDataValue), "\(device) \(point): \(e)")
            }
            #expect(sim.pointValue(device, point) == before, "\(device) \(point): a refused write changed it")
            try await bus.writeRegisters(address: address, values: good)
            #expect(sim.pointValue(device, point) == value, "\(device) \(point): the in-range write was not applied")
        }
        // The physics follows the limits too: the container never saw 2 MW.
        sim.run(for: .seconds(30))
        #expect(sim.setpointKW("asic-1") == 500)
    }

    @Test func halfOfAThirtyTwoBitPointIsRefused() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let bus = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
        let before = sim.setpointKW("asic-1")
        await #expect(throws: ModbusError.self) { try await bus.writeRegisters(address: 0x0101, values: [0x1234]) }
        #expect(sim.setpointKW("asic-1") == before)
    }

    @Test func outOfRangeWritesGetExceptionThreeOverTheWire() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        func port(_ device: String) throws -> Int { try #require(host.endpoints.first { $0.device == device }).port }
        /// Values to write go after the host (mbpoll's first operand is the host).
        func mbpoll(_ device: String, _ args: [String], write values: [UInt16] = []) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runCommand("/usr/bin/mbpoll", ["-m", "tcp", "-a", "1", "-0", "-1", "-t", "4"] + args
                                 + ["-p", "\(try port(device))", "127.0.0.1"] + values.map { "\($0)" })
        }
        for (device, point, address, bad, good, value) in Self.cases {
            let before = try await mbpoll(device, ["-r", "\(address)", "-c", "\(bad.count)"])
            #expect(before.status == 0, "\(before.stderr)")
            let refused = try await mbpoll(device, ["-r", "\(address)"], write: bad)
            let text = (refused.stdout + refused.stderr).lowercased()
            #expect(text.contains("illegal data value"), "\(device) \(point) \(bad): \(text)")
            await host.settle()
            // Not applied: the register reads back as before, and the device did not take it.
            let after = try await mbpoll(device, ["-r", "\(address)", "-c", "\(bad.count)"])
            #expect(after.stdout == before.stdout, "\(device) \(point): \(after.stdout) after a refused write, was \(before.stdout)")
            #expect(sim.pointValue(device, point) != nil && sim.pointValue(device, point) != value)
            let accepted = try await mbpoll(device, ["-r", "\(address)"], write: good)
            #expect(accepted.status == 0, "\(device) \(point) \(good): \(accepted.stdout) \(accepted.stderr)")
            await host.settle()
            #expect(sim.pointValue(device, point) == value, "\(device) \(point): the in-range write was not applied")
        }
        // The issue's case: 2 000 000 W is refused, and the container's setpoint is what was last accepted.
        #expect(sim.setpointKW("asic-1") == 500)
    }

    /// pymodbus (an independent master) through FC16 and FC23, the write-and-read-back the controller uses.
    @Test func pymodbusGetsExceptionThreeThroughFC16AndFC23() async throws {
        let sim = try SiteSimulator(spec: try smallSite())
        let host = try WireHost(simulator: sim)
        defer { host.stop() }
        let port = try #require(host.endpoints.first { $0.device == "asic-1" }).port
        func write(_ function: String, _ words: [UInt16]) async throws -> [String: Any] {
            let r = try await runCommand("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("Tests/peers/pymodbus_write.py").path,
                                                          "127.0.0.1", "\(port)", "1", function, "\(0x0100)"] + words.map { "\($0)" })
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout) \(r.stderr)")
        }
        for function in ["fc16", "fc23"] {
            let refused = try await write(function, [0x001E, 0x8480])  // 2 000 000 W
            #expect(refused["ok"] as? Bool == false && refused["exception_code"] as? Int == 3, "\(function): \(refused)")
            await host.settle()
            #expect(sim.setpointKW("asic-1") == 1000, "\(function): a refused write was applied")
        }
        let ok = try await write("fc23", [0x0007, 0xA120])  // 500 000 W, read back in the same transaction
        #expect(ok["ok"] as? Bool == true && ok["registers"] as? [Int] == [0x0007, 0xA120], "\(ok)")
        await host.settle()
        #expect(sim.setpointKW("asic-1") == 500)
    }

    @Test func ignoreSetpointAcceptsWritesAndKeepsDrawing() async throws {
        let sim = try SiteSimulator(spec: try smallSite(watchdogS: 0))  // no watchdog fallback in the way
        sim.run(for: .seconds(10))
        let drawing = sim.powerKW("asic-1")
        #expect(drawing > 900)
        sim.inject(.ignoreSetpoint, device: "asic-1")
        let bus = try #require(SimulatedBus(simulator: sim, device: "asic-1"))
        try await bus.writeRegisters(address: 0x0100, values: [0, 0])
        // The register holds what was written: a read-back "verifies" it.
        #expect(try await bus.read(.holding, address: 0x0100, count: 2) == [0, 0])
        sim.run(for: .seconds(30))
        #expect(abs(sim.powerKW("asic-1") - drawing) < 1, "\(sim.powerKW("asic-1")) kW")
        // Cleared, it obeys the setpoint it holds.
        sim.inject(nil, device: "asic-1")
        sim.run(for: .seconds(30))
        #expect(sim.powerKW("asic-1") < 1)
    }

    @Test func ignoreSetpointIsAScenarioFault() throws {
        let s = try ScenarioLoader.parse("events:\n  - {at: 10s, device: asic-1, fault: ignore-setpoint, for: 60s}\n", file: "s.yaml")
        #expect(s.faults == [ScheduledFault(atSeconds: 10, device: "asic-1", action: .fault(.ignoreSetpoint), durationSeconds: 60)])
    }
}
