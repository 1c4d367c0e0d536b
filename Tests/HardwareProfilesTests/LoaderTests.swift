import Foundation
import HardwareProfiles
import Modbus
import Testing

@Suite("Profile loader")
struct LoaderTests {
    @Test("a profile loads with hex and decimal addresses, defaults and every point field")
    func fullProfile() throws {
        let text = meterHeader + """
              - name: x_setpoint_w
                table: holding
                address: 0x0100
                type: int32
                order: CDAB
                scale: 10
                unit: W
                access: rw
                min: -5000
                max: 5000
                poll: slow
                description: a writable vendor point
              - {name: x_w_sf, table: holding, address: 258, type: int16}
              - {name: x_scaled_w, table: holding, address: 259, type: int16, scale_register: x_w_sf}
              - {name: x_state, table: input, address: 0x10, type: uint16, enum: {0: "off", 0x1: "on"}, not_implemented: true}
              - {name: x_relay, table: coil, address: 5, type: bool, access: rw}
            """
        let (profile, diagnostics) = parseProfile(text)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let p = try #require(profile)
        #expect(p.id == "test-meter")
        #expect(p.kind == .meter)
        #expect(p.transport.protocols == [.tcp])
        #expect(p.transport.maxRegistersPerRead == 125)
        #expect(p.transport.wordOrder == .ABCD)
        let sp = try #require(p.point(named: "x_setpoint_w"))
        #expect(sp.location == .register(table: .holding, address: 256))
        #expect(sp.type == .int32)
        #expect(sp.order == .CDAB)
        #expect(sp.scale == 10)
        #expect(sp.access == .rw)
        #expect(sp.min == -5000 && sp.max == 5000)
        #expect(sp.poll == .slow)
        #expect(sp.definedAt.line == 16)
        let state = try #require(p.point(named: "x_state"))
        #expect(state.enumLabels == [0: "off", 1: "on"])
        #expect(state.notImplementedIsMissing)
        #expect(p.point(named: "x_scaled_w")?.scaleRegister == "x_w_sf")
        #expect(p.point(named: "active_power_w")?.unit == "W")  // canonical unit filled in
        #expect(p.point(named: "active_power_w")?.poll == .normal)
    }

    @Test("transport settings load, including RTU line, limits, gap and forbidden ranges")
    func transport() throws {
        let text = meterHeader.replacingOccurrences(of: "  protocols: [tcp]\n", with: """
              protocols: [rtu, tcp]
              unit_id: 7
              tcp_port: 1502
              rtu: {baud: 19200, parity: even, data_bits: 8, stop_bits: 1}
              max_registers_per_read: 40
              max_gap_registers: 2
              min_request_gap_ms: 35
              word_order: CDAB
              write_read_fc23: true
              forbidden:
                - {table: holding, start: 0x20, end: 0x2F}

            """)
        let (profile, diagnostics) = parseProfile(text)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let t = try #require(profile).transport
        #expect(t.protocols == [.rtu, .tcp])
        #expect(t.unitID == 7)
        #expect(t.tcpPort == 1502)
        #expect(t.rtu == RTULineDefaults(baud: 19200, parity: .even, dataBits: 8, stopBits: 1))
        #expect(t.maxGapRegisters == 2)
        #expect(t.minRequestGap == .milliseconds(35))
        #expect(t.wordOrder == .CDAB)
        #expect(t.forbidden[.holding] == [0x20...0x2F])
        #expect(t.readLimits.maxRegisters == 40)
        #expect(t.writeReadFC23)
        #expect(try #require(parseProfile(meterHeader).0).transport.writeReadFC23 == false)
    }

