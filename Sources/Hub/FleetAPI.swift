// The fleet API (issue 18): Hummingbird, bearer tokens with the site API's roles (viewer < operator < admin, only
// the SHA-256 of a secret stored, 401 for a missing, unknown or revoked token, 429 after repeated failures), JSON
// with snake_case keys. `switchyard fleet …` is its client.
//
//   GET /v1/fleet/status                                   viewer   one row per site (`fleet status`)
//   GET /v1/fleet/sites/{group}/{edge}/history?metric=M[&device=D][&since=T][&until=T]
//                                                          viewer   a metric's samples, oldest first (`fleet history`)

import Basics
import Foundation
import HTTPBasics
import Hummingbird
import Logging
import NIOCore

/// What the API reads, as closures so that tests can give it a fleet without PostgreSQL or MQTT.
public struct FleetAPIDependencies: Sendable {
    public var status: @Sendable () async -> [SiteStatus]
    public var history: @Sendable (_ site: SiteKey, _ device: String?, _ metric: String, _ since: UInt64, _ until: UInt64) async throws -> [StoredSample]
    public var token: @Sendable (_ hash: String) async throws -> HubTokenRecord?
    public var limiter: FailedAuthLimiter
    /// Seconds since 1970.
    public var clock: @Sendable () -> Double
    public var logger: Logger

    public init(status: @escaping @Sendable () async -> [SiteStatus],
                history: @escaping @Sendable (SiteKey, String?, String, UInt64, UInt64) async throws -> [StoredSample],
                token: @escaping @Sendable (String) async throws -> HubTokenRecord?,
                limiter: FailedAuthLimiter = FailedAuthLimiter(), clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
                logger: Logger) {
        self.status = status
        self.history = history
        self.token = token
        self.limiter = limiter
        self.clock = clock
        self.logger = logger
    }

    /// The API over a running host and its store.
    public static func live(host: HostApplication, store: HubStore, logger: Logger) -> FleetAPIDependencies {
        FleetAPIDependencies(status: { await host.status() },
                             history: { try await store.history(site: $0, device: $1, metric: $2, since: $3, until: $4) },
                             token: { try await store.token(hash: $0) }, logger: logger)
    }
}

public struct FleetRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var token: HubTokenRecord?
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// JSON out: snake_case keys, sorted, as the site API.
    public var responseEncoder: JSONEncoder { .apiResponse }
}

/// One row of `fleet status`.
public struct SiteStatusDTO: Codable, Sendable, Equatable, ResponseEncodable {
    public var region: String
    public var site: String
    public var importKw: Double?
    public var capKw: Double?
    public var miningMw: Double?
    public var inferenceMw: Double?
    public var priceUsdPerMwh: Double?
    public var governorMode: String?
    public var configVersion: Int64?
    public var configSha256: String?
    /// MW the site offers to shed within one tick (the sum of its offer's steps), nil without an offer.
    public var offerMw: Double?
    /// ISO 8601, or nil if never heard from.
    public var lastSeen: String?
    /// online, stale or offline.
    public var liveness: String
    public var devices: Int
    public var devicesOnline: Int

    public init(_ s: SiteStatus) {
        region = s.region
        site = s.edge
        importKw = s.importKW
        capKw = s.capKW
        miningMw = s.miningMW
        inferenceMw = s.inferenceMW
        priceUsdPerMwh = s.priceUsdPerMWh
        governorMode = s.governorMode
        configVersion = s.configVersion
        configSha256 = s.configSHA256
        offerMw = s.offer.map { $0.reduce(0) { $0 + $1.mw } }
        lastSeen = s.lastSeen.map { ISO8601.format(Double($0) / 1000) }
        liveness = s.liveness.rawValue
        devices = s.devices
        devicesOnline = s.devicesOnline
    }
}

public struct FleetStatusDTO: Codable, Sendable, ResponseEncodable {
    public var sites: [SiteStatusDTO]
    public init(sites: [SiteStatusDTO]) { self.sites = sites }
}

public struct HistoryDTO: Codable, Sendable, ResponseEncodable {
    public struct Sample: Codable, Sendable, Equatable {
        public var at: String
        public var value: Double?
        public var text: String?
        public var historical: Bool
        public init(at: String, value: Double?, text: String?, historical: Bool) {
            self.at = at
            self.value = value
            self.text = text
            self.historical = historical
        }
    }
    public var region: String
    public var site: String
    public var device: String?
    public var metric: String
    public var samples: [Sample]

    public init(region: String, site: String, device: String?, metric: String, samples: [Sample]) {
        self.region = region
        self.site = site
        self.device = device
        self.metric = metric
        self.samples = samples
    }
}

