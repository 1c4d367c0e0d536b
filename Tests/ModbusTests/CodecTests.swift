import Foundation
import Testing
import TestSupport
@testable import Modbus

@Suite("Register codecs")
struct CodecTests {
    /// Known vectors: 0x4049_0FDB is Float(3.1415927); the wire words per order are written out by hand.
    @Test(arguments: [
        (WordOrder.ABCD, [UInt16(0x4049), 0x0FDB]),
        (.CDAB, [0x0FDB, 0x4049]),
        (.BADC, [0x4940, 0xDB0F]),
        (.DCBA, [0xDB0F, 0x4940]),
    ])
    func float32KnownVectors(order: WordOrder, words: [UInt16]) throws {
        let v = try RegisterCodec.decode(words, as: .float32, order: order)
        #expect(v == .float(Double(Float(bitPattern: 0x4049_0FDB))))
        #expect(try RegisterCodec.encode(Double(Float(bitPattern: 0x4049_0FDB)), as: .float32, order: order) == words)
    }

    @Test func int64AndUInt64Orders() throws {
        // 0x0102_0304_0506_0708 in each order.
        let abcd: [UInt16] = [0x0102, 0x0304, 0x0506, 0x0708]
        #expect(try RegisterCodec.decode(abcd, as: .uint64, order: .ABCD) == .unsigned(0x0102_0304_0506_0708))
        #expect(try RegisterCodec.decode([0x0708, 0x0506, 0x0304, 0x0102], as: .uint64, order: .CDAB) == .unsigned(0x0102_0304_0506_0708))
        #expect(try RegisterCodec.decode([0x0201, 0x0403, 0x0605, 0x0807], as: .uint64, order: .BADC) == .unsigned(0x0102_0304_0506_0708))
        #expect(try RegisterCodec.decode([0x0807, 0x0605, 0x0403, 0x0201], as: .uint64, order: .DCBA) == .unsigned(0x0102_0304_0506_0708))
        #expect(try RegisterCodec.decode([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], as: .int64) == .signed(-2))
    }

    @Test func signedSixteenAndThirtyTwo() throws {
        #expect(try RegisterCodec.decode([0xFFFE], as: .int16) == .signed(-2))
        #expect(try RegisterCodec.decode([0xFFFF, 0xFFFD], as: .int32) == .signed(-3))
        #expect(try RegisterCodec.decode([0xFFFD, 0xFFFF], as: .int32, order: .CDAB) == .signed(-3))
        #expect(try RegisterCodec.encode(-3, as: .int32, order: .CDAB) == [0xFFFD, 0xFFFF])
    }

