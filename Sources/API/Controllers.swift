// One controller per resource. Each exposes its routes as a Hummingbird `RouteCollection`, every route
// behind its least role; `buildRouter` adds the collections.

import Basics
import Control
import Foundation
import HTTPTypes
import Hummingbird
import Signals
import Site
import Store
import Synchronization

/// One resource's routes: `addRoutes` declares each with its least role; `routes` is them as a RouteCollection.
protocol APIController {
    var deps: APIDependencies { get }
    func addRoutes(to t: RouteTable)
}

extension APIController {
    /// This controller's routes as a Hummingbird RouteCollection (roles enforced inside it), and what each serves to whom.
    var routes: (collection: RouteCollection<APIRequestContext>, specs: [RouteSpec]) {
        let table = RouteTable(deps: deps)
        addRoutes(to: table)
        return (table.collection, table.specs)
    }
}

struct HealthController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/healthz", nil) { _, _ in try health() }
    }

    /// Healthy while at least one device has answered within the site's stale limit; 503 with the reason otherwise
    /// (a daemon that reaches nothing — stale addresses, a dead network — must not look well).
    func health() throws -> JSONResponse<OKDTO> {
        let loop = deps.runtime.loop
        let now = deps.runtime.now()
        let limit = loop.site.staleAfterS
        let targets = loop.poller.targets
        guard !targets.isEmpty else { return JSONResponse(body: OKDTO(ok: true, message: "switchyard up (no devices to poll)")) }
        let answered = targets.compactMap { loop.poller.telemetry($0.id)?.lastSuccess }
        let fresh = answered.filter { now - $0 <= limit }.count
        let limitText = limit == limit.rounded() ? "\(Int(limit)) s" : "\(limit) s"
        guard fresh > 0 else {
            let last = answered.max().map { "; the last answer was \(Int((now - $0).rounded())) s ago" } ?? "; none has answered since start"
            throw APIError(.serviceUnavailable, "unhealthy: no device has answered within the stale limit (\(limitText))\(last)")
        }
        return JSONResponse(body: OKDTO(ok: true, message: "switchyard up: \(fresh) of \(targets.count) devices answered within \(limitText)"))
    }
}

struct StatusController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/v1/status", .viewer) { _, _ in JSONResponse(body: try status()) }
        t.add(.get, "/v1/devices", .viewer) { _, _ in JSONResponse(body: devices()) }
        t.add(.get, "/v1/explain", .viewer) { req, _ in JSONResponse(body: try explain(req.uri.queryParameters.get("device"))) }
    }

    func status() throws -> StatusDTO {
        let loop = deps.runtime.loop
        let r = loop.lastReport
        let up = loop.poller.targets.filter { t in loop.poller.telemetry(t.id)?.isReachable ?? false }
        return StatusDTO(site: loop.site.id, at: r?.at, fastPath: r?.fastPath, siteKw: r?.siteKW, limitKw: r?.limitKW,
                         miningKw: r?.miningKW, inferenceKw: r?.inferenceKW, priceUsdPerMwh: r?.priceUsdPerMWh,
                         mode: r?.mode.rawValue, brokerFeasible: r?.brokerFeasible, objectiveUsdPerH: r?.objective.total,
                         events: r?.events ?? [], interventions: r?.interventions ?? [],
                         configVersion: try deps.configs.latestConfig()?.version,
                         devicesUp: up.count, devicesTotal: loop.poller.targets.count,
                         notFollowing: loop.actuator.notFollowing,
                         suspectMeters: Dictionary(uniqueKeysWithValues: loop.meterWatch.suspect.map { ($0, loop.meterWatch.status($0).rawValue) }))
    }

    func devices() -> [DeviceDTO] {
        let loop = deps.runtime.loop
        let r = loop.lastReport
        let st = loop.persistentState
        return loop.site.devices.map { d in
            let tel = loop.poller.telemetry(d.id)
            let o = st.overrides.first { $0.device == d.id }
            return DeviceDTO(id: d.id, deviceClass: d.deviceClass.rawValue, node: d.nodeID,
                             up: tel?.isReachable ?? false,
                             powerKw: tel?.values["active_power_w"].map { $0 / 1000 }, setpointKw: r?.setpointsKW[d.id],
                             commandedKw: st.commandedKW[d.id], override: o.map { OverrideDTO(kw: $0.kw, until: $0.until) },
                             lastSuccess: tel?.lastSuccess, lastError: tel?.lastError?.description, consecutiveFailures: tel?.consecutiveFailures ?? 0,
                             latencyMs: tel.map { $0.lastLatencyS * 1000 }, reason: r?.reasons[d.id],
                             actuation: loop.actuator.targets.contains { $0.id == d.id } ? loop.actuator.followState(d.id).rawValue : nil,
                             meter: loop.site.nodes.contains { $0.meter == d.id } ? loop.meterWatch.status(d.id).rawValue : nil)
        }
    }

    func explain(_ device: String?) throws -> ExplainDTO {
        let loop = deps.runtime.loop
        let r = loop.lastReport
        let ids = loop.plant.devices.map(\.id)
        if let device, !ids.contains(device) {
            throw APIError(.notFound, "no controllable device '\(device)' (devices: \(ids.joined(separator: ", ")))")
        }
        let rows = ids.filter { device == nil || $0 == device }.map {
            ExplainDTO.Row(id: $0, setpointKw: r?.setpointsKW[$0], reason: r?.reasons[$0] ?? "no tick yet")
        }
        return ExplainDTO(at: r?.at, limitKw: r?.limitKW, priceUsdPerMwh: r?.priceUsdPerMWh, interventions: r?.interventions ?? [], devices: rows)
    }
}

