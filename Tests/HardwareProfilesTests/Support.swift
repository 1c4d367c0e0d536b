import Foundation
import HardwareProfiles
import Modbus
import Synchronization
import TestSupport

/// The repository's hardware-profiles directory.
let profilesDirectory = packageRoot.appendingPathComponent("hardware-profiles")
let brokenDirectory = packageRoot.appendingPathComponent("Tests/fixtures/broken-profiles")

/// Every shipped profile, by id.
let shippedProfileIDs = ["eastron-sdm630", "janitza-umg604", "sunspec-meter-203", "raritan-px3",
                         "reference-asic-container", "reference-gpu-container"]

func shippedProfile(_ id: String) throws -> DeviceProfile {
    try ProfileLoader.loadValid(path: profilesDirectory.appendingPathComponent("\(id).yaml").path)
}

/// Parses profile text that lives (virtually) in hardware-profiles/, so relative links resolve.
func parseProfile(_ text: String, name: String = "inline.yaml") -> (DeviceProfile?, [Diagnostic]) {
    ProfileLoader.parse(text, file: profilesDirectory.appendingPathComponent(name).path)
}

/// The header of a valid meter profile, for tests that add points to it.
let meterHeader = """
    id: test-meter
    kind: meter
    vendor: Test
    model: Test meter
    source: {document: test}
    firmware_notes: ../firmware-notes/eastron-sdm630.md
    transport:
      protocols: [tcp]
    points:
      - {name: active_power_w, table: holding, address: 0, type: float32}
      - {name: import_energy_kwh, table: holding, address: 2, type: float32}
      - {name: export_energy_kwh, table: holding, address: 4, type: float32}
      - {name: voltage_l1_v, table: holding, address: 6, type: float32}
      - {name: current_l1_a, table: holding, address: 8, type: float32}
      - {name: frequency_hz, table: holding, address: 10, type: float32}

    """

/// An in-memory device: registers present in `tables` read back; anything else is ILLEGAL DATA ADDRESS.
final class MemoryBus: RegisterBus {
    let deviceName = "memory-device"
    let unit = 1
    private let state: Mutex<(tables: [ModbusTable: [Int: UInt16]], requests: [ReadSpan])>

    init(_ tables: [ModbusTable: [Int: UInt16]]) {
        state = Mutex((tables, []))
    }

    var requests: [ReadSpan] { state.withLock { $0.requests } }

    func set(_ table: ModbusTable, _ address: Int, _ words: [UInt16]) {
        state.withLock { s in for (i, w) in words.enumerated() { s.tables[table, default: [:]][address + i] = w } }
    }

    func read(_ table: ModbusTable, address: Int, count: Int) async throws -> [UInt16] {
        try state.withLock { s in
            s.requests.append(ReadSpan(table: table, address: address, count: count))
            var out: [UInt16] = []
            for a in address..<(address + count) {
                guard let v = s.tables[table]?[a] else {
                    throw ModbusError(.exception(.illegalDataAddress), device: deviceName, unit: unit,
                                      function: .read(table), address: address, count: count)
                }
                out.append(v)
            }
            return out
        }
    }

    func writeRegisters(address: Int, values: [UInt16]) async throws { set(.holding, address, values) }
    func writeCoils(address: Int, values: [Bool]) async throws { set(.coil, address, values.map { $0 ? 1 : 0 }) }
}

/// Big-endian words of a float32, written independently of RegisterCodec.
func f32(_ v: Float) -> [UInt16] {
    let bits = v.bitPattern
    return [UInt16(bits >> 16), UInt16(bits & 0xFFFF)]
}

/// A clock that does not sleep; it records how long it was asked to.
final class RecordingClock: Clock, @unchecked Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private let lock = Mutex<(now: Instant, sleeps: [Duration])>((Instant(offset: .zero), []))
    var now: Instant { lock.withLock { $0.now } }
    var minimumResolution: Duration { .nanoseconds(1) }
    var sleeps: [Duration] { lock.withLock { $0.sleeps } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        lock.withLock { s in
            s.sleeps.append(s.now.duration(to: deadline))
            if s.now < deadline { s.now = deadline }
        }
    }
}

extension PointOutcome {
    var number: Double? { if case .value(.number(let v)) = self { v } else { nil } }
    var label: String? { if case .value(.state(_, let l)) = self { l } else { nil } }
    var isMissing: Bool { if case .missing = self { true } else { false } }
    var failure: String? { if case .failed(let m) = self { m } else { nil } }
}
