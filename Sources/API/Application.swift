// The HTTP API: `buildRouter(deps)` and `buildApplication(config, deps)`.
// Every route is declared once, with its minimum role, through `RouteTable` (one RouteCollection per controller),
// so the auth-matrix tests enumerate exactly what the server serves.

import Basics
import Control
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle
import Store
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Everything the handlers need.
public struct APIDependencies: Sendable {
    public var tokens: any TokenRepository
    public var configs: any ConfigRepository
    public var audit: any AuditRepository
    public var eventLog: any EventLogRepository
    public var runtime: any SiteRuntime
    public var metrics: MetricsRegistry
    public var limiter: FailedAuthLimiter
    /// Wall time for token expiry, rate limiting and audit rows (injected in tests).
    public var clock: @Sendable () -> Double
    public var logger: Logger

    public init(store: Store, runtime: any SiteRuntime, metrics: MetricsRegistry, limiter: FailedAuthLimiter = .init(),
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }, logger: Logger) {
        tokens = store
        configs = store
        audit = store
        eventLog = store
        self.runtime = runtime
        self.metrics = metrics
        self.limiter = limiter
        self.clock = clock
        self.logger = logger
    }
}

/// One served route and the least role that may call it (nil: public).
public struct RouteSpec: Sendable, CustomStringConvertible {
    public var method: HTTPRequest.Method
    public var path: String
    public var role: Role?
    public var description: String { "\(method.rawValue) \(path)" }
}

/// Registers one controller's routes on its Hummingbird `RouteCollection`, each in the group of its least
/// role (bearer auth, audit, role check), and remembers them.
public final class RouteTable {
    let collection = RouteCollection(context: APIRequestContext.self)
    let publicGroup: RouterGroup<APIRequestContext>
    let groups: [Role: RouterGroup<APIRequestContext>]
    public private(set) var specs: [RouteSpec] = []

    init(deps: APIDependencies) {
        publicGroup = collection.group()
        let authed = collection.group()
            .add(middleware: CountingAuthMiddleware(inner: BearerAuthMiddleware(tokens: deps.tokens, limiter: deps.limiter,
                                                                                 clock: deps.clock, logger: deps.logger),
                                                    metrics: deps.metrics))
            .add(middleware: AuditMiddleware(audit: deps.audit, clock: deps.clock, logger: deps.logger))
        var g: [Role: RouterGroup<APIRequestContext>] = [:]
        for r in Role.allCases { g[r] = authed.group().add(middleware: RequireRole(minimum: r)) }
        groups = g
    }

    func add<R: ResponseGenerator>(_ method: HTTPRequest.Method, _ path: String, _ role: Role?,
                                   _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> R) {
        let group = role.map { groups[$0]! } ?? publicGroup
        group.on(RouterPath(path), method: method, use: handler)
        specs.append(RouteSpec(method: method, path: path, role: role))
    }
}

/// Counts failed authentications for /metrics.
struct CountingAuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let inner: BearerAuthMiddleware
    let metrics: MetricsRegistry
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await inner.handle(request, context: context, next: next) } catch let e as APIError where e.status == .unauthorized {
            metrics.authFailed()
            throw e
        }
    }
}

public struct BuiltRouter {
    public var router: Router<APIRequestContext>
    public var routes: [RouteSpec]
}

/// The routes served, for answering what matched no route (filled once the table is built).
final class RouteIndex: Sendable {
    let specs = Mutex<[RouteSpec]>([])

    /// The methods served on `path` (its segments matched against the route templates; `{x}` matches one segment).
    func methods(for path: String) -> [String] {
        let segs = path.split(separator: "/", omittingEmptySubsequences: true)
        let all = specs.withLock { $0 }.filter { spec in
            let p = spec.path.split(separator: "/", omittingEmptySubsequences: true)
            return p.count == segs.count && zip(p, segs).allSatisfy { t, s in (t.hasPrefix("{") && t.hasSuffix("}")) || t == s }
        }
        return Set(all.map(\.method.rawValue)).sorted()
    }
}

/// Every error leaves as `{"error": {"message": …, "status": …}}`: an unknown path is a JSON 404 naming it,
/// a known path with a method it does not serve is 405 with `Allow`, and Hummingbird's own errors get a body too.
struct JSONErrorsMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let index: RouteIndex

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch let e as HTTPError {
            let path = request.uri.path
            if e.status == .notFound {
                let allowed = index.methods(for: path)
                if !allowed.isEmpty, !allowed.contains(request.method.rawValue) {
                    throw APIError(.methodNotAllowed, "\(request.method.rawValue) is not served on \(path); allowed: \(allowed.joined(separator: ", "))",
                                   headers: [.allow: allowed.joined(separator: ", ")])
                }
                if allowed.isEmpty {
                    throw APIError(.notFound, "no such path: \(request.method.rawValue) \(path) (see docs/api.md for the routes)")
                }
            }
            throw APIError(e.status, e.body.flatMap { $0.isEmpty ? nil : $0 } ?? "\(e.status.code) \(e.status.reasonPhrase)", headers: e.headers)
        }
    }
}

public func buildRouter(_ deps: APIDependencies) -> BuiltRouter {
    let router = Router(context: APIRequestContext.self)
    let index = RouteIndex()
    // Before any route: router middleware wraps the routes added after it, and the not-found responder.
    router.add(middleware: JSONErrorsMiddleware(index: index))
    let controllers: [any APIController] = [
        HealthController(deps: deps), StatusController(deps: deps), EventsController(deps: deps), ModesController(deps: deps),
        ConfigController(deps: deps), TokensController(deps: deps), LogsController(deps: deps), MetricsController(deps: deps),
    ]
    var specs: [RouteSpec] = []
    for controller in controllers {
        let routes = controller.routes
        router.addRoutes(routes.collection)
        specs += routes.specs
    }
    index.specs.withLock { $0 = specs }
    return BuiltRouter(router: router, routes: specs)
}

// MARK: The application

/// The Hummingbird application (itself a `Service`). `onListening` gets the bound port.
/// The site API's listen address and TLS (the hub's use the same rules; `ListenConfiguration` in HTTPBasics).
public typealias APIConfiguration = ListenConfiguration
public typealias APIConfigError = ListenConfigError

public func buildApplication(_ config: APIConfiguration, deps: APIDependencies,
                             onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> some ApplicationProtocol {
    let built = buildRouter(deps)
    let server = try config.serverBuilder()
    if !config.usesTLS && !config.isLoopback {
        deps.logger.critical("API listening WITHOUT TLS on a non-loopback address (--insecure): tokens travel in clear text",
                             metadata: ["http.host": "\(config.host)", "http.port": "\(config.port)"])
    }
    return Application(router: built.router, server: server,
                       configuration: .init(address: .hostname(config.bindAddress, port: config.port), serverName: "switchyard"),
                       onServerRunning: { channel in onListening(channel.localAddress?.port ?? config.port) },
                       logger: deps.logger)
}