/// Event ids being created or replaced right now: the check for an id in use and the insert are not one
/// step in the loop, so two requests for one id must not run them interleaved.
final class EventIDClaims: Sendable {
    let ids = Mutex<Set<String>>([])
    func claim(_ id: String) -> Bool { ids.withLock { $0.insert(id).inserted } }
    func release(_ id: String) { _ = ids.withLock { $0.remove(id) } }
}

struct EventsController: APIController {
    let deps: APIDependencies
    let claims = EventIDClaims()

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/v1/events", .viewer) { _, _ in JSONResponse(body: list()) }
        t.add(.post, "/v1/events", .operator) { req, ctx in try await create(req, ctx) }
        t.add(.delete, "/v1/events/{id}", .operator) { _, ctx in try cancel(ctx) }
    }

    func list() -> [EventDTO] {
        let now = deps.runtime.now()
        return deps.runtime.loop.persistentState.events.filter { $0.endS > now }.sorted { $0.startS < $1.startS }.map {
            EventDTO(id: $0.id, capKw: $0.capKW ?? 0, from: $0.startS, until: $0.endS, reason: $0.reason, active: $0.isActive(atS: now),
                     etag: Self.etag($0))
        }
    }

    /// An event's ETag: a strong validator of its content (id, cap, window, reason), quoted.
    /// Any change to the event changes it; `POST /v1/events` with `If-Match: <etag>` replaces exactly that version.
    static func etag(_ e: DREvent) -> String {
        "\"" + SHA256.hex("\(e.id)\n\(e.capKW ?? 0)\n\(e.startS)\n\(e.endS)\n\(e.reason)").prefix(20) + "\""
    }

    /// True when an If-Match header value ("*", one ETag or a comma-separated list; W/ ignored) names `etag`.
    static func ifMatch(_ header: String, matches etag: String) -> Bool {
        header.split(separator: ",").contains { part in
            var p = part.trimmingCharacters(in: .whitespaces)
            if p.hasPrefix("W/") { p.removeFirst(2) }
            return p == "*" || p == etag
        }
    }

    func create(_ req: Request, _ ctx: APIRequestContext) async throws -> JSONResponse<EventDTO> {
        let body = try await Body.decode(CreateEventRequest.self, from: req)
        let now = deps.runtime.now()
        // Relative times ("now", "+2h") are resolved here, on the daemon's clock.
        let from = body.from?.resolve(now: now) ?? now
        let until = body.until.resolve(now: now)
        let reason = body.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        // The same caps and checks as a fleet command's (OperatorRules).
        if let problem = OperatorRules.eventProblem(capKW: body.capKw, from: from, until: until, reason: reason, now: now) {
            throw APIError(.unprocessableContent, problem)
        }
        let id = body.id ?? "ev-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        guard validID(id) else { throw APIError(.unprocessableContent, "id must be 1…64 of A-Z a-z 0-9 . _ -") }
        guard claims.claim(id) else {
            throw APIError(.conflict, "event '\(id)' is being created or replaced by another request; re-read it and retry")
        }
        defer { claims.release(id) }
        let loop = deps.runtime.loop
        // An id in use is a conflict: replacing an event needs If-Match with its ETag (a 0 kW cap must not become 39 MW by accident).
        let existing = loop.persistentState.events.first { $0.id == id && $0.endS > now }
        let condition = req.headers[.ifMatch]
        if let existing {
            let tag = Self.etag(existing)
            guard let condition else {
                throw APIError(.conflict, "event '\(id)' exists (cap \(existing.capKW ?? 0) kW until \(Int(existing.endS))); to replace it, send If-Match: \(tag)",
                               headers: [.eTag: tag])
            }
            guard Self.ifMatch(condition, matches: tag) else {
                throw APIError(.preconditionFailed, "event '\(id)' has ETag \(tag), not \(condition): it changed; re-read it and retry",
                               headers: [.eTag: tag])
            }
        } else if let condition {
            throw APIError(.preconditionFailed, "If-Match \(condition) given, but there is no event '\(id)' to replace")
        }
        let event = DREvent.operatorCap(id: id, capKW: body.capKw, from: from, until: until, reason: "\(reason) [\(ctx.identity?.name ?? "?")]")
        if from <= now {
            // In force now: the fast path applies the cap at once, without waiting for the next tick.
            await loop.fastPath(now: now, reason: "DR event \(id)", event: event)
        } else {
            loop.addEvent(event)
        }
        let verb = existing == nil ? "created" : "replaced (was cap \(existing!.capKW ?? 0) kW)"
        try? deps.eventLog.logEvents([EventEntry(at: now, kind: .dr, subject: id,
                                                 message: "\(verb) by \(ctx.identity?.actor ?? "?"): cap \(body.capKw) kW — \(reason)")])
        let tag = Self.etag(event)
        return JSONResponse(status: existing == nil ? .created : .ok, headers: [.eTag: tag],
                            body: EventDTO(id: id, capKw: body.capKw, from: from, until: until, reason: event.reason, active: from <= now,
                                           etag: tag))
    }

    func cancel(_ ctx: APIRequestContext) throws -> JSONResponse<OKDTO> {
        let id = try ctx.parameters.require("id")
        guard deps.runtime.loop.cancelEvent(id) else { throw APIError(.notFound, "no event '\(id)'") }
        try? deps.eventLog.logEvents([EventEntry(at: deps.runtime.now(), kind: .dr, subject: id,
                                                 message: "cancelled by \(ctx.identity?.actor ?? "?")")])
        return JSONResponse(body: OKDTO(ok: true, message: "event \(id) cancelled"))
    }
}