    @Test("a transport flag that is not a boolean is located")
    func transportFlagMustBeBoolean() {
        let text = meterHeader.replacingOccurrences(of: "  protocols: [tcp]\n", with: "  protocols: [tcp]\n  write_read_fc23: sometimes\n")
        let (profile, diagnostics) = parseProfile(text)
        #expect(profile == nil)
        #expect(diagnostics.contains { $0.location.line == 9 && $0.message.contains("transport.write_read_fc23 must be true or false, not 'sometimes'") },
                "\(diagnostics.map(\.description))")
    }

    @Test("shape errors are located and all reported", arguments: [
        ("  - {name: x_a, table: holding, address: 20, type: uint16, colour: red}\n", 16, "unknown key 'colour' in a point"),
        ("  - {name: x_a, table: holdings, address: 20, type: uint16}\n", 16, "unknown table 'holdings'"),
        ("  - {name: x_a, table: holding, address: twenty, type: uint16}\n", 16, "address must be an integer"),
        ("  - {name: x_a, table: input, address: 20, type: uint16, access: rw, min: 0, max: 1}\n", 16, "input registers cannot be written"),
        ("  - {name: x_a, table: coil, address: 20, type: uint16}\n", 16, "type must be bool"),
        ("  - {name: x_a, table: holding, address: 20, type: uint16, poll: often}\n", 16, "poll must be fast, normal or slow"),
        ("  - {name: x_a, table: holding, address: 20, type: uint16, access: rw, min: 9, max: 1}\n", 16, "min 9.0 is greater than max 1.0"),
        ("  - {name: x_a, table: holding, address: 20, type: uint16, scale_register: x_nope}\n", 16, "scale_register 'x_nope' is not a point"),
        ("  - {name: frequency_hz, table: holding, address: 20, type: float32}\n", 16, "defined twice; the first is at line 15"),
        ("  - {name: x_a, table: holding, address: 65535, type: float32}\n", 16, "runs past 65535"),
        ("  - {name: hashrate_ths, table: holding, address: 20, type: uint32}\n", 16, "canonical point of asic-container, not of meter"),
        ("  - {name: power_factor, table: holding, address: 20, type: float32, unit: \"%\"}\n", 16, "'power_factor' is in no unit"),
    ])
    func pointErrors(_ extra: String, _ line: Int, _ fragment: String) {
        let (profile, diagnostics) = parseProfile(meterHeader + extra)
        #expect(profile == nil)
        #expect(diagnostics.contains { $0.location.line == line && $0.message.contains(fragment) },
                "wanted line \(line) '\(fragment)', got \(diagnostics.map(\.description))")
    }

    @Test("YAML syntax errors and duplicate keys are located")
    func syntax() {
        let (p1, d1) = parseProfile("id: x\nkind: [meter\n")
        #expect(p1 == nil)
        #expect(d1.count == 1 && d1[0].rule == .syntax)
        let (p2, d2) = parseProfile(meterHeader.replacingOccurrences(of: "vendor: Test\n", with: "vendor: Test\nvendor: Other\n"))
        #expect(p2 == nil)
        #expect(d2.contains { $0.rule == .syntax && $0.message.contains("'vendor' appears more than once") && $0.location.line == 3 })
    }

    @Test("container contracts: setpoints must be rw and run_state needs the standard labels")
    func containerContracts() throws {
        var text = try String(contentsOf: profilesDirectory.appendingPathComponent("reference-asic-container.yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "unit: W, access: rw, min: 0, max: 1500000}\n  - name: run_command",
                                         with: "unit: W}\n  - name: run_command")
        text = text.replacingOccurrences(of: "3: curtailed, ", with: "3: throttled, ")
        let (profile, diagnostics) = parseProfile(text, name: "contract.yaml")
        #expect(profile == nil)
        #expect(diagnostics.contains { $0.rule == .canonicalContract && $0.message.contains("'power_setpoint_w' is written by the controller") })
        #expect(diagnostics.contains { $0.rule == .canonicalContract && $0.message.contains("missing: curtailed") })
    }

    @Test("a missing firmware note is an error")
    func firmwareNoteMustExist() {
        let text = meterHeader.replacingOccurrences(of: "eastron-sdm630.md", with: "no-such-device.md")
        let (profile, diagnostics) = parseProfile(text)
        #expect(profile == nil)
        #expect(diagnostics.contains { $0.rule == .reference && $0.location.line == 6 && $0.message.contains("does not exist") })
    }

    @Test("SunSpec points resolve against the model library, and bad references are errors")
    func sunSpecReferences() throws {
        let base = """
            id: ss
            kind: pdu
            vendor: T
            model: T
            source: {document: t}
            firmware_notes: ../firmware-notes/sunspec-meter.md
            transport: {protocols: [tcp]}
            points:
              - {name: active_power_w, sunspec: {model: 203, point: W}}
              - {name: voltage_l1_v, sunspec: {model: 203, point: PhVphA}}
              - {name: current_l1_a, sunspec: {model: 203, point: AphA}}

            """
        let (ok, d0) = parseProfile(base)
        #expect(d0.isEmpty, "\(d0)")
        #expect(try #require(ok).point(named: "active_power_w")?.type == .int16)
        #expect(ok?.point(named: "active_power_w")?.notImplementedIsMissing == true)
        let (_, d1) = parseProfile(base + "  - {name: x_b, sunspec: {model: 203, point: Watts}}\n")
        #expect(d1.contains { $0.rule == .reference && $0.message.contains("has no point 'Watts'") && $0.location.line == 12 })
        let (_, d2) = parseProfile(base + "  - {name: x_c, sunspec: {model: 999, point: W}}\n")
        #expect(d2.contains { $0.rule == .reference && $0.message.contains("model 999 is not described") })
        let (_, d3) = parseProfile(base + "  - {name: x_d, sunspec: {model: 1, point: Mn}}\n")
        #expect(d3.contains { $0.message.contains("is a string, which has no numeric value") })
        let (_, d4) = parseProfile(base + "  - {name: x_e, table: holding, address: 1, type: uint16, sunspec: {model: 203, point: W}}\n")
        #expect(d4.contains { $0.message.contains("has both sunspec and table/address") })
    }
}