/// Bearer token → `context.token`; refuses with 401 (429 after repeated failures from one address).
struct FleetAuthMiddleware: RouterMiddleware {
    typealias Context = FleetRequestContext
    let deps: FleetAPIDependencies

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let now = deps.clock()
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        if let wait = deps.limiter.retryAfter(client, now: now) {
            throw APIError(.tooManyRequests, "too many failed authentications; retry in \(Int(wait.rounded(.up))) s",
                           headers: [.retryAfter: "\(Int(wait.rounded(.up)))"])
        }
        func refuse(_ why: String) -> APIError {
            deps.limiter.recordFailure(client, now: now)
            deps.logger.notice("fleet API: authentication failed", metadata: ["client": "\(client)", "reason": "\(why)"])
            return APIError(.unauthorized, why, headers: [.wwwAuthenticate: "Bearer realm=\"switchyard-hub\""])
        }
        let secret: String
        switch BearerToken.parse(request.headers[.authorization]) {
        case .success(let s): secret = s
        case .failure(.missing): throw refuse("missing bearer token")
        case .failure(.malformed): throw refuse(BearerToken.malformedMessage)
        }
        let record: HubTokenRecord?
        do { record = try await deps.token(TokenSecret.hash(secret)) } catch {
            throw APIError(.serviceUnavailable, "token store unavailable: \(error)")
        }
        guard let record else { throw refuse("unknown token") }
        guard !record.revoked else { throw refuse("token \(record.id) is revoked") }
        var context = context
        context.token = record
        return try await next(request, context)
    }
}

/// 403 unless the token's role is at least `minimum`.
struct FleetRequireRole: RouterMiddleware {
    typealias Context = FleetRequestContext
    let minimum: Role

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let t = context.token else { throw APIError(.unauthorized, "not authenticated") }
        guard t.role >= minimum else { throw APIError(.forbidden, "role '\(t.role.rawValue)' may not do this; needs '\(minimum.rawValue)'") }
        return try await next(request, context)
    }
}

public enum FleetAPI {
    public static func router(_ deps: FleetAPIDependencies) -> Router<FleetRequestContext> {
        let router = Router(context: FleetRequestContext.self)
        let viewer = router.group("v1/fleet").add(middleware: FleetAuthMiddleware(deps: deps)).add(middleware: FleetRequireRole(minimum: .viewer))
        viewer.get("status") { request, _ -> FleetStatusDTO in
            try onlyQuery(request, allowed: [])
            let rows = await deps.status().sorted { $0.site < $1.site }
            return FleetStatusDTO(sites: rows.map(SiteStatusDTO.init))
        }
        viewer.get("sites/:group/:edge/history") { request, context -> HistoryDTO in
            try onlyQuery(request, allowed: ["metric", "device", "since", "until"])
            let group = try context.parameters.require("group"), edge = try context.parameters.require("edge")
            let q = request.uri.queryParameters
            guard let metric = q["metric"].map(String.init), !metric.isEmpty else {
                throw APIError(.badRequest, "query parameter 'metric' is required (e.g. metric=Site/Import kW)")
            }
            let device = q["device"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            let now = deps.clock()
            func time(_ key: String, default d: Double) throws -> UInt64 {
                guard let raw = q[Substring(key)].map(String.init) else { return UInt64(max(0, d) * 1000) }
                guard let t = ISO8601.parse(raw) else {
                    throw APIError(.badRequest, "query parameter '\(key)' should be an ISO 8601 time like 2026-07-15T14:00:00Z, found '\(raw)'")
                }
                return UInt64(max(0, t) * 1000)
            }
            let since = try time("since", default: now - 86_400), until = try time("until", default: now)
            guard since <= until else { throw APIError(.badRequest, "'since' is after 'until'") }
            let key = SiteKey(group: group, edge: edge)
            guard await deps.status().contains(where: { $0.site == key }) else {
                throw APIError(.notFound, "no site \(group)/\(edge) in the fleet")
            }
            let samples: [StoredSample]
            do { samples = try await deps.history(key, device, metric, since, until) } catch {
                throw APIError(.serviceUnavailable, "the hub store is unavailable: \(error)")
            }
            return HistoryDTO(region: group, site: edge, device: device, metric: metric, samples: samples.map {
                HistoryDTO.Sample(at: ISO8601.format(Double($0.at) / 1000), value: $0.number, text: $0.text, historical: $0.historical)
            })
        }
        return router
    }

    /// 400 naming the first query parameter the route does not know.
    static func onlyQuery(_ request: Request, allowed: Set<String>) throws {
        for (k, _) in request.uri.queryParameters where !allowed.contains(String(k)) {
            let known = allowed.isEmpty ? "it takes none" : "known: \(allowed.sorted().joined(separator: ", "))"
            throw APIError(.badRequest, "unknown query parameter '\(k)' (\(known))")
        }
    }
}
