// Fleet commands (issue 17): NCMD/DCMD that reach the control loop through the same caps, validation, roles and
// calls as the HTTP API (OperatorRules; ControlLoop.fastPath/addEvent/cancelEvent/setOverride; SiteRuntime.apply),
// with replay protection, an audit row per command and an answer in NDATA. See docs/fleet.md, "Commands".
//
// The metric names and datatypes are here (FleetCommandName); parsing is pure (FleetCommandParser); the
// FleetCommandProcessor runs on the edge node service's task, never the loop's.

import API
import Basics
import Control
import Foundation
import Logging
import Signals
import Site
import Sparkplug
import Store
import Synchronization

/// The command metrics (NCMD to the edge node, DCMD to a device) and the answer metrics (NBIRTH, NDATA).
public enum FleetCommandName {
    // Every command (NCMD and DCMD) carries these three.
    /// String: the command's id (1…64 of A-Z a-z 0-9 . _ -), unique within the replay window.
    public static let id = "Command/ID"
    /// DateTime: when the sender issued it (ms since the epoch); must be within the window of the loop's clock.
    public static let timestamp = "Command/Timestamp"
    /// String: the identity the sender claims, mapped to a role by the site file's `fleet.roles`.
    public static let clientID = "Command/Client ID"

    // NCMD: create a DR event.
    public static let eventID = "DR Event/ID"
    public static let eventCapKW = "DR Event/Cap kW"
    public static let eventStart = "DR Event/Start"
    public static let eventEnd = "DR Event/End"
    public static let eventDurationS = "DR Event/Duration s"
    public static let eventReason = "DR Event/Reason"
    // NCMD: cancel a DR event.
    public static let cancelEventID = "DR Event/Cancel ID"
    // NCMD: apply a configuration version by its content hash: a stored one, or the site file sent with it (a fleet
    // rollout), which must hash to it.
    public static let configSHA256 = "Config/Apply SHA256"
    public static let configComment = "Config/Comment"
    /// Text: the site file itself (at most `maxConfigYAMLBytes`); stored as a new version if no version has its hash.
    public static let configYAML = "Config/YAML"
    public static let maxConfigYAMLBytes = 1 << 20
    // DCMD: a device's mode.
    public static let mode = "Mode"
    public static let setpointKW = "Setpoint kW"
    public static let durationS = "Duration s"

    // The answer: node metrics, in the NBIRTH and, after every command, in NDATA.
    public static let lastID = "Command/Last ID"
    public static let lastAccepted = "Command/Last Accepted"
    public static let lastResult = "Command/Last Result"

    static let envelope: [String: SparkplugDataType] = [id: .string, timestamp: .dateTime, clientID: .string]

    /// What an NCMD may carry (besides `Node Control/Rebirth`), with datatypes.
    public static let nodeSchema = CommandSchema(envelope.merging([
        eventID: .string, eventCapKW: .double, eventStart: .dateTime, eventEnd: .dateTime, eventDurationS: .int64,
        eventReason: .string, cancelEventID: .string, configSHA256: .string, configComment: .string,
        configYAML: .text,
    ]) { a, _ in a }, echo: envelope)

    /// What a DCMD may carry.
    public static let deviceSchema = CommandSchema(envelope.merging([mode: .string, setpointKW: .double, durationS: .int64]) { a, _ in a },
                                                   echo: envelope)
}

/// A parsed command, before role, replay and range checks.
public enum FleetCommand: Sendable, Equatable {
    case createEvent(id: String, capKW: Double, start: Double?, end: Double?, durationS: Int64?, reason: String)
    case cancelEvent(id: String)
    case applyConfig(sha256: String, comment: String?, yaml: String? = nil)
    case setMode(device: String, mode: String, setpointKW: Double?, durationS: Int64?)

    /// The least role it needs: the role of the API route doing the same (OperatorRules).
    public var role: Role {
        switch self {
        case .createEvent: OperatorRules.createEventRole
        case .cancelEvent: OperatorRules.cancelEventRole
        case .applyConfig: OperatorRules.applyConfigRole
        case .setMode: OperatorRules.setModeRole
        }
    }

    /// For the audit log's action column.
    public var action: String {
        switch self {
        case .createEvent: "NCMD DR event create"
        case .cancelEvent: "NCMD DR event cancel"
        case .applyConfig: "NCMD config apply"
        case .setMode(let device, _, _, _): "DCMD \(device) mode"
        }
    }

