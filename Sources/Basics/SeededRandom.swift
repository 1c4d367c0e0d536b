// The one seeded random number generator (SplitMix64): property and fuzz tests, the benchmarks, and
// the simulator's measurement noise. The same seed gives the same sequence on every machine.

import Foundation

public struct SeededRandom: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SeededRandom {
    /// Uniform in [0, 1), 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Uniform in [lo, hi).
    public mutating func range(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { unit() < p }
    /// An integer in lo…hi (modulo draw: the tests need reproducible, not unbiased).
    public mutating func int(_ lo: Int, _ hi: Int) -> Int { lo + Int(next() % UInt64(hi - lo + 1)) }
    /// Standard normal (Box–Muller, one draw of two uniforms per value).
    public mutating func gaussian() -> Double {
        let u1 = max(unit(), 1e-12), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
