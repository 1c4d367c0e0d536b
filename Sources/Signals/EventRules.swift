// The rules a DR event must keep to be accepted, wherever it comes from: the site's HTTP API and fleet commands
// (API.OperatorRules forwards to these) and the fleet hub, which checks every cap it sends against the same rules
// so that it never sends a command a site would refuse. Pure.

public enum DREventRules {
    public static let maxCapKW = 10_000_000.0
    public static let maxEventS = 31 * 86_400.0
    public static let maxReasonCharacters = 200

    /// An event or token id: 1…64 of A-Z a-z 0-9 . _ -
    public static func isValidID(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    public static let idProblem = "id must be 1…64 of A-Z a-z 0-9 . _ -"

    /// Why a DR event (cap, window, reason already trimmed) is refused at `now`, or nil.
    public static func eventProblem(capKW: Double, from: Double, until: Double, reason: String, now: Double) -> String? {
        guard from.isFinite, until.isFinite else { return "from and until must be finite times" }
        guard capKW.isFinite, capKW >= 0, capKW <= maxCapKW else { return "cap_kw must be 0…10000000 kW" }
        guard until > from else { return "until must be after from" }
        guard until > now else { return "until is in the past" }
        guard until - from <= maxEventS else { return "an event may last at most 31 days" }
        guard !reason.isEmpty, reason.count <= maxReasonCharacters else { return "reason must be 1…200 characters" }
        return nil
    }
}
