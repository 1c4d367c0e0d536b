import Foundation
import HardwareProfiles
import Modbus
import Testing

@Suite("SunSpec models and discovery")
struct SunSpecTests {
    /// A SunSpec device image: "SunS" at `base`, then the given models (id, length), then the end marker.
    static func device(base: Int, models: [(Int, Int)], endMarker: Bool = true) -> MemoryBus {
        let bus = MemoryBus([:])
        bus.set(.holding, base, [0x5375, 0x6E53])
        var a = base + 2
        for (id, length) in models {
            bus.set(.holding, a, [UInt16(id), UInt16(length)] + [UInt16](repeating: 0, count: length))
            a += length + 2
        }
        if endMarker { bus.set(.holding, a, [0xFFFF, 0]) }
        return bus
    }

    @Test("the shipped model descriptions match the SunSpec layouts")
    func library() throws {
        let (lib, diagnostics) = SunSpecModelLibrary.load(directory: profilesDirectory.appendingPathComponent("sunspec"))
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(Set(lib.models.keys) == [1, 201, 202, 203, 204])
        #expect(lib[1]?.length == 66)
        let m = try #require(lib[203])
        #expect(m.length == 105)
        // Spot checks against the SunSpec model 203 table.
        let expected: [(String, Int, SunSpecPointType, String?)] = [
            ("A", 2, .int16, "A_SF"), ("AphA", 3, .int16, "A_SF"), ("A_SF", 6, .sunssf, nil), ("PhVphA", 8, .int16, "V_SF"),
            ("V_SF", 15, .sunssf, nil), ("Hz", 16, .int16, "Hz_SF"), ("W", 18, .int16, "W_SF"), ("W_SF", 22, .sunssf, nil),
            ("PF", 33, .int16, "PF_SF"), ("TotWhExp", 38, .acc32, "TotWh_SF"), ("TotWhImp", 46, .acc32, "TotWh_SF"),
            ("TotWh_SF", 54, .sunssf, nil), ("Evt", 105, .bitfield32, nil),
        ]
        for (name, offset, type, sf) in expected {
            let p = try #require(m.point(named: name))
            #expect(p.offset == offset, "\(name)")
            #expect(p.type == type, "\(name)")
            #expect(p.sf == sf, "\(name)")
        }
        #expect(lib[1]?.point(named: "DA")?.access == .rw)
    }

    @Test("a model file whose offsets do not add up is rejected")
    func badModel() {
        let text = """
            id: 9
            name: broken
            length: 2
            points:
              - {name: ID, offset: 0, type: uint16, size: 1}
              - {name: L, offset: 1, type: uint16, size: 1}
              - {name: X, offset: 3, type: int32, size: 2}
            """
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("model-9-\(UUID().uuidString).yaml")
        try? text.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        let (model, diagnostics) = SunSpecModelLibrary.loadModel(url: url)
        #expect(model == nil)
        #expect(diagnostics.contains { $0.message.contains("has offset 3, but the points before it end at 2") })
    }

    @Test("discovery finds SunS at each base and walks the models", arguments: [0, 40000, 50000])
    func discover(base: Int) async throws {
        let bus = Self.device(base: base, models: [(1, 66), (203, 105)])
        let result = try await SunSpecDiscovery.discover(bus: bus)
        #expect(result.base == base)
        #expect(result.models == [SunSpecModelInstance(id: 1, address: base + 2, length: 66),
                                  SunSpecModelInstance(id: 203, address: base + 70, length: 105)])
        #expect(result.endMarkerFound)
        // Bases are tried in order 40000, 0, 50000, and the walk reads one header per model plus the end marker.
        let headerReads = bus.requests.filter { $0.count == 2 }.map(\.address)
        let tried = Array([40000, 0, 50000].prefix { $0 != base }) + [base]
        #expect(headerReads == tried + [base + 2, base + 70, base + 177])
    }

    @Test("no marker anywhere is an error naming what each base held")
    func noMarker() async {
        let bus = MemoryBus([.holding: [40000: 0x1234, 40001: 0x5678]])
        await #expect {
            try await SunSpecDiscovery.discover(bus: bus)
        } throws: { error in
            let text = "\(error)"
            return text.contains("base 40000 holds 0x1234 0x5678") && text.contains("base 0: Modbus exception 2")
                && text.contains("base 50000")
        }
    }

    @Test("a chain that does not start with the common model is malformed")
    func firstModelMustBeCommon() async {
        let bus = Self.device(base: 0, models: [(203, 105)])
        await #expect(throws: SunSpecDiscoveryError.self) { try await SunSpecDiscovery.discover(bus: bus) }
    }

    @Test("a chain without an end marker stops with a note and keeps the models found")
    func noEndMarker() async throws {
        let bus = Self.device(base: 40000, models: [(1, 66), (203, 105)], endMarker: false)
        let result = try await SunSpecDiscovery.discover(bus: bus)
        #expect(result.models.map(\.id) == [1, 203])
        #expect(!result.endMarkerFound)
        #expect(result.note?.contains("no end marker") == true)
    }

    @Test("points of a model the device lacks, or beyond a short model, fail while the rest read")
    func missingModel() async throws {
        let profile = try shippedProfile("sunspec-meter-203")
        let bus = Self.device(base: 40000, models: [(1, 66), (201, 105)])
        let result = try await ProfileProbe.read(profile: profile, bus: bus)
        #expect(result.readings.allSatisfy { $0.outcome.failure?.contains("SunSpec model 203 not found on the device (it has 1, 201)") == true })
        #expect(result.requestCount == 0)

        let short = Self.device(base: 40000, models: [(1, 66), (203, 30)])
        let r2 = try await ProfileProbe.read(profile: profile, bus: short)
        #expect(r2.reading("frequency_hz")?.outcome.failure == nil)           // offset 16, within L = 30
        #expect(r2.reading("import_energy_kwh")?.outcome.failure?.contains("too short") == true)  // offset 46
    }
}