    public var summary: String {
        switch self {
        case let .createEvent(id, cap, start, end, duration, reason):
            "DR event \(id) cap \(cap) kW" + (start.map { " from \(Int($0))" } ?? " from now")
                + (end.map { " until \(Int($0))" } ?? "") + (duration.map { " for \($0) s" } ?? "") + " — \(reason)"
        case .cancelEvent(let id): "cancel DR event \(id)"
        case let .applyConfig(sha, comment, yaml): "apply config sha256 \(sha)" + (yaml.map { " (sent, \($0.utf8.count) bytes)" } ?? "")
            + (comment.map { " — \($0)" } ?? "")
        case let .setMode(device, mode, kw, duration):
            "\(device) \(mode)" + (kw.map { " \($0) kW" } ?? "") + (duration.map { " for \($0) s" } ?? "")
        }
    }
}

/// The envelope every command carries.
public struct FleetCommandEnvelope: Sendable, Equatable {
    public var id: String?
    public var timestampMS: UInt64?
    public var clientID: String?

    public init(id: String? = nil, timestampMS: UInt64? = nil, clientID: String? = nil) {
        self.id = id
        self.timestampMS = timestampMS
        self.clientID = clientID
    }

    init(_ metrics: [String: MetricValue]) {
        if case .string(let s)? = metrics[FleetCommandName.id] { id = s }
        if case .dateTime(let ms)? = metrics[FleetCommandName.timestamp] { timestampMS = ms }
        if case .string(let s)? = metrics[FleetCommandName.clientID] { clientID = s }
    }
}

/// Why a command changed nothing. `code` is the first word of the answer; `status` the audit row's (HTTP-like).
public struct FleetRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unknownMetric = "unknown-metric"
        case wrongDataType = "wrong-datatype"
        case malformed
        case unknownDevice = "unknown-device"
        case missing
        case outOfRange = "out-of-range"
        case unknownClient = "unknown-client"
        case wrongRole = "wrong-role"
        case stale
        case replayed
        case notFound = "not-found"
        case conflict
        case failed
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var status: Int {
        switch code {
        case .unknownMetric, .wrongDataType, .malformed: 400
        case .unknownClient, .wrongRole: 403
        case .unknownDevice, .notFound: 404
        case .replayed, .conflict: 409
        case .missing, .outOfRange, .stale: 422
        case .failed: 500
        }
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The session's own refusals (unknown metric, wrong datatype, …), in these words.
    public init(_ r: CommandRejection) {
        switch r {
        case .unknownMetric: self.init(.unknownMetric, "\(r)")
        case .wrongDataType, .nullValue: self.init(.wrongDataType, "\(r)")
        case .unknownDevice: self.init(.unknownDevice, "\(r)")
        case .undecodable, .empty, .unnamedMetric: self.init(.malformed, "\(r)")
        }
    }
}

/// Pure parsing of a valid (schema-checked) NCMD/DCMD into an envelope and one command.
public enum FleetCommandParser {
    public static func parse(device: String?, _ commands: [SparkplugCommand]) -> (FleetCommandEnvelope, Result<FleetCommand, FleetRejection>) {
        var m: [String: MetricValue] = [:]
        var duplicate: String?
        for c in commands {
            if m[c.name] != nil { duplicate = c.name }
            m[c.name] = c.value
        }
        let envelope = FleetCommandEnvelope(m)
        if let duplicate { return (envelope, .failure(FleetRejection(.malformed, "metric '\(duplicate)' appears twice"))) }
        return (envelope, command(device: device, m))
    }

