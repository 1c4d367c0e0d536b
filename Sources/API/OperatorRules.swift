// The caps and validation of operator actions, shared by the HTTP API (EventsController, ModesController) and
// the fleet commands (FleetEdge.FleetCommandProcessor), so both refuse the same values with the same words.
// Pure: each check returns why a value is refused, or nil.

import Store

public enum OperatorRules {
    /// The least role of each operator action: what the API's routes require (AuthMatrixTests), and what a fleet
    /// command needs.
    public static let createEventRole = Role.operator
    public static let cancelEventRole = Role.operator
    public static let setModeRole = Role.operator
    public static let applyConfigRole = Role.admin

    public static let maxCapKW = 10_000_000.0
    public static let maxEventS = 31 * 86_400.0
    public static let maxReasonCharacters = 200
    public static let maxOverrideS = 7 * 86_400.0

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

    /// Why a manual setpoint for `forS` seconds on a device of `maxKW` is refused, or nil.
    public static func overrideProblem(kw: Double, forS: Double, maxKW: Double, device: String) -> String? {
        guard kw.isFinite, kw >= 0, kw <= maxKW else { return "setpoint_kw must be 0…\(maxKW) for \(device)" }
        guard forS.isFinite, forS >= 1, forS <= maxOverrideS else { return "for_s must be 1…\(Int(maxOverrideS)) seconds" }
        return nil
    }
}