func validID(_ s: String) -> Bool { OperatorRules.isValidID(s) }

struct ModesController: APIController {
    let deps: APIDependencies
    static let maxOverrideS = OperatorRules.maxOverrideS

    func addRoutes(to t: RouteTable) {
        t.add(.put, "/v1/devices/{id}/mode", .operator) { req, ctx in try await set(req, ctx) }
    }

    func set(_ req: Request, _ ctx: APIRequestContext) async throws -> JSONResponse<ModeDTO> {
        let id = try ctx.parameters.require("id")
        let body = try await Body.decode(ModeRequest.self, from: req)
        let loop = deps.runtime.loop
        guard let device = loop.plant.devices.first(where: { $0.id == id }) else {
            throw APIError(.notFound, "no controllable device '\(id)'")
        }
        let now = deps.runtime.now()
        switch body.mode {
        case "auto":
            loop.setOverride(nil, device: id)
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .override, subject: id, message: "auto by \(ctx.identity?.actor ?? "?")")])
            return JSONResponse(body: ModeDTO(device: id, mode: "auto", setpointKw: nil, until: nil))
        case "manual":
            guard let kw = body.setpointKw else { throw APIError(.unprocessableContent, "manual mode needs setpoint_kw") }
            guard let forS = body.forS else { throw APIError(.unprocessableContent, "manual mode needs for_s: an override always expires") }
            if let problem = OperatorRules.overrideProblem(kw: kw, forS: forS, maxKW: device.maxKw, device: id) {
                throw APIError(.unprocessableContent, problem)
            }
            let until = now + forS
            loop.setOverride(.make(device: id, kw: kw, until: until), device: id)
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .override, subject: id,
                                                     message: "manual \(kw) kW for \(Int(forS)) s by \(ctx.identity?.actor ?? "?")")])
            return JSONResponse(body: ModeDTO(device: id, mode: "manual", setpointKw: kw, until: until))
        default:
            throw APIError(.unprocessableContent, "mode must be 'manual' or 'auto', not '\(body.mode)'")
        }
    }
}