    static func command(device: String?, _ m: [String: MetricValue]) -> Result<FleetCommand, FleetRejection> {
        func string(_ n: String) -> String? { if case .string(let s)? = m[n] { return s }; return nil }
        func double(_ n: String) -> Double? { if case .double(let d)? = m[n] { return d }; return nil }
        func int64(_ n: String) -> Int64? { if case .int64(let i)? = m[n] { return i }; return nil }
        func time(_ n: String) -> Double? { if case .dateTime(let ms)? = m[n] { return Double(ms) / 1000 }; return nil }
        if let device {
            guard let mode = string(FleetCommandName.mode) else {
                return .failure(FleetRejection(.missing, "a DCMD needs '\(FleetCommandName.mode)'"))
            }
            return .success(.setMode(device: device, mode: mode, setpointKW: double(FleetCommandName.setpointKW),
                                     durationS: int64(FleetCommandName.durationS)))
        }
        let create = [FleetCommandName.eventID, FleetCommandName.eventCapKW, FleetCommandName.eventStart, FleetCommandName.eventEnd,
                      FleetCommandName.eventDurationS, FleetCommandName.eventReason].filter { m[$0] != nil }
        let cancel = m[FleetCommandName.cancelEventID] != nil
        let config = [FleetCommandName.configSHA256, FleetCommandName.configComment, FleetCommandName.configYAML].filter { m[$0] != nil }
        let kinds = [!create.isEmpty, cancel, !config.isEmpty].filter { $0 }.count
        guard kinds == 1 else {
            return .failure(FleetRejection(kinds == 0 ? .missing : .malformed,
                                           kinds == 0 ? "no command in the payload (DR Event/…, DR Event/Cancel ID or Config/Apply SHA256)"
                                                      : "one command per payload: DR event create, DR event cancel or config apply"))
        }
        if cancel { return .success(.cancelEvent(id: string(FleetCommandName.cancelEventID)!)) }
        if !config.isEmpty {
            guard let sha = string(FleetCommandName.configSHA256) else {
                return .failure(FleetRejection(.missing, "config apply needs '\(FleetCommandName.configSHA256)'"))
            }
            var yaml: String?
            if case .text(let t)? = m[FleetCommandName.configYAML] { yaml = t }
            return .success(.applyConfig(sha256: sha, comment: string(FleetCommandName.configComment), yaml: yaml))
        }
        for required in [FleetCommandName.eventID, FleetCommandName.eventCapKW, FleetCommandName.eventReason] where m[required] == nil {
            return .failure(FleetRejection(.missing, "a DR event needs '\(required)'"))
        }
        let end = time(FleetCommandName.eventEnd), duration = int64(FleetCommandName.eventDurationS)
        guard (end == nil) != (duration == nil) else {
            return .failure(FleetRejection(end == nil ? .missing : .malformed,
                                           "a DR event needs exactly one of '\(FleetCommandName.eventEnd)' and '\(FleetCommandName.eventDurationS)'"))
        }
        return .success(.createEvent(id: string(FleetCommandName.eventID)!, capKW: double(FleetCommandName.eventCapKW)!,
                                     start: time(FleetCommandName.eventStart), end: end, durationS: duration,
                                     reason: string(FleetCommandName.eventReason)!))
    }
}

/// What a command was answered with (the answer metrics' values).
public struct FleetCommandAnswer: Sendable, Equatable {
    public var id: String
    public var accepted: Bool
    /// `accepted: …` or `rejected: <code>: <why>`.
    public var result: String

    public static let empty = FleetCommandAnswer(id: "", accepted: false, result: "")

    public func metrics(at ms: UInt64) -> [SparkplugMetric] {
        [SparkplugMetric(name: FleetCommandName.lastID, timestamp: ms, value: .string(id)),
         SparkplugMetric(name: FleetCommandName.lastAccepted, timestamp: ms, value: .boolean(accepted)),
         SparkplugMetric(name: FleetCommandName.lastResult, timestamp: ms, value: .string(result))]
    }
}

/// What the processor needs from the running site: the API's own protocols (the same loop, store and calls).
public struct FleetCommandDependencies: Sendable {
    public var runtime: any SiteRuntime
    public var configs: any ConfigRepository
    public var audit: any AuditRepository
    public var eventLog: any EventLogRepository
    /// Wall time for audit rows (the API's `clock`).
    public var wallClock: @Sendable () -> Double

    public init(runtime: any SiteRuntime, store: Store, wallClock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.runtime = runtime
        configs = store
        audit = store
        eventLog = store
        self.wallClock = wallClock
    }
}

/// What the edge node service lets commands do to the loop (its command budget, TickInbox.swift): `admit` returns
/// once the tick has budget for one more command that changes the loop (waiting for the next tick if not), with the
/// tick count; `fastPath` is true for the first fast path of a tick only. Nil (unit tests, tools): no budget.
public struct LoopActionGate: Sendable {
    public var admit: @Sendable () async -> Int
    public var fastPath: @Sendable () -> Bool

