// The fleet API's command routes (issue 18; docs/fleet.md "Fleet API"): fleet sheds and configuration rollouts,
// through FleetOperations. Same tokens and roles as the rest of the fleet API; JSON with snake_case keys; a request
// body with a key the route does not know is refused naming it (422), and every refusal sends nothing.
//
//   POST /v1/fleet/events          operator  {"region","shed_mw","from","until","reason"}: start a fleet shed
//   GET  /v1/fleet/events          viewer    every shed since the hub started
//   GET  /v1/fleet/events/{id}     viewer    one shed: shares, caps, metered shed per site, shortfall
//   DELETE /v1/fleet/events/{id}   operator  cancel a shed: its caps withdrawn from the sites
//   POST /v1/fleet/rollouts        admin     {"yaml","sites"|"region","batch_size","comment"}: start a rollout
//   GET  /v1/fleet/rollouts        viewer    every rollout since the hub started
//   GET  /v1/fleet/rollouts/{id}   viewer    one rollout: phase, each site's state
//
// Times (`from`, `until`): "now", "+DURATION" from the hub's now (+90s, +30m, +2h, +1d, +1h30m), or ISO 8601 UTC
// (2026-11-27T18:00:00Z). A shed starts now: `from` must be "now" or a time no later than now.

import Basics
import Foundation
import HTTPBasics
import Hummingbird
import NIOCore

extension FleetShedReport: ResponseEncodable {}
extension FleetRolloutReport: ResponseEncodable {}

public struct FleetShedList: Codable, Sendable, ResponseEncodable {
    public var events: [FleetShedReport]
}

public struct FleetRolloutList: Codable, Sendable, ResponseEncodable {
    public var rollouts: [FleetRolloutReport]
}

/// `POST /v1/fleet/events`.
public struct FleetShedRequest: Codable, Sendable {
    public var region: String
    public var shedMw: Double
    public var from: String?
    public var until: String
    public var reason: String

    public init(region: String, shedMw: Double, from: String?, until: String, reason: String) {
        self.region = region
        self.shedMw = shedMw
        self.from = from
        self.until = until
        self.reason = reason
    }

    public static let keys = ["region", "shed_mw", "from", "until", "reason"]
}

/// `POST /v1/fleet/rollouts`.
public struct FleetRolloutRequest: Codable, Sendable {
    public var yaml: String
    /// REGION/SITE or SITE (when unique in the fleet), the canary first.
    public var sites: [String]?
    public var region: String?
    public var batchSize: Int?
    public var comment: String?

    public init(yaml: String, sites: [String]?, region: String?, batchSize: Int?, comment: String?) {
        self.yaml = yaml
        self.sites = sites
        self.region = region
        self.batchSize = batchSize
        self.comment = comment
    }

    public static let keys = ["yaml", "sites", "region", "batch_size", "comment"]
}

/// The fleet API's time words: "now", "+DURATION", or ISO 8601.
public enum FleetTime {
    /// Seconds since 1970, or nil if `text` is none of the three forms.
    public static func resolve(_ text: String, now: Double) -> Double? {
        let s = text.trimmingCharacters(in: .whitespaces)
        if s == "now" { return now }
        if s.hasPrefix("+") { return duration(String(s.dropFirst())).map { now + $0 } }
        return ISO8601.parse(s)
    }

    /// "90s", "30m", "2h", "1d", "1h30m" → seconds (> 0), else nil.
    public static func duration(_ s: String) -> Double? { DurationText.seconds(s) }

    public static let help = "now, +DURATION (+30m, +2h, +1h30m) or ISO 8601 UTC (2026-11-27T18:00:00Z)"
}

public enum FleetCommandAPI {
    static let maxBody = 2 << 20

