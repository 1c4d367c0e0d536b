// Durations as operators type them: "90s", "30m", "2h", "1d", "1h30m" (the CLI's --for, --since, --expires-in and
// the fleet API's "+2h" times). One parser for the CLI and the hub.

public enum DurationText {
    /// Seconds (> 0 and finite), else nil. `bareSeconds`: a trailing number without a unit counts as seconds
    /// ("90", "1m30"); otherwise every number needs a unit.
    public static func seconds(_ text: String, bareSeconds: Bool = false) -> Double? {
        guard !text.isEmpty else { return nil }
        var total = 0.0, number = ""
        for c in text {
            if c.isASCII, c.isNumber || c == "." { number.append(c); continue }
            guard let n = Double(number), n.isFinite else { return nil }
            switch c {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86400
            default: return nil
            }
            number = ""
        }
        if !number.isEmpty {
            guard bareSeconds, let n = Double(number), n.isFinite else { return nil }
            total += n
        }
        return total > 0 && total.isFinite ? total : nil
    }
}