    public init(admit: @escaping @Sendable () async -> Int, fastPath: @escaping @Sendable () -> Bool) {
        self.admit = admit
        self.fastPath = fastPath
    }
}

/// Applies fleet commands, one at a time, on the edge node service's task. Every command, accepted or not, gets one
/// audit row, a log line and an answer.
public final class FleetCommandProcessor: Sendable {
    public let deps: FleetCommandDependencies
    /// Claimed client id → role (the site file's `fleet.roles`).
    public let roles: [String: Role]
    public let windowS: Double
    public let replay: CommandReplayStore
    let logger: Logger
    let last = Mutex(FleetCommandAnswer.empty)

    public init(deps: FleetCommandDependencies, fleet: FleetConfig, replay: CommandReplayStore, logger: Logger) {
        self.deps = deps
        roles = fleet.roles.compactMapValues { Role(rawValue: $0) }
        windowS = fleet.commandWindowS
        self.replay = replay
        self.logger = logger
    }

    /// The answer to the last command (what births carry).
    public var lastAnswer: FleetCommandAnswer { last.withLock { $0 } }

    /// Handles a runner event; nil for events that are not commands.
    public func handle(_ event: EdgeNodeEvent, gate: LoopActionGate? = nil) async -> FleetCommandAnswer? {
        switch event {
        case let .command(device, commands):
            let (envelope, parsed) = FleetCommandParser.parse(device: device, commands)
            return await handle(envelope: envelope, parsed, device: device, gate: gate)
        case let .rejected(device, why, echo):
            let envelope = FleetCommandEnvelope(echo)
            return await finish(envelope: envelope, role: envelope.clientID.flatMap { roles[$0] },
                                action: device.map { "DCMD \($0)" } ?? "NCMD", summary: "refused payload",
                                outcome: .failure(FleetRejection(why)))
        default:
            return nil
        }
    }

    public func handle(envelope: FleetCommandEnvelope, _ parsed: Result<FleetCommand, FleetRejection>, device: String?,
                       gate: LoopActionGate? = nil) async -> FleetCommandAnswer {
        let action = (try? parsed.get())?.action ?? (device.map { "DCMD \($0)" } ?? "NCMD")
        let summary = (try? parsed.get())?.summary ?? "malformed command"
        let role = envelope.clientID.flatMap { roles[$0] }
        func refuse(_ r: FleetRejection) async -> FleetCommandAnswer {
            await finish(envelope: envelope, role: role, action: action, summary: summary, outcome: .failure(r))
        }
        // The envelope: an id, a timestamp within the window, a known client.
        guard let id = envelope.id else { return await refuse(FleetRejection(.missing, "every command needs '\(FleetCommandName.id)'")) }
        guard OperatorRules.isValidID(id) else { return await refuse(FleetRejection(.outOfRange, "'\(FleetCommandName.id)': \(OperatorRules.idProblem)")) }
        guard let ts = envelope.timestampMS else {
            return await refuse(FleetRejection(.missing, "every command needs '\(FleetCommandName.timestamp)'"))
        }
        guard let client = envelope.clientID else {
            return await refuse(FleetRejection(.missing, "every command needs '\(FleetCommandName.clientID)'"))
        }
        // A client the site file does not map is refused before its id is recorded (it cannot fill the record).
        guard let role else {
            return await refuse(FleetRejection(.unknownClient, "client '\(client)' is not in the site file's fleet roles"))
        }
        let now = deps.runtime.now()
        // Replay: a stale timestamp, or an id seen within the window (recorded before anything is applied).
        let (replay, windowS) = (self.replay, self.windowS)
        // The record is fsync'd: off the cooperative pool.
        let admission = await withCheckedContinuation { (c: CheckedContinuation<CommandReplayStore.Admission, Never>) in
            DispatchQueue.global().async { c.resume(returning: replay.admit(id: id, timestampMS: ts, nowS: now, windowS: windowS)) }
        }
        switch admission {
        case .admitted: break
        case .rejected(let r): return await refuse(r)
        }
        let command: FleetCommand
        switch parsed {
        case .failure(let r): return await refuse(r)
        case .success(let c): command = c
        }
        guard role >= command.role else {
            return await refuse(FleetRejection(.wrongRole, "\(command.action) needs role \(command.role.rawValue); '\(client)' has \(role.rawValue)"))
        }
        // The budget: at most so many commands change the loop per tick (the rest wait for the next tick), so a flood
        // of valid commands cannot keep pre-empting the ticks' writes or queue passes ahead of them.
        if let gate { _ = await gate.admit() }
        let outcome = await apply(command, client: client, now: gate == nil ? now : deps.runtime.now(), gate: gate)
        return await finish(envelope: envelope, role: role, action: action, summary: summary, outcome: outcome)
    }

