// The caps and validation of operator actions, shared by the HTTP API (EventsController, ModesController) and
// the fleet commands (FleetEdge.FleetCommandProcessor), so both refuse the same values with the same words.
// Pure: each check returns why a value is refused, or nil.

import Basics
import Signals
import Store

public enum OperatorRules {
    /// The least role of each operator action: what the API's routes require (AuthMatrixTests), and what a fleet
    /// command needs.
    public static let createEventRole = Role.operator
    public static let cancelEventRole = Role.operator
    public static let setModeRole = Role.operator
    public static let applyConfigRole = Role.admin

    // The DR event rules are Signals.DREventRules (the fleet hub checks its caps against them too).
    public static let maxCapKW = DREventRules.maxCapKW
    public static let maxEventS = DREventRules.maxEventS
    public static let maxReasonCharacters = DREventRules.maxReasonCharacters
    public static let maxOverrideS = 7 * 86_400.0

    public static func isValidID(_ s: String) -> Bool { DREventRules.isValidID(s) }
    public static let idProblem = DREventRules.idProblem

    public static func eventProblem(capKW: Double, from: Double, until: Double, reason: String, now: Double) -> String? {
        DREventRules.eventProblem(capKW: capKW, from: from, until: until, reason: reason, now: now)
    }

    /// Why a manual setpoint for `forS` seconds on a device of `maxKW` is refused, or nil.
    public static func overrideProblem(kw: Double, forS: Double, maxKW: Double, device: String) -> String? {
        guard kw.isFinite, kw >= 0, kw <= maxKW else { return "setpoint_kw must be 0…\(maxKW) for \(device)" }
        guard forS.isFinite, forS >= 1, forS <= maxOverrideS else { return "for_s must be 1…\(Int(maxOverrideS)) seconds" }
        return nil
    }
}
