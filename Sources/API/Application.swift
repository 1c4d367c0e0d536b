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

public struct APIConfiguration: Sendable {
    /// The host as given (shown in the listening URL).
    public var host: String
    /// The numeric address the server binds: the first address `host` resolved to (IPv4 first), so the
    /// loopback check and the bind look at the same address.
    public var bindAddress: String
    /// Every address `host` resolved to.
    public var addresses: [String]
    public var port: Int
    public var tlsCertPath: String?
    public var tlsKeyPath: String?
    public var insecure: Bool

    public init(listen: String, tlsCertPath: String? = nil, tlsKeyPath: String? = nil, insecure: Bool = false,
                resolve: (String) throws -> [String] = APIConfiguration.resolve) throws {
        guard let (h, p) = Self.parseListen(listen) else {
            throw APIConfigError("--listen '\(listen)' is not HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)")
        }
        host = h
        port = p
        let resolved = try resolve(h)
        guard !resolved.isEmpty else { throw APIConfigError("--listen '\(listen)': '\(h)' resolves to no address") }
        addresses = resolved
        bindAddress = resolved.first { !$0.contains(":") } ?? resolved[0]
        self.tlsCertPath = tlsCertPath
        self.tlsKeyPath = tlsKeyPath
        self.insecure = insecure
        if (tlsCertPath == nil) != (tlsKeyPath == nil) { throw APIConfigError("give both --tls-cert and --tls-key, or neither") }
        if !usesTLS && !isLoopback && !insecure {
            let shown = addresses == [host] ? "" : " (\(host) is \(addresses.joined(separator: ", ")))"
            throw APIConfigError("refusing to listen on \(listen)\(shown) without TLS: give --tls-cert and --tls-key, or --insecure")
        }
    }

    public var usesTLS: Bool { tlsCertPath != nil }
    /// True when every address the host resolved to is a loopback address (127.0.0.0/8, ::1,
    /// ::ffff:127.x): the name itself proves nothing ("127.0.0.1.nip.io" is a name anyone can point anywhere).
    public var isLoopback: Bool { addresses.allSatisfy(Self.isLoopbackAddress) }

    /// A numeric address in 127.0.0.0/8 or ::1 (or IPv4-mapped 127.x).
    public static func isLoopbackAddress(_ a: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, a, &v4) == 1 { return (UInt32(bigEndian: v4.s_addr) >> 24) == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, a, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff && b[12] == 127
    }

    /// The numeric addresses of `host` (getaddrinfo; a literal address is returned as is). Throws if it does not resolve.
    public static func resolve(_ host: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &res)
        guard rc == 0, let first = res else {
            throw APIConfigError("--listen: cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        func text(_ b: [CChar]) -> String { String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        var out: [String] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count)) != nil { out.append(text(buf)) }
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                if inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil { out.append(text(buf)) }
            }
            p = ai.pointee.ai_next
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
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
                       configuration: .init(address: .hostname(config.bindAddress, port: config.port), serverName: "switchyard"),
                       onServerRunning: { channel in onListening(channel.localAddress?.port ?? config.port) },
                       logger: deps.logger)
}