    /// Applies a command as the API does; the message on success.
    func apply(_ command: FleetCommand, client: String, now: Double, gate: LoopActionGate? = nil) async -> Result<String, FleetRejection> {
        let actor = "fleet:\(client)"
        let loop = deps.runtime.loop
        switch command {
        case let .createEvent(id, cap, start, end, duration, rawReason):
            let from = start ?? now
            let until = end ?? (from + Double(duration ?? 0))
            let reason = rawReason.trimmingCharacters(in: .whitespacesAndNewlines)
            if let problem = OperatorRules.eventProblem(capKW: cap, from: from, until: until, reason: reason, now: now) {
                return .failure(FleetRejection(.outOfRange, problem))
            }
            guard OperatorRules.isValidID(id) else { return .failure(FleetRejection(.outOfRange, "DR event \(OperatorRules.idProblem)")) }
            if let existing = loop.persistentState.events.first(where: { $0.id == id && $0.endS > now }) {
                // The API replaces an event only with If-Match; a fleet command cannot: cancel it first.
                return .failure(FleetRejection(.conflict, "event '\(id)' exists (cap \(existing.capKW ?? 0) kW until \(Int(existing.endS))); cancel it first"))
            }
            let event = DREvent.operatorCap(id: id, capKW: cap, from: from, until: until, reason: "\(reason) [\(actor)]")
            var next = ""
            if from <= now, gate?.fastPath() ?? true {
                // In force now: the fast path applies the cap at once, as for the API.
                await loop.fastPath(now: now, reason: "DR event \(id)", event: event)
            } else {
                // Later, or a fleet command already ran a fast path this tick: the next tick applies it.
                if from <= now { next = " (from the next tick: one fast path per tick for fleet commands)" }
                loop.addEvent(event)
            }
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .dr, subject: id, message: "created by \(actor): cap \(cap) kW — \(reason)")])
            return .success("DR event \(id) cap \(cap) kW from \(Int(from)) until \(Int(until))\(next)")
        case .cancelEvent(let id):
            guard loop.cancelEvent(id) else { return .failure(FleetRejection(.notFound, "no event '\(id)'")) }
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .dr, subject: id, message: "cancelled by \(actor)")])
            return .success("DR event \(id) cancelled")
        case let .setMode(id, mode, kw, duration):
            guard let device = loop.plant.devices.first(where: { $0.id == id }) else {
                return .failure(FleetRejection(.notFound, "no controllable device '\(id)'"))
            }
            switch mode {
            case "auto":
                loop.setOverride(nil, device: id)
                try? deps.eventLog.logEvents([EventEntry(at: now, kind: .override, subject: id, message: "auto by \(actor)")])
                return .success("\(id) auto")
            case "manual":
                guard let kw else { return .failure(FleetRejection(.missing, "manual mode needs '\(FleetCommandName.setpointKW)'")) }
                guard let duration else {
                    return .failure(FleetRejection(.missing, "manual mode needs '\(FleetCommandName.durationS)': an override always expires"))
                }
                let forS = Double(duration)
                if let problem = OperatorRules.overrideProblem(kw: kw, forS: forS, maxKW: device.maxKw, device: id) {
                    return .failure(FleetRejection(.outOfRange, problem))
                }
                loop.setOverride(.make(device: id, kw: kw, until: now + forS), device: id)
                try? deps.eventLog.logEvents([EventEntry(at: now, kind: .override, subject: id, message: "manual \(kw) kW for \(duration) s by \(actor)")])
                return .success("\(id) manual \(kw) kW for \(duration) s")
            default:
                return .failure(FleetRejection(.outOfRange, "mode must be 'manual' or 'auto', not '\(mode)'"))
            }
        case let .applyConfig(sha, rawComment, yaml):
            return await applyConfig(sha: sha.lowercased(), comment: rawComment, yaml: yaml, actor: actor)
        }
    }

    /// The API's rollback path for a stored version named by its content hash: validate, store as the newest
    /// version (rollback of the old one), apply at the next tick boundary. With `yaml` (a rollout sends the file):
    /// it must hash to `sha`; when no stored version has that hash it is validated, stored as a new version and
    /// applied, as `config apply` does through the API.
    func applyConfig(sha: String, comment rawComment: String?, yaml: String?, actor: String) async -> Result<String, FleetRejection> {
        guard sha.count == 64, sha.allSatisfy({ $0.isHexDigit }) else {
            return .failure(FleetRejection(.outOfRange, "'\(FleetCommandName.configSHA256)' must be 64 hex digits"))
        }
        if let yaml {
            guard yaml.utf8.count <= FleetCommandName.maxConfigYAMLBytes else {
                return .failure(FleetRejection(.outOfRange, "'\(FleetCommandName.configYAML)' is \(yaml.utf8.count) bytes; at most \(FleetCommandName.maxConfigYAMLBytes)"))
            }
            let actual = SHA256.hex(yaml)
            guard actual == sha else {
                return .failure(FleetRejection(.malformed, "'\(FleetCommandName.configYAML)' hashes to \(actual.prefix(12))…, not the \(sha.prefix(12))… of '\(FleetCommandName.configSHA256)'"))
            }
        }
        let comment = rawComment?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard comment.count <= 500 else { return .failure(FleetRejection(.outOfRange, "comment must be 1…500 characters")) }
        let current: ConfigVersion?
        let stored: ConfigVersion
        do {
            current = try deps.configs.latestConfig()
            guard let v = try deps.configs.configHistory(limit: Int.max).first(where: { $0.sha256 == sha }) else {
                guard let yaml else { return .failure(FleetRejection(.notFound, "no stored config version with sha256 \(sha)")) }
                return await applyNewConfig(yaml: yaml, sha: sha, comment: rawComment, current: try deps.configs.latestConfig(), actor: actor)
            }
            stored = v
        } catch {
            return .failure(FleetRejection(.failed, "cannot read the config store: \(error)"))
        }
        if let current, current.sha256 == sha {
            return .success("config v\(current.version) (sha256 \(sha.prefix(12))…) is already in force")
        }
        return await storeAndApply(yaml: stored.yaml, sha: sha, file: "v\(stored.version)",
                                   text: comment.isEmpty ? "fleet: apply v\(stored.version)" : comment,
                                   current: current, rollbackOf: stored.version, source: "content of v\(stored.version)", actor: actor)
    }

    /// A site file no stored version has (sent with the command): validate, store as the newest version, apply.
    func applyNewConfig(yaml: String, sha: String, comment rawComment: String?, current: ConfigVersion?, actor: String) async -> Result<String, FleetRejection> {
        let comment = rawComment?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return await storeAndApply(yaml: yaml, sha: sha, file: "config sha256 \(sha.prefix(12))",
                                   text: comment.isEmpty ? "fleet: apply sha256 \(sha.prefix(12))" : comment,
                                   current: current, rollbackOf: nil, source: "sent with the command", actor: actor)
    }

    /// Validates `yaml` (errors name `file`), stores it as the version after `current` (`rollbackOf` a stored one,
    /// or new) and applies it at the next tick boundary; a config event either way.
    func storeAndApply(yaml: String, sha: String, file: String, text: String, current: ConfigVersion?, rollbackOf: Int?,
                       source: String, actor: String) async -> Result<String, FleetRejection> {
        let site: Site
        do { site = try deps.runtime.validate(yaml: yaml, file: file) } catch {
            return .failure(FleetRejection(.outOfRange, SiteValidator.oneLine(error, file: file)))
        }
        let now = deps.wallClock()
        let v: ConfigVersion
        do {
            v = try deps.configs.appendConfig(yaml: yaml, author: actor, comment: text, at: now, expected: current?.version ?? 0,
                                              rollbackOf: rollbackOf, audit: nil)
        } catch {
            return .failure(FleetRejection(.conflict, "config changed meanwhile: \(error)"))
        }
        do { try await deps.runtime.apply(site, version: v.version) } catch {
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .config, subject: "v\(v.version)", message: "stored but not applied: \(error)")])
            return .failure(FleetRejection(.failed, "config v\(v.version) stored but not applied: \(error)"))
        }
        try? deps.eventLog.logEvents([EventEntry(at: deps.wallClock(), kind: .config, subject: "v\(v.version)", message: "applied by \(actor): \(text)")])
        return .success("config v\(v.version) applied (\(source), sha256 \(sha.prefix(12))…)")
    }

    /// One audit row, one log line, the answer.
    func finish(envelope: FleetCommandEnvelope, role: Role?, action: String, summary: String,
                outcome: Result<String, FleetRejection>) async -> FleetCommandAnswer {
        let id = envelope.id ?? ""
        let claimed = envelope.clientID ?? "?"
        let answer: FleetCommandAnswer
        let status: Int
        switch outcome {
        case .success(let message):
            answer = FleetCommandAnswer(id: id, accepted: true, result: "accepted: \(message)")
            status = 200
        case .failure(let r):
            answer = FleetCommandAnswer(id: id, accepted: false, result: "rejected: \(r)")
            status = r.status
        }
        last.withLock { $0 = answer }
        let entry = AuditEntry(at: deps.wallClock(), actor: "fleet:\(claimed)", role: role?.rawValue ?? "", action: action, target: id,
                               status: status, detail: "\(summary) — \(answer.result)")
        do { try await deps.audit.auditAsync(entry) } catch {
            logger.error("fleet: command not audited", metadata: ["error": "\(error)", "fleet.command": "\(id)"])
        }
        let metadata: Logger.Metadata = ["fleet.command": "\(id)", "fleet.client": "\(claimed)", "fleet.action": "\(action)",
                                         "fleet.result": "\(answer.result)"]
        if answer.accepted { logger.notice("fleet: command accepted", metadata: metadata) } else { logger.warning("fleet: command rejected", metadata: metadata) }
        return answer
    }
}

