// The fleet hub's store: PostgreSQL through postgres-nio (issue 18). It keeps what the primary host hands it
// (`FleetRecordSink`): sites, devices, births, deaths, events and metric samples (a day-partitioned time series with
// retention, and the latest value of every metric), plus the commands the hub sends and their outcomes. Every query
// is parameterised (`PostgresQuery` interpolation); the only SQL built from values is the partition DDL, and that is
// done inside PostgreSQL by format() with %I and %L (StoreSchema). docs/fleet.md, "Hub store".

import Foundation
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Sparkplug
import Synchronization

/// Where the hub's PostgreSQL is.
/// TLS to PostgreSQL, with libpq's modes (`--pg-sslmode`, `$PGSSLMODE`): `disable` (plain), `prefer` (TLS when the
/// server offers it, unverified; libpq's default), `require` (TLS, unverified), `verify-ca` (TLS, the server's
/// certificate signed by `rootCertFile` or the system's roots), `verify-full` (also for the host name or IP address
/// dialled). `certFile`/`keyFile`: a client certificate for servers that ask for one (`clientcert` in pg_hba.conf).
public struct HubStoreTLS: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }
    public var mode: Mode
    public var rootCertFile: String?
    public var certFile: String?
    public var keyFile: String?

    public init(mode: Mode = .disable, rootCertFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.mode = mode
        self.rootCertFile = rootCertFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    /// NIOSSL's client configuration for this mode (nil: plain). The files are read here, so a missing or
    /// unreadable file is an error that names it before any connection is tried.
    public func tlsConfiguration() throws(HubStoreError) -> TLSConfiguration? {
        if mode == .disable { return nil }
        var c = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case .disable: return nil
        case .prefer, .require: c.certificateVerification = .none
        case .verifyCA: c.certificateVerification = .noHostnameVerification
        case .verifyFull: c.certificateVerification = .fullVerification
        }
        func load<T>(_ what: String, _ path: String, _ body: () throws -> T) throws(HubStoreError) -> T {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw HubStoreError(operation: "TLS", message: "\(what) \(path): no such file, or not readable")
            }
            do { return try body() } catch { throw HubStoreError(operation: "TLS", message: "\(what) \(path): \(error)") }
        }
        if let root = rootCertFile {
            guard mode == .verifyCA || mode == .verifyFull else {
                throw HubStoreError(operation: "TLS", message: "a root certificate (\(root)) is only used with sslmode verify-ca or verify-full, not \(mode.rawValue)")
            }
            let certs = try load("root certificate", root) { try NIOSSLCertificate.fromPEMFile(root) }
            c.trustRoots = .certificates(certs)
        }
        if (certFile == nil) != (keyFile == nil) {
            throw HubStoreError(operation: "TLS", message: "give both a client certificate and its key, or neither")
        }
        if let cert = certFile, let key = keyFile {
            c.certificateChain = try load("client certificate", cert) { try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) } }
            c.privateKey = .privateKey(try load("client key", key) { try NIOSSLPrivateKey(file: key, format: .pem) })
        }
        return c
    }

    /// The pool's TLS (postgres-nio's `PostgresClient`).
    func clientTLS() throws(HubStoreError) -> PostgresClient.Configuration.TLS {
        guard let c = try tlsConfiguration() else { return .disable }
        return mode == .prefer ? .prefer(c) : .require(c)
    }

    /// A single connection's TLS (the start-up check).
    func connectionTLS() throws(HubStoreError) -> PostgresConnection.Configuration.TLS {
        guard let c = try tlsConfiguration() else { return .disable }
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: c) } catch { throw HubStoreError(operation: "TLS", message: "\(error)") }
        return mode == .prefer ? .prefer(context) : .require(context)
    }
}

public struct HubStoreConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// The client's pool size.
    public var maximumConnections: Int
    /// TLS to the server, as libpq's sslmode, sslrootcert, sslcert and sslkey.
    public var tls: HubStoreTLS
    /// How long one write may take before it is cancelled and reported failed (the caller retries).
    public var writeTimeout: Duration = .seconds(30)

    public init(host: String = "127.0.0.1", port: Int = 5432, username: String, password: String? = nil,
                database: String, maximumConnections: Int = 8, tls: HubStoreTLS = HubStoreTLS()) {
        self.tls = tls
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.maximumConnections = maximumConnections
    }
}

