import Foundation
import HardwareProfiles
import Modbus
import Testing
import TestSupport

@Suite("Point decoding")
struct DecoderTests {
    func point(_ type: RegisterType, order: WordOrder = .ABCD, scale: Double? = nil, sf: Int? = nil, labels: [Int: String] = [:],
               notImplemented: Bool = false, zeroIsMissing: Bool = false) -> ResolvedPoint {
        let def = PointDefinition(name: "x_p", location: .register(table: .holding, address: 0), type: type, order: nil,
                                  scale: scale, scaleRegister: nil, unit: nil, access: .r, min: nil, max: nil,
                                  enumLabels: labels, poll: .normal, notImplementedIsMissing: notImplemented,
                                  description: nil, definedAt: SourceLocation(file: "t", line: 1, column: 1))
        return ResolvedPoint(definition: def, table: .holding, address: 0, type: type, order: order,
                             scaleFactorAddress: sf, zeroIsMissing: zeroIsMissing, unavailable: nil)
    }

    @Test("float32 prints the value the device meant, in every word order")
    func float32() {
        #expect(PointDecoder.decode(point(.float32), words: f32(230.1)).number == 230.1)
        let w = f32(49.98)
        #expect(PointDecoder.decode(point(.float32, order: .CDAB), words: [w[1], w[0]]).number == 49.98)
        #expect(PointDecoder.decode(point(.float32, order: .BADC), words: w.map(\.byteSwapped)).number == 49.98)
        #expect(PointDecoder.decode(point(.float32, order: .DCBA), words: [w[1].byteSwapped, w[0].byteSwapped]).number == 49.98)
    }

    /// The float32 tidy-up is numeric (no text on the hot path); it must give exactly what
    /// printing the float and parsing the text gives, ties and all.
    @Test("float32 tidy-up equals the printed float, for 300,000 floats")
    func float32ShortestDecimal() {
        var rng = SeededRandom(seed: 0xF10A7)
        var mismatches: [String] = []
        for k in 0..<300_000 {
            let f: Float
            switch k % 4 {
            case 0: f = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            case 1: f = Float(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 10)  // one-decimal readings
            case 2: f = Float(Double(Int.random(in: 0...8_000_000, using: &rng)) / 8)  // exact binary halves: ties
            default: f = Float.random(in: -500_000...500_000, using: &rng)
            }
            guard f.isFinite else { continue }
            let words = [UInt16(truncatingIfNeeded: f.bitPattern >> 16), UInt16(truncatingIfNeeded: f.bitPattern)]
            let got = PointDecoder.decode(point(.float32), words: words).number
            let want = Double("\(f)")!
            if got != want && mismatches.count < 5 { mismatches.append("\(f): \(got ?? .nan) ≠ \(want)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test("constant scales give exact decimals")
    func scales() {
        #expect(PointDecoder.decode(point(.float32, scale: 0.001), words: f32(1234567)).number == 1234.567)
        #expect(PointDecoder.decode(point(.int16, scale: 0.1), words: [UInt16(bitPattern: -52)]).number == -5.2)
        #expect(PointDecoder.decode(point(.uint32, scale: 0.1), words: [0x05E3, 0x0A78]).number == 9876543.2)
        #expect(PointDecoder.decode(point(.uint16, scale: 10), words: [12]).number == 120)
    }

    @Test("a SunSpec scale factor register scales by a power of ten, combined with a constant scale")
    func scaleFactor() {
        #expect(PointDecoder.decode(point(.int16, sf: 9), words: [2301], scaleFactor: UInt16(bitPattern: -1)).number == 230.1)
        #expect(PointDecoder.decode(point(.int16, sf: 9), words: [812], scaleFactor: 1).number == 8120)
        #expect(PointDecoder.decode(point(.int16, scale: 0.01, sf: 9), words: [9850], scaleFactor: UInt16(bitPattern: -2)).number == 0.985)
        // A scale factor that is not implemented, or absurd, leaves the value missing.
        #expect(PointDecoder.decode(point(.int16, sf: 9), words: [100], scaleFactor: 0x8000).isMissing)
        #expect(PointDecoder.decode(point(.int16, sf: 9), words: [100], scaleFactor: 11).isMissing)
    }

    @Test("not-implemented sentinels read as missing only when the point asks for it", arguments: [
        (RegisterType.int16, [UInt16(0x8000)]), (.uint16, [0xFFFF]), (.bitfield16, [0xFFFF]),
        (.uint32, [0xFFFF, 0xFFFF]), (.int32, [0x8000, 0x0000]), (.float32, [0x7FC0, 0x0000]),
    ])
    func sentinels(_ type: RegisterType, _ words: [UInt16]) {
        #expect(PointDecoder.decode(point(type, notImplemented: true), words: words).isMissing)
        #expect(!PointDecoder.decode(point(type, notImplemented: false), words: words).isMissing)
    }

    @Test("SunSpec accumulators read 0 as not accumulated")
    func accumulators() {
        #expect(PointDecoder.decode(point(.uint32, zeroIsMissing: true), words: [0, 0]).isMissing)
        #expect(PointDecoder.decode(point(.uint32, zeroIsMissing: true), words: [0, 1]).number == 1)
    }

    @Test("enum points give their label, or the bare code when it is not listed")
    func enums() {
        let labels = [0: "stopped", 2: "running"]
        #expect(PointDecoder.decode(point(.uint16, labels: labels), words: [2]) == .value(.state(code: 2, label: "running")))
        #expect(PointDecoder.decode(point(.uint16, labels: labels), words: [7]) == .value(.state(code: 7, label: nil)))
        #expect(PointValue.state(code: 7, label: nil).text == "unknown(7)")
        #expect(PointDecoder.decode(point(.bool), words: [1]) == .value(.bool(true)))
    }

    @Test("a wrong number of words is a failure, not a crash")
    func wrongCount() {
        #expect(PointDecoder.decode(point(.float32), words: [1]).failure?.contains("needs 2 registers") == true)
    }

    @Test("numbers format as JSON-compatible text")
    func formatting() {
        #expect(PointValue.format(8120) == "8120")
        #expect(PointValue.format(-1500) == "-1500")
        #expect(PointValue.format(0.985) == "0.985")
        #expect(PointValue.format(12345.678000000001) == "12345.678")
        #expect(PointValue.format(1e-7) == "1e-07")
        #expect(Double(PointValue.format(3.0e20)) == 3.0e20)
    }

    @Test("decoding random words never crashes, whatever the type and order")
    func fuzz() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let type = RegisterType.allCases.randomElement(using: &rng)!
            let order = WordOrder.allCases.randomElement(using: &rng)!
            let count = Int.random(in: 0...5, using: &rng)
            let words = (0..<count).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
            let p = point(type, order: order, scale: Bool.random(using: &rng) ? 0.1 : nil,
                          sf: Bool.random(using: &rng) ? 1 : nil, notImplemented: Bool.random(using: &rng))
            let outcome = PointDecoder.decode(p, words: words, scaleFactor: UInt16.random(in: 0...UInt16.max, using: &rng))
            if count != type.registerCount { #expect(outcome.failure != nil) }
        }
    }
}
