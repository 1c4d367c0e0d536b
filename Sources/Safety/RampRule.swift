// How far a device may rise in one tick. One definition, used by the broker when it
// plans and by the safety governor when it allows: if the two disagreed, the broker
// would keep proposing moves that the governor refuses (a curtailed site that never
// restarts at a 1 s tick was exactly that).

public enum RampRule {
    /// The highest power a device may be given this tick, starting from `fromKw`.
    ///
    /// - A running device (at or above its min-stable power) rises by at most
    ///   `rampKwPerS × tickS`.
    /// - A device that is off (below its min-stable power) may start straight at its
    ///   min-stable power: a start is not a ramp. It may also rise from zero by the ramp,
    ///   whichever is higher.
    ///
    /// Never above `maxKw`. A ramp rate of 0 or less (or not finite) means no ramp limit.
    /// The site restore budget and the caps still apply on top of this ceiling.
    public static func ceilingKw(fromKw: Double, maxKw: Double, minStableKw: Double, rampKwPerS: Double, tickS: Double) -> Double {
        let step = rampKwPerS > 0 && rampKwPerS.isFinite ? rampKwPerS * tickS : Double.infinity
        if isOff(fromKw: fromKw, minStableKw: minStableKw) {
            return min(maxKw, max(minStableKw, step))
        }
        return min(maxKw, fromKw + step)
    }

    /// A device below its min-stable power (or at 0) is off: its next rise is a start.
    public static func isOff(fromKw: Double, minStableKw: Double) -> Bool {
        fromKw <= 0 || fromKw < minStableKw
    }
}