    /// Adds the command routes to the fleet API's router.
    public static func register(on router: Router<FleetRequestContext>, deps: FleetAPIDependencies, operations: FleetOperations) {
        let authed = router.group("v1/fleet").add(middleware: FleetAuthMiddleware(deps: deps))
        let viewer = authed.group().add(middleware: FleetRequireRole(minimum: .viewer))
        let `operator` = authed.group().add(middleware: FleetRequireRole(minimum: .operator))
        let admin = authed.group().add(middleware: FleetRequireRole(minimum: .admin))

        `operator`.post("events") { request, _ -> EditedResponse<FleetShedReport> in
            let body = try await decode(FleetShedRequest.self, keys: FleetShedRequest.keys, request)
            let now = deps.clock()
            let region = body.region.trimmingCharacters(in: .whitespaces)
            guard !region.isEmpty else { throw APIError(.unprocessableContent, "'region' must not be empty") }
            guard body.shedMw.isFinite, body.shedMw > 0 else {
                throw APIError(.unprocessableContent, "'shed_mw' must be a positive number of MW, not \(body.shedMw)")
            }
            let fromText = body.from ?? "now"
            guard let from = FleetTime.resolve(fromText, now: now) else {
                throw APIError(.unprocessableContent, "'from' should be \(FleetTime.help), found '\(fromText)'")
            }
            guard from >= now - 60 else {
                throw APIError(.unprocessableContent, "'from' is \(ISO8601.format(from)), in the past (now \(ISO8601.format(now))): a shed starts now or later")
            }
            guard let until = FleetTime.resolve(body.until, now: now) else {
                throw APIError(.unprocessableContent, "'until' should be \(FleetTime.help), found '\(body.until)'")
            }
            guard until > max(from, now) else {
                throw APIError(.unprocessableContent, "'until' (\(ISO8601.format(until))) must be after 'from' and now (\(ISO8601.format(max(from, now)))")
            }
            do {
                let report = try await operations.startShed(region: region, targetMW: body.shedMw, from: from, until: until, reason: body.reason)
                return EditedResponse(status: .created, response: report)
            } catch { throw apiError(error) }
        }
        viewer.get("events") { request, _ -> FleetShedList in
            try FleetAPI.onlyQuery(request, allowed: [])
            return FleetShedList(events: await operations.shedReports())
        }
        viewer.get("events/:id") { request, context -> FleetShedReport in
            try FleetAPI.onlyQuery(request, allowed: [])
            let id = try context.parameters.require("id")
            do { return try await operations.shedReport(id: id) } catch { throw apiError(error) }
        }

        `operator`.delete("events/:id") { request, context -> FleetShedReport in
            try FleetAPI.onlyQuery(request, allowed: [])
            let id = try context.parameters.require("id")
            do { return try await operations.cancelShed(id: id) } catch { throw apiError(error) }
        }

        admin.post("rollouts") { request, _ -> EditedResponse<FleetRolloutReport> in
            let body = try await decode(FleetRolloutRequest.self, keys: FleetRolloutRequest.keys, request)
            let rows = await deps.status()
            var sites: [SiteKey] = []
            switch (body.sites, body.region) {
            case (nil, nil), (.some, .some):
                throw APIError(.unprocessableContent, "give exactly one of 'sites' and 'region'")
            case (.some(let names), nil):
                guard !names.isEmpty else { throw APIError(.unprocessableContent, "'sites' must not be empty") }
                for name in names {
                    if let slash = name.firstIndex(of: "/") {
                        let key = SiteKey(group: String(name[..<slash]), edge: String(name[name.index(after: slash)...]))
                        guard rows.contains(where: { $0.site == key }) else { throw APIError(.unprocessableContent, "no site '\(name)' in the fleet") }
                        sites.append(key)
                    } else {
                        let matches = rows.filter { $0.edge == name }
                        guard matches.count == 1 else {
                            throw APIError(.unprocessableContent, matches.isEmpty ? "no site '\(name)' in the fleet" : "'\(name)' is in several regions; give REGION/\(name)")
                        }
                        sites.append(matches[0].site)
                    }
                }
                guard Set(sites).count == sites.count else { throw APIError(.unprocessableContent, "a site appears twice in 'sites'") }
            case (nil, .some(let region)):
                sites = rows.filter { $0.region == region }.map(\.site).sorted { $0.edge < $1.edge }
                guard !sites.isEmpty else { throw APIError(.unprocessableContent, "no site is known in region '\(region)'") }
            }
            do {
                let report = try await operations.startRollout(yaml: body.yaml, sites: sites, batchSize: body.batchSize ?? 5, comment: body.comment)
                return EditedResponse(status: .created, response: report)
            } catch { throw apiError(error) }
        }
        viewer.get("rollouts") { request, _ -> FleetRolloutList in
            try FleetAPI.onlyQuery(request, allowed: [])
            return FleetRolloutList(rollouts: await operations.rolloutReports())
        }
        viewer.get("rollouts/:id") { request, context -> FleetRolloutReport in
            try FleetAPI.onlyQuery(request, allowed: [])
            let id = try context.parameters.require("id")
            do { return try await operations.rolloutReport(id: id) } catch { throw apiError(error) }
        }
    }

    static func apiError(_ e: any Error) -> APIError {
        switch e as? FleetOperationError {
        case .invalid(let m)?: APIError(.unprocessableContent, m)
        case .notFound(let m)?: APIError(.notFound, m)
        case nil: APIError(.internalServerError, "\(e)")
        }
    }

    /// A JSON object with only `keys` (snake_case), decoded; 400/422 with one clear line otherwise.
    static func decode<T: Decodable>(_ type: T.Type, keys: [String], _ request: Request) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: maxBody) } catch {
            throw APIError(.contentTooLarge, "request body larger than \(maxBody >> 20) MiB")
        }
        let data = Data(buffer: buffer)
        if data.isEmpty { throw APIError(.badRequest, "missing JSON body") }
        guard let object = try? JSONSerialization.jsonObject(with: data) else { throw APIError(.badRequest, "invalid JSON body: not valid JSON") }
        guard let fields = object as? [String: Any] else { throw APIError(.badRequest, "invalid JSON body: expected an object") }
        if let unknown = fields.keys.sorted().first(where: { !keys.contains($0) }) {
            throw APIError(.unprocessableContent, "unknown key '\(unknown)' in the request body (allowed: \(keys.joined(separator: ", ")))")
        }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do { return try d.decode(T.self, from: data) } catch let DecodingError.keyNotFound(k, _) {
            throw APIError(.badRequest, "invalid JSON body: missing field '\(snake(k.stringValue))'")
        } catch let DecodingError.typeMismatch(_, c) {
            throw APIError(.badRequest, "invalid JSON body: '\(c.codingPath.map { snake($0.stringValue) }.joined(separator: "."))' has the wrong type")
        } catch let DecodingError.valueNotFound(_, c) {
            throw APIError(.badRequest, "invalid JSON body: '\(c.codingPath.map { snake($0.stringValue) }.joined(separator: "."))' must not be null")
        } catch {
            throw APIError(.badRequest, "invalid JSON body")
        }
    }

    static func snake(_ s: String) -> String {
        var out = ""
        for c in s { if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) } }
        return out
    }
}