struct ConfigController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/v1/config", .viewer) { _, _ in try current() }
        t.add(.get, "/v1/config/history", .viewer) { req, _ in
            let limit = req.uri.queryParameters.get("limit").flatMap(Int.init) ?? 50
            return JSONResponse(body: try deps.configs.configHistory(limit: max(1, min(limit, 1000))).map { ConfigDTO($0, yaml: false) })
        }
        t.add(.get, "/v1/config/versions/{version}", .viewer) { _, ctx in
            let v = try ctx.parameters.require("version", as: Int.self)
            guard let c = try deps.configs.config(version: v) else { throw APIError(.notFound, "no config version \(v)") }
            return JSONResponse(headers: [.eTag: "\"\(c.version)\""], body: ConfigDTO(c, yaml: true))
        }
        t.add(.post, "/v1/config/validate", .viewer) { req, _ in
            let body = try await Body.decode(ConfigFileRequest.self, from: req)
            let site = try validate(body.yaml, file: body.file)
            return JSONResponse(body: ValidateResultDTO(valid: true, devices: site.devices.count, site: site.id))
        }
        t.add(.post, "/v1/config/diff", .viewer) { req, _ in
            let body = try await Body.decode(ConfigFileRequest.self, from: req)
            // The same validation (and one-line file:line:column errors) as validate and apply: a diff against a file
            // that cannot run is not shown.
            _ = try validate(body.yaml, file: body.file)
            guard let cur = try deps.configs.latestConfig() else { throw APIError(.notFound, "no stored configuration yet") }
            return JSONResponse(body: DiffResultDTO(runningVersion: cur.version, changes: try diff(cur.yaml, body.yaml)))
        }
        t.add(.put, "/v1/config", .admin) { req, ctx in try await apply(req, ctx) }
        t.add(.post, "/v1/config/rollback", .admin) { req, ctx in try await rollback(req, ctx) }
    }

    func current() throws -> JSONResponse<ConfigDTO> {
        guard let c = try deps.configs.latestConfig() else { throw APIError(.notFound, "no stored configuration yet") }
        return JSONResponse(headers: [.eTag: "\"\(c.version)\""], body: ConfigDTO(c, yaml: true))
    }

    func validate(_ yaml: String, file: String?) throws -> Site {
        let name = (file?.isEmpty == false ? file! : "site.yaml")
        do { return try deps.runtime.validate(yaml: yaml, file: name) } catch {
            throw APIError(.unprocessableContent, SiteValidator.oneLine(error, file: name))
        }
    }

    func diff(_ old: String, _ new: String) throws -> [ConfigChange] {
        do { return try ConfigDiff.diff(old: old, new: new) } catch {
            throw APIError(.unprocessableContent, "cannot diff: \(error)")
        }
    }

    /// The version named by If-Match ("3", "\"3\"" or W/"3"); 428 if absent.
    func ifMatch(_ req: Request) throws -> Int {
        guard let raw = req.headers[.ifMatch] else {
            throw APIError(.preconditionRequired, "If-Match with the current config version is required (GET /v1/config gives it as the ETag)")
        }
        var s = raw.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("W/") { s.removeFirst(2) }
        s = s.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        guard let v = Int(s), v >= 0 else { throw APIError(.badRequest, "If-Match '\(raw)' is not a config version") }
        return v
    }

    func apply(_ req: Request, _ ctx: APIRequestContext) async throws -> Response {
        let expected = try ifMatch(req)
        let body = try await Body.decode(ApplyConfigRequest.self, from: req)
        let comment = body.comment.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !comment.isEmpty, comment.count <= 500 else { throw APIError(.unprocessableContent, "comment must be 1…500 characters") }
        let site = try validate(body.yaml, file: body.file)
        return try await store(yaml: body.yaml, site: site, comment: comment, expected: expected, rollbackOf: nil,
                               dryRun: body.dryRun ?? false, req: req, ctx: ctx)
    }

    func rollback(_ req: Request, _ ctx: APIRequestContext) async throws -> Response {
        let expected = try ifMatch(req)
        let body = try await Body.decode(RollbackRequest.self, from: req)
        guard let old = try deps.configs.config(version: body.version) else { throw APIError(.notFound, "no config version \(body.version)") }
        let site = try validate(old.yaml, file: "v\(old.version)")
        let comment = body.comment?.trimmingCharacters(in: .whitespacesAndNewlines).nilIfEmpty ?? "rollback to v\(old.version)"
        return try await store(yaml: old.yaml, site: site, comment: comment, expected: expected, rollbackOf: old.version,
                               dryRun: false, req: req, ctx: ctx)
    }

    func store(yaml: String, site: Site, comment: String, expected: Int, rollbackOf: Int?, dryRun: Bool,
               req: Request, ctx: APIRequestContext) async throws -> Response {
        let current = try deps.configs.latestConfig()
        let currentVersion = current?.version ?? 0
        guard currentVersion == expected else {
            throw APIError(.preconditionFailed, "config is at version \(currentVersion), not \(expected): someone else changed it; re-read and retry",
                           headers: [.eTag: "\"\(currentVersion)\""])
        }
        let changes = try current.map { try diff($0.yaml, yaml) } ?? []
        if dryRun {
            return try JSONResponse(body: ApplyResultDTO(version: currentVersion, sha256: SHA256.hex(yaml), dryRun: true, applied: false,
                                                         changes: changes)).response(from: req, context: ctx)
        }
        let now = deps.clock()
        let who = ctx.identity
        let audit = AuditEntry(at: now, actor: who?.actor ?? "?", role: who?.role.rawValue ?? "", action: "\(req.method.rawValue) \(req.uri.path)",
                               status: 200, detail: comment + (rollbackOf.map { " (rollback to v\($0))" } ?? "") + " — \(changes.count) change(s)")
        let v: ConfigVersion
        do {
            v = try deps.configs.appendConfig(yaml: yaml, author: who?.actor ?? "?", comment: comment, at: now, expected: expected,
                                              rollbackOf: rollbackOf, audit: audit)
        } catch let e as StoreError {
            if case .conflict(let cur) = e.kind {
                throw APIError(.preconditionFailed, "config is at version \(cur), not \(expected): someone else changed it; re-read and retry",
                               headers: [.eTag: "\"\(cur)\""])
            }
            throw APIError(.internalServerError, e.message)
        }
        do { try await deps.runtime.apply(site, version: v.version) } catch {
            try? deps.eventLog.logEvents([EventEntry(at: now, kind: .config, subject: "v\(v.version)", message: "stored but not applied: \(error)")])
            throw APIError(.internalServerError, "config v\(v.version) stored but not applied: \(error)")
        }
        try? deps.eventLog.logEvents([EventEntry(at: deps.clock(), kind: .config, subject: "v\(v.version)",
                                                 message: "applied by \(who?.actor ?? "?"): \(comment)")])
        var r = try JSONResponse(headers: [.eTag: "\"\(v.version)\""],
                                 body: ApplyResultDTO(version: v.version, sha256: v.sha256, dryRun: false, applied: true, changes: changes))
            .response(from: req, context: ctx)
        r.headers[AuditMiddleware.auditedHeader] = "1"
        return r
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

struct TokensController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/v1/tokens", .admin) { _, _ in JSONResponse(body: try deps.tokens.tokens().map { TokenDTO($0) }) }
        t.add(.post, "/v1/tokens", .admin) { req, ctx in try await create(req, ctx) }
        t.add(.delete, "/v1/tokens/{id}", .admin) { _, ctx in
            let id = try ctx.parameters.require("id")
            guard try deps.tokens.revokeToken(id: id, at: deps.clock(), audit: nil) else {
                throw APIError(.notFound, "no active token '\(id)'")
            }
            return JSONResponse(body: OKDTO(ok: true, message: "token \(id) revoked"))
        }
    }

    func create(_ req: Request, _ ctx: APIRequestContext) async throws -> Response {
        let body = try await Body.decode(CreateTokenRequest.self, from: req)
        guard let role = Role(rawValue: body.role) else { throw APIError(.unprocessableContent, "role must be viewer, operator or admin, not '\(body.role)'") }
        let name = body.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard validID(name) else { throw APIError(.unprocessableContent, "name must be 1…64 of A-Z a-z 0-9 . _ -") }
        if let e = body.expiresInS, !(e.isFinite && e >= 60 && e <= 5 * 365 * 86_400) {
            throw APIError(.unprocessableContent, "expires_in_s must be 60…157680000")
        }
        let who = ctx.identity
        let now = deps.clock()
        let issued = Tokens.issue(name: name, role: role, createdBy: who?.actor ?? "?", at: now, validForS: body.expiresInS)
        try deps.tokens.insertToken(issued.record, audit: AuditEntry(
            at: now, actor: who?.actor ?? "?", role: who?.role.rawValue ?? "", action: "POST /v1/tokens", status: 201,
            detail: "name=\(name) role=\(role.rawValue)" + (body.expiresInS.map { " expires_in_s=\(Int($0))" } ?? "")))
        var r = try JSONResponse(status: .created, body: TokenDTO(issued.record, secret: issued.secret)).response(from: req, context: ctx)
        r.headers[AuditMiddleware.auditedHeader] = "1"
        return r
    }
}

struct LogsController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/v1/log/events", .viewer) { req, _ in
            let limit = max(1, min(req.uri.queryParameters.get("limit").flatMap(Int.init) ?? 100, 10_000))
            return JSONResponse(body: try deps.eventLog.eventLog(limit: limit, kind: nil).map {
                EventLogDTO(at: $0.at, kind: $0.kind.rawValue, subject: $0.subject, message: $0.message)
            })
        }
        t.add(.get, "/v1/audit", .operator) { req, _ in
            let limit = max(1, min(req.uri.queryParameters.get("limit").flatMap(Int.init) ?? 100, 10_000))
            return JSONResponse(body: try deps.audit.auditLog(limit: limit).map {
                AuditDTO(at: $0.at, actor: $0.actor, role: $0.role, action: $0.action, target: $0.target, status: $0.status, detail: $0.detail)
            })
        }
    }
}

struct MetricsController: APIController {
    let deps: APIDependencies

    func addRoutes(to t: RouteTable) {
        t.add(.get, "/metrics", .viewer) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: deps.metrics.render(loop: deps.runtime.loop))))
        }
    }
}
