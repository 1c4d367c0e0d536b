// The HTTP API: `buildRouter(deps)` and `buildApplication(config, deps)`.
// Every route is declared once, with its minimum role, through `RouteTable`,
// so the auth-matrix tests enumerate exactly what the server serves.

import Control
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle
import Store

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

/// Registers routes on the role's group and remembers them.
public final class RouteTable {
    let publicGroup: RouterGroup<APIRequestContext>
    let groups: [Role: RouterGroup<APIRequestContext>]
    public private(set) var specs: [RouteSpec] = []

    init(router: Router<APIRequestContext>, deps: APIDependencies) {
        publicGroup = router.group()
        let authed = router.group()
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

public func buildRouter(_ deps: APIDependencies) -> BuiltRouter {
    let router = Router(context: APIRequestContext.self)
    let table = RouteTable(router: router, deps: deps)
    HealthController().addRoutes(to: table)
    StatusController(deps: deps).addRoutes(to: table)
    EventsController(deps: deps).addRoutes(to: table)
    ModesController(deps: deps).addRoutes(to: table)
    ConfigController(deps: deps).addRoutes(to: table)
    TokensController(deps: deps).addRoutes(to: table)
    LogsController(deps: deps).addRoutes(to: table)
    MetricsController(deps: deps).addRoutes(to: table)
    return BuiltRouter(router: router, routes: table.specs)
}

// MARK: The application

public struct APIConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var tlsCertPath: String?
    public var tlsKeyPath: String?
    public var insecure: Bool

    public init(listen: String, tlsCertPath: String? = nil, tlsKeyPath: String? = nil, insecure: Bool = false) throws {
        guard let (h, p) = Self.parseListen(listen) else {
            throw APIConfigError("--listen '\(listen)' is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)")
        }
        host = h
        port = p
        self.tlsCertPath = tlsCertPath
        self.tlsKeyPath = tlsKeyPath
        self.insecure = insecure
        if (tlsCertPath == nil) != (tlsKeyPath == nil) { throw APIConfigError("give both --tls-cert and --tls-key, or neither") }
        if !usesTLS && !isLoopback && !insecure {
            throw APIConfigError("refusing to listen on \(listen) without TLS: give --tls-cert and --tls-key, or --insecure")
        }
    }

    public var usesTLS: Bool { tlsCertPath != nil }
    public var isLoopback: Bool { Self.isLoopback(host) }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func parseListen(_ s: String) -> (String, Int)? {
        var host: Substring, port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            port = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            port = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (0...65535).contains(p) else { return nil }
        return (String(host), p)
    }
}

public struct APIConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The Hummingbird application (itself a `Service`). `onListening` gets the bound port.
public func buildApplication(_ config: APIConfiguration, deps: APIDependencies,
                             onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> some ApplicationProtocol {
    let built = buildRouter(deps)
    let server: HTTPServerBuilder
    if let cert = config.tlsCertPath, let key = config.tlsKeyPath {
        do {
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                                                               privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            server = try .tls(.http1(), tlsConfiguration: tls)
        } catch {
            throw APIConfigError("TLS: cannot load \(cert) / \(key): \(error)")
        }
    } else {
        server = .http1()
        if !config.isLoopback {
            deps.logger.critical("API listening WITHOUT TLS on a non-loopback address (--insecure): tokens travel in clear text",
                                 metadata: ["http.host": "\(config.host)", "http.port": "\(config.port)"])
        }
    }
    return Application(router: built.router, server: server,
                       configuration: .init(address: .hostname(config.host, port: config.port), serverName: "switchyard"),
                       onServerRunning: { channel in onListening(channel.localAddress?.port ?? config.port) },
                       logger: deps.logger)
}