extension EdgeNodeService {
    /// The births with the answer metrics appended, when commands are on.
    func withCommandAnswers(_ birth: BirthCertificate, at ms: UInt64) -> BirthCertificate {
        guard let commands else { return birth }
        var b = birth
        b.node += commands.lastAnswer.metrics(at: ms)
        return b
    }

    /// What the runner accepts: the fleet commands on the node and on every device of the births (only
    /// `Node Control/Rebirth` when commands are off).
    func commandSchemas(_ birth: BirthCertificate) -> (node: CommandSchema, devices: [String: CommandSchema]) {
        guard commands != nil else { return (.node(), [:]) }
        return (FleetCommandName.nodeSchema, Dictionary(birth.devices.map { ($0.id, FleetCommandName.deviceSchema) }) { a, _ in a })
    }

    /// Applies a command event (or answers its refusal) and publishes the answer; false when commands are off.
    func handleCommand(_ event: EdgeNodeEvent, runner: EdgeNodeRunner, gate: LoopActionGate? = nil) async -> FleetCommandAnswer? {
        guard let commands, let answer = await commands.handle(event, gate: gate) else { return nil }
        // Offline: not sent now; the next births carry it.
        await runner.publishData(node: answer.metrics(at: wallClockMS()))
        return answer
    }
}

extension FleetCommandProcessor {
    /// The daemon's processor: the API's runtime and store, the seen command ids in `<state dir>/fleet-command-ids`.
    /// Nil when the site file maps no client to a role: fleet commands are off (only `Node Control/Rebirth`).
    public static func forDaemon(fleet: FleetConfig, stateDir: String, store: Store, runtime: any SiteRuntime,
                                 logger: Logger) -> FleetCommandProcessor? {
        guard !fleet.roles.isEmpty else { return nil }
        let path = URL(fileURLWithPath: stateDir).appendingPathComponent("fleet-command-ids").path
        let replay = CommandReplayStore(path: path, loadedAtS: runtime.now()) { problem in
            logger.error("fleet: the replay record is unreadable", metadata: ["error": "\(problem)"])
        }
        return FleetCommandProcessor(deps: FleetCommandDependencies(runtime: runtime, store: store), fleet: fleet, replay: replay, logger: logger)
    }
}