/// A store operation that failed: what the store was doing, and PostgreSQL's own message (SQLSTATE and text) when
/// the server answered.
public struct HubStoreError: Error, CustomStringConvertible {
    public var operation: String
    public var message: String
    /// The server's SQLSTATE, when the server answered.
    public var sqlState: String?

    public init(operation: String, message: String, sqlState: String? = nil) {
        self.operation = operation
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String {
        "hub store: \(operation): \(message)\(sqlState.map { " (SQLSTATE \($0))" } ?? "")"
    }

    /// The error inside postgres-nio's transaction wrapper (the closure's, else the COMMIT's, BEGIN's or ROLLBACK's).
    static func underlying(_ error: any Error) -> any Error {
        guard let t = error as? PostgresTransactionError else { return error }
        return t.closureError ?? t.commitError ?? t.beginError ?? t.rollbackError ?? error
    }

    /// The server's SQLSTATE for an error from postgres-nio, if the server answered.
    static func sqlState(_ error: any Error) -> String? {
        (underlying(error) as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// Wraps an error from postgres-nio (whose `description` hides the server's message on purpose).
    static func wrap(_ error: any Error, _ operation: String) -> HubStoreError {
        let error = underlying(error)
        if let e = error as? HubStoreError { return e }
        if let p = error as? PSQLError {
            if let info = p.serverInfo {
                let detail = info[.detail].map { " — \($0)" } ?? ""
                return HubStoreError(operation: operation, message: (info[.message] ?? "server error") + detail,
                                     sqlState: info[.sqlState])
            }
            return HubStoreError(operation: operation, message: "\(p.code)\(p.underlying.map { ": \($0)" } ?? "")")
        }
        return HubStoreError(operation: operation, message: "\(error)")
    }
}

/// The hub's PostgreSQL store. Create it, `run()` it (it is a swift-service-lifecycle `Service`: it runs the
/// connection pool until cancelled or a graceful shutdown), call `migrate()` once, then write and query. A write of
/// `[HubRecord]` is one transaction: when `write` returns, the records are committed (and, with PostgreSQL's default
/// fsync and synchronous_commit, on disk).
public final class HubStore: FleetRecordSink, Service {
    public let client: PostgresClient
    let logger: Logger

    struct Caches {
        /// Sites whose row is committed, by key.
        var siteIDs: [SiteKey: Int32] = [:]
        /// Day numbers (days since the epoch, UTC) whose samples partition exists.
        var partitions: Set<Int64> = []
    }
    let caches = Mutex(Caches())
    let writeTimeout: Duration

    public init(configuration c: HubStoreConfiguration, logger: Logger) throws(HubStoreError) {
        var config = PostgresClient.Configuration(host: c.host, port: c.port, username: c.username, password: c.password,
                                                  database: c.database, tls: try c.tls.clientTLS())
        config.options.maximumConnections = c.maximumConnections
        self.writeTimeout = c.writeTimeout
        self.client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.logger = logger
    }

    /// Runs the connection pool until the task is cancelled or a graceful shutdown begins.
    public func run() async throws {
        let client = self.client
        await cancelWhenGracefulShutdown { await client.run() }
    }

    /// Runs the store's pool for the duration of `body`, and stops it once `body` has returned (the hub, tests, tools
    /// and benchmarks). postgres-nio's `PostgresClient.run()` ends at a graceful shutdown of the task it runs in, so
    /// in a child task the pool closed as soon as the hub began to shut down, and the host's last write waited for a
    /// connection for ever (HubEndToEndTests hung at shutdown about one run in four). The pool therefore runs in a
    /// task of its own, outside the caller's graceful shutdown, and is cancelled after `body`.
    public static func withRunning<T: Sendable>(_ configuration: HubStoreConfiguration, logger: Logger,
                                                _ body: (HubStore) async throws -> T) async throws -> T {
        try await checkConnection(configuration, logger: logger)
        let store = try HubStore(configuration: configuration, logger: logger)
        let client = store.client
        let pool = Task.detached { await client.run() }
        let result: Result<T, any Error>
        do { result = .success(try await body(store)) } catch { result = .failure(error) }
        pool.cancel()
        await pool.value
        return try result.get()
    }

    /// Opens one connection and closes it, so that a server that refuses the hub (pg_hba.conf, a wrong password, a
    /// certificate that does not verify, nothing listening) is reported with its own message at once. The pool would
    /// retry and then fail its queries with only "circuit breaker tripped".
    public static func checkConnection(_ c: HubStoreConfiguration, logger: Logger) async throws(HubStoreError) {
        let config = PostgresConnection.Configuration(host: c.host, port: c.port, username: c.username, password: c.password,
                                                      database: c.database, tls: try c.tls.connectionTLS())
        do {
            let connection = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
            try await connection.close()
        } catch {
            let e = HubStoreError.wrap(error, "connect to \(c.username)@\(c.host):\(c.port)/\(c.database)")
            throw e
        }
    }

    // MARK: Migrations

    /// The migrations this version knows, in the order they are applied.
    public static var migrationNames: [String] { HubSchema.migrations.map(\.name) }

    /// Applies every migration not yet recorded in `hub_migrations`, in order, each in its own transaction under an
    /// advisory lock (two hubs starting together apply each once). Returns the names applied now (empty when the
    /// database was already current). Throws if the database records a migration this version does not know (a
    /// newer hub wrote it).
    @discardableResult
    public func migrate() async throws -> [String] {
        var applied: [String] = []
        do {
            for migration in HubSchema.migrations {
                let logger = self.logger
                let did = try await client.withTransaction(logger: logger) { conn -> Bool in
                    try await conn.query("SELECT pg_advisory_xact_lock(\(HubSchema.migrationLock))", logger: logger)
                    try await conn.query(HubSchema.createMigrationsTable, logger: logger)
                    let name = migration.name
                    let rows = try await conn.query("SELECT 1 FROM hub_migrations WHERE name = \(name)", logger: logger).collect()
                    if !rows.isEmpty { return false }
                    for statement in migration.statements { try await conn.query(statement, logger: logger) }
                    try await conn.query("INSERT INTO hub_migrations (name) VALUES (\(name))", logger: logger)
                    return true
                }
                if did { applied.append(migration.name) }
            }
            let known = Set(Self.migrationNames)
            let recorded = try await appliedMigrations()
            if let unknown = recorded.first(where: { !known.contains($0) }) {
                throw HubStoreError(operation: "migrate",
                                    message: "the database has migration \"\(unknown)\", which this hub does not know (a newer hub migrated it)")
            }
        } catch {
            throw HubStoreError.wrap(error, "migrate")
        }
        if !applied.isEmpty { logger.info("hub store migrated", metadata: ["store.migrations": "\(applied.joined(separator: ","))"]) }
        return applied
    }

    /// The migrations recorded in the database, in the order they were applied.
    public func appliedMigrations() async throws -> [String] {
        do {
            let rows = try await client.query("SELECT name FROM hub_migrations ORDER BY applied_at, name", logger: logger)
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        } catch {
            throw HubStoreError.wrap(error, "read hub_migrations")
        }
    }

    // MARK: Sites

    /// The committed id of `site`'s row, creating the row (offline, first and last seen `at`) when the site is new.
    func siteID(_ site: SiteKey, seenAt at: UInt64) async throws -> Int32 {
        if let id = caches.withLock({ $0.siteIDs[site] }) { return id }
        let group = site.group, edge = site.edge, ms = Int64(clamping: at)
        var id: Int32?
        for try await v in try await client.query(
            "SELECT id FROM sites WHERE group_id = \(group) AND edge_id = \(edge)", logger: logger).decode(Int32.self) { id = v }
        if id == nil {
            for try await v in try await client.query("""
                INSERT INTO sites (group_id, edge_id, region, first_seen, last_seen, online)
                VALUES (\(group), \(edge), \(group), timestamptz 'epoch' + \(ms) * interval '1 millisecond',
                        timestamptz 'epoch' + \(ms) * interval '1 millisecond', false)
                ON CONFLICT (group_id, edge_id) DO NOTHING RETURNING id
                """, logger: logger).decode(Int32.self) { id = v }
        }
        if id == nil {  // another writer inserted it in between
            for try await v in try await client.query(
                "SELECT id FROM sites WHERE group_id = \(group) AND edge_id = \(edge)", logger: logger).decode(Int32.self) { id = v }
        }
        guard let id else { throw HubStoreError(operation: "site \(site)", message: "no row after insert") }
        caches.withLock { $0.siteIDs[site] = id }
        return id
    }

    /// SQL turning a bigint of ms since the epoch into a timestamptz, exactly (interval arithmetic in µs).
    static func msToTime(_ expression: String) -> String {
        "(timestamptz 'epoch' + (\(expression))::bigint * interval '1 millisecond')"
    }

    /// SQL reading a timestamptz as bigint ms since the epoch.
    static func timeToMs(_ column: String) -> String {
        "(extract(epoch FROM \(column)) * 1000)::bigint"
    }
}