    @Test func wrongRegisterCountIsAnError() {
        #expect(throws: CodecError.wrongRegisterCount(type: .float32, expected: 2, got: 1)) {
            try RegisterCodec.decode([0x4049], as: .float32)
        }
    }

    @Test func outOfRangeEncodeIsAnError() {
        #expect(throws: CodecError.self) { try RegisterCodec.encode(70000, as: .uint16) }
        #expect(throws: CodecError.self) { try RegisterCodec.encode(-1, as: .uint32) }
        #expect(throws: CodecError.self) { try RegisterCodec.encode(.nan, as: .int16) }
        #expect(throws: CodecError.self) { try RegisterCodec.encode(1e40, as: .float32) }
    }

    @Test func notImplementedSentinels() throws {
        #expect(RegisterCodec.isNotImplemented(try RegisterCodec.decode([0x8000], as: .int16), type: .int16))
        #expect(RegisterCodec.isNotImplemented(try RegisterCodec.decode([0xFFFF], as: .uint16), type: .uint16))
        #expect(RegisterCodec.isNotImplemented(try RegisterCodec.decode([0x8000, 0], as: .int32), type: .int32))
        #expect(RegisterCodec.isNotImplemented(try RegisterCodec.decode([0xFFFF, 0xFFFF], as: .uint32), type: .uint32))
        #expect(RegisterCodec.isNotImplemented(try RegisterCodec.decode([0x7FC0, 0], as: .float32), type: .float32))
        #expect(!RegisterCodec.isNotImplemented(try RegisterCodec.decode([0x7FFF], as: .int16), type: .int16))
        #expect(!RegisterCodec.isNotImplemented(try RegisterCodec.decode([0xFFFE], as: .uint16), type: .uint16))
    }

    @Test func scaling() {
        #expect(Scaling.sunSpecFactor(-2).apply(12345) == 123.45)
        #expect(Scaling.sunSpecFactor(3).apply(2) == 2000)
        #expect(Scaling.factor(0.1).apply(2305) == 230.5)
        #expect(abs(Scaling.sunSpecFactor(-1).unapply(230.5) - 2305) < 1e-9)
        #expect(validSunSpecScaleFactor(0x8000) == nil)
        #expect(validSunSpecScaleFactor(UInt16(bitPattern: -2)) == -2)
        #expect(validSunSpecScaleFactor(11) == nil)
    }

    /// Fuzz-style: random register contents in every type and order never trap,
    /// and encode(decode(x)) gives back x for every type whose decode is exact.
    @Test(arguments: RegisterType.allCases)
    func fuzzRoundTrip(type: RegisterType) throws {
        var rng = SeededRandom(seed: 0xC0DE + UInt64(type.registerCount))
        for order in WordOrder.allCases {
            for _ in 0..<2000 {
                let words = (0..<type.registerCount).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
                let raw = try RegisterCodec.decode(words, as: type, order: order)
                switch (type, raw) {
                case (.float32, .float(let v)) where v.isNaN, (.float64, .float(let v)) where v.isNaN:
                    continue  // NaN payloads are not preserved through Double
                case (.uint64, _), (.int64, _):
                    // Beyond 2^53 a Double cannot hold every integer; check the bits directly.
                    let bits = RegisterCodec.canonicalBits(words[...], order: order)
                    let back = (0..<type.registerCount).map { RegisterCodec.wireWord(bits, $0, of: type.registerCount, type: type, order: order) }
                    #expect(back == words)
                case (.bool, _), (.bitfield16, _) where type == .bool:
                    #expect(try RegisterCodec.encode(raw.doubleValue, as: type, order: order) == [words[0] != 0 ? 1 : 0])
                default:
                    #expect(try RegisterCodec.encode(raw.doubleValue, as: type, order: order) == words, "\(type) \(order) \(words)")
                }
            }
        }
    }

    /// Encoding in place (the simulator's read path) writes exactly what `encode` returns,
    /// clipped to the window, and leaves the other registers alone.
    @Test(arguments: RegisterType.allCases)
    func encodeInPlaceMatches(type: RegisterType) throws {
        var rng = SeededRandom(seed: 0xE11C + UInt64(type.registerCount))
        let n = type.registerCount
        for order in WordOrder.allCases {
            for _ in 0..<500 {
                let value: Double = switch type {
                case .float32, .float64: Double.random(in: -1e6...1e6, using: &rng)
                case .bool: Double(Int.random(in: 0...1, using: &rng))
                case .int16, .int32, .int64: Double(Int.random(in: -30_000...30_000, using: &rng))
                default: Double(Int.random(in: 0...60_000, using: &rng))
                }
                let whole = try RegisterCodec.encode(value, as: type, order: order)
                // A window that starts anywhere from before the value to inside it.
                let base = 100 + Int.random(in: -2...(n - 1), using: &rng)
                var out = [UInt16](repeating: 0xBEEF, count: Int.random(in: 1...6, using: &rng))
                try RegisterCodec.encode(value, as: type, order: order, at: 100, into: &out, base: base)
                for (k, word) in out.enumerated() {
                    let register = base + k
                    let want = (100..<(100 + n)).contains(register) ? whole[register - 100] : 0xBEEF
                    #expect(word == want, "\(type) \(order) \(value) register \(register)")
                }
            }
        }
    }

    /// Short or long register slices are rejected, never read out of bounds.
    @Test func fuzzWrongLengths() {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<1000 {
            let type = RegisterType.allCases.randomElement(using: &rng)!
            var n = Int.random(in: 0...6, using: &rng)
            if n == type.registerCount { n += 1 }
            let words = (0..<n).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
            #expect(throws: CodecError.self) { try RegisterCodec.decode(words, as: type) }
        }
    }

    @Test func endpointParsing() {
        #expect(ModbusEndpoint.parseTCP("10.0.0.5:502") == .tcp(host: "10.0.0.5", port: 502))
        #expect(ModbusEndpoint.parseTCP("[::1]:1502") == .tcp(host: "::1", port: 1502))
        #expect(ModbusEndpoint.parseTCP("host") == nil)
        #expect(ModbusEndpoint.parseTCP("host:0") == nil)
        #expect(ModbusEndpoint.parseTCP("host:70000") == nil)
        #expect(ModbusEndpoint.parseTCP(":502") == nil)
    }

    @Test func errorsPrintAsOneClearLine() {
        let e = ModbusError(.exception(.illegalDataAddress), device: "sdm630-1 (10.0.0.5:502)", unit: 3,
                            function: .readInputRegisters, address: 52, count: 2)
        #expect(e.description == "sdm630-1 (10.0.0.5:502) unit 3 FC04 read input registers @52+2: Modbus exception 2 (ILLEGAL DATA ADDRESS)")
        #expect(!e.description.contains("\n"))
    }

    @Test func backoffGrowsWithJitterAndCap() {
        let p = BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.2)
        #expect(p.delay(afterFailures: 0, unit: 0.5) == .zero)
        #expect(p.delay(afterFailures: 1, unit: 0.5) == .milliseconds(100))
        #expect(p.delay(afterFailures: 3, unit: 0.5) == .milliseconds(400))
        #expect(p.delay(afterFailures: 3, unit: 0) == .milliseconds(320))
        #expect(p.delay(afterFailures: 3, unit: 0.999) <= .milliseconds(480))
        #expect(p.delay(afterFailures: 50, unit: 0.999) == .seconds(2))
    }
}
