// Test support: a throwaway PostgreSQL cluster from Debian's `postgresql` package (installed by `make deps`), on a
// free loopback port, with its own data directory under the temporary directory. Used by the hub's tests, its
// benchmark and the fleet demo. `withPostgres { server in … }` stops it and deletes the directory however the body
// ends.
//
// The server refuses to run as root, so when the tests run as root every PostgreSQL binary runs as the `postgres`
// user (`setpriv`, which execs in place, so the process we start is the postmaster itself) and the directory is
// handed to that user. Durability is left at PostgreSQL's defaults (fsync, synchronous_commit and
// full_page_writes on): the crash test kills the postmaster with SIGKILL and expects every committed batch back.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL cluster started for one test (or one benchmark run). User `postgres`, database `postgres`, trust
/// authentication, reachable only on 127.0.0.1:`port` and through the unix socket in `socketDirectory`.
public final class PostgresServer: @unchecked Sendable {
    public let port: Int
    /// The temporary directory holding everything: `data/` (the cluster), `socket/`, `postgres.log`.
    public let directory: URL
    /// The Debian binaries' directory, e.g. /usr/lib/postgresql/15/bin.
    public let binDirectory: URL
    public let username = "postgres"
    public let database = "postgres"

    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    public var socketDirectory: URL { directory.appendingPathComponent("socket") }
    public var logFile: URL { directory.appendingPathComponent("postgres.log") }
    /// What the server has logged so far (the last 8 KiB), for failure messages.
    public var log: String {
        String(((try? String(contentsOf: logFile, encoding: .utf8)) ?? "").suffix(8192))
    }

    /// The server's major version (the Debian directory's name), e.g. "15".
    public var majorVersion: String { binDirectory.deletingLastPathComponent().lastPathComponent }

    private let lock = NSLock()
    private var process: Process?  // guarded by lock
    private var removed = false  // guarded by lock

    private init(port: Int, directory: URL, binDirectory: URL) {
        self.port = port
        self.directory = directory
        self.binDirectory = binDirectory
    }

    // MARK: Start

    /// Creates a cluster in a new temporary directory, starts it and waits (off the cooperative pool) until it
    /// accepts connections.
    public static func start() async throws -> PostgresServer {
        try await offPool { try startBlocking() }
    }

    static func startBlocking() throws -> PostgresServer {
        let bin = try findBinaries()
        reapAbandoned()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(directoryPrefix)\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // Who owns this cluster: a later start removes it if this process dies without stopping it (reapAbandoned).
        try "\(getpid())\n".write(to: dir.appendingPathComponent(ownerFile), atomically: true, encoding: .utf8)
        // The port is chosen before the server binds it; another process may take it in between, so a start that
        // fails is retried on a new port (the cluster is kept).
        var server = PostgresServer(port: try freeLoopbackPort(), directory: dir, binDirectory: bin)
        do {
            try FileManager.default.createDirectory(at: server.socketDirectory, withIntermediateDirectories: true)
            try server.handToServerUser(dir)
            try server.handToServerUser(server.socketDirectory)
            let initdb = try server.runAsServerUser(
                "initdb",
                ["-D", server.dataDirectory.path, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                 "--no-instructions"])
            guard initdb.status == 0 else {
                throw TestSupportError.peerFailed("initdb exited \(initdb.status): \(initdb.output.suffix(2000))")
            }
            // Trust, but only on the unix socket and loopback (the server listens on 127.0.0.1 only anyway).
            let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            let hbaURL = server.dataDirectory.appendingPathComponent("pg_hba.conf")
            try hba.write(to: hbaURL, atomically: false, encoding: .utf8)
            try server.handToServerUser(hbaURL)
            var attempt = 0
            while true {
                do {
                    try server.launchAndWait()
                    return server
                } catch {
                    attempt += 1
                    if attempt >= 3 { throw error }
                    // The same directory under a new port: the old object must not delete it when it goes.
                    server.disown()
                    server = PostgresServer(port: try freeLoopbackPort(), directory: dir, binDirectory: bin)
                }
            }
        } catch {
            server.stopBlocking()
            throw error
        }
    }

    static let directoryPrefix = "switchyard-postgres-"
    static let ownerFile = "owner.pid"

    /// Stops and removes every throwaway cluster whose owning process (the pid in its `owner.pid`) has died without
    /// stopping it (a test process killed, say): its postmaster gets SIGQUIT (immediate shutdown, the backends go
    /// with it), then the directory is deleted. A directory without `owner.pid`, or whose owner is alive, is left.
    public static func reapAbandoned() {
        let tmp = FileManager.default.temporaryDirectory
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? []
        for name in entries where name.hasPrefix(directoryPrefix) {
            let dir = tmp.appendingPathComponent(name)
            guard let owner = try? String(contentsOf: dir.appendingPathComponent(ownerFile), encoding: .utf8),
                  let ownerPID = Int32(owner.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            if kill(ownerPID, 0) == 0 || errno == EPERM { continue }  // the owner is alive
            let pidFile = dir.appendingPathComponent("data/postmaster.pid")
            if let text = try? String(contentsOf: pidFile, encoding: .utf8),
               let first = text.split(separator: "\n").first, let postmaster = Int32(first),
               let cmdline = try? String(contentsOfFile: "/proc/\(postmaster)/cmdline", encoding: .utf8),
               cmdline.contains(dir.path) {
                kill(postmaster, SIGQUIT)
                let deadline = Date().addingTimeInterval(10)
                while isAlive(postmaster), Date() < deadline { usleep(10_000) }
                if isAlive(postmaster) { kill(postmaster, SIGKILL) }
            }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// Whether the server process is running.
    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// The highest-numbered /usr/lib/postgresql/<version>/bin holding `postgres` and `initdb`.
    public static func findBinaries() throws -> URL {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
            .compactMap { v -> (Int, URL)? in
                guard let n = Int(v) else { return nil }
                let bin = root.appendingPathComponent(v).appendingPathComponent("bin")
                let ok = ["postgres", "initdb", "pg_ctl", "pg_isready", "psql"].allSatisfy {
                    FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent($0).path)
                }
                return ok ? (n, bin) : nil
            }
            .sorted { $0.0 > $1.0 }
        guard let best = versions.first else {
            throw TestSupportError.peerFailed("no PostgreSQL server under /usr/lib/postgresql/<version>/bin (make deps installs Debian's postgresql)")
        }
        return best.1
    }

    /// Starts the postmaster on the existing data directory (a first start, or a restart after `stop(removing:
    /// false)` or `crash()`), then polls the connection until it answers or 60 s pass.
    func launchAndWait() throws {
        let logHandle = try openLog()
        let p = Process()
        let (exe, args) = commandAsServerUser(binDirectory.appendingPathComponent("postgres").path, [
            "-D", dataDirectory.path,
            "-c", "listen_addresses=127.0.0.1",
            "-c", "port=\(port)",
            "-c", "unix_socket_directories=\(socketDirectory.path)",
            "-c", "max_connections=40",
            "-c", "shared_buffers=64MB",
            "-c", "logging_collector=off",
            "-c", "timezone=UTC",
            // Durability stays on (these are the defaults, stated so that a change is deliberate).
            "-c", "fsync=on",
            "-c", "synchronous_commit=on",
            "-c", "full_page_writes=on",
        ])
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = logHandle
        p.standardError = logHandle
        try p.run()
        try? logHandle.close()
        lock.withLock { process = p }
        // Readiness: pg_isready connects and reports (not a fixed sleep); bounded.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if !p.isRunning {
                p.waitUntilExit()
                throw TestSupportError.peerFailed("postgres exited \(p.terminationStatus) on port \(port): \(log)")
            }
            let ready = try runBlocking(binDirectory.appendingPathComponent("pg_isready").path,
                                        ["-h", "127.0.0.1", "-p", "\(port)", "-U", username, "-d", database, "-t", "2"])
            if ready.status == 0 { return }
            usleep(50_000)
        }
        killPostmasterAndChildren()
        throw TestSupportError.peerFailed("postgres did not accept connections on 127.0.0.1:\(port) within 60 s: \(log)")
    }

    private func openLog() throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        let h = try FileHandle(forWritingTo: logFile)
        h.seekToEndOfFile()
        return h
    }

    // MARK: Stop, crash, restart

    /// Stops the server (`pg_ctl stop -m fast`, then SIGKILL if it has not gone in 30 s) and deletes the directory.
    /// Safe to call twice.
    public func stop() async {
        await offPool { self.stopBlocking() }
    }

    func stopBlocking(removing: Bool = true) {
        let p = lock.withLock { process }
        if let p, p.isRunning {
            _ = try? runAsServerUser("pg_ctl", ["stop", "-D", dataDirectory.path, "-m", "fast", "-w", "-t", "30"])
            if p.isRunning { killPostmasterAndChildren() }
            p.waitUntilExit()
        }
        lock.withLock { process = nil }
        if removing {
            let first = lock.withLock { () -> Bool in
                defer { removed = true }
                return !removed
            }
            if first { try? FileManager.default.removeItem(at: directory) }
        }
    }

    /// Forgets the process and the directory (another object took them over).
    private func disown() {
        lock.withLock {
            process = nil
            removed = true
        }
    }

    /// Stops the server cleanly but keeps its directory, for `restart()`.
    public func stopKeepingData() async {
        await offPool { self.stopBlocking(removing: false) }
    }

    /// A crash: SIGKILL to the postmaster and every process it started, with no shutdown of any kind (committed
    /// transactions survive only through the WAL). Returns once they have all gone.
    public func crash() async {
        await offPool {
            self.killPostmasterAndChildren()
            self.lock.withLock { self.process = nil }
        }
    }

    /// Starts the server again on the same data directory and port (after `crash()` this runs crash recovery) and
    /// waits until it accepts connections.
    public func restart() async throws {
        try await offPool { try self.launchAndWait() }
    }

    func killPostmasterAndChildren() {
        guard let p = lock.withLock({ process }), p.isRunning else { return }
        let pid = p.processIdentifier
        // The children first listed, then the postmaster killed (so it cannot start new ones), then the children.
        let children = Self.childPIDs(of: pid)
        kill(pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
        p.waitUntilExit()
        // The children are not ours to reap; wait until each is gone or a zombie (bounded).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, children.contains(where: { Self.isAlive($0) }) { usleep(10_000) }
    }

    static func childPIDs(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // After "pid (comm)": state, ppid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent
        }
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.first.map { $0 != "Z" && $0 != "X" } ?? false
    }

    deinit {
        // A server whose test forgot it: still stopped and removed.
        stopBlocking()
    }

    // MARK: psql

    /// Runs Debian's `psql -At` (unaligned, tuples only, `|` between columns) against the server over TCP and returns
    /// its output; throws when psql fails (ON_ERROR_STOP).
    @discardableResult
    public func psql(_ sql: String) async throws -> String {
        let r = try await runCommand(binDirectory.appendingPathComponent("psql").path, [
            "-h", "127.0.0.1", "-p", "\(port)", "-U", username, "-d", database,
            "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ])
        guard r.status == 0 else { throw TestSupportError.peerFailed("psql exited \(r.status): \(r.stderr)") }
        return r.stdout
    }

    // MARK: TLS and passwords

    /// Turns TLS on with `certificate`/`key` (PEM files, copied into the cluster and given to the server's user),
    /// replaces pg_hba.conf with `hba` and reloads; returns once a new connection sees `ssl` on. The `postgres`
    /// user keeps whatever `hba` gives it (the helpers here use it over 127.0.0.1 without a password).
    public func enableTLS(certificate: String, key: String, hba: String) async throws {
        let cert = dataDirectory.appendingPathComponent("server.crt"), keyURL = dataDirectory.appendingPathComponent("server.key")
        let hbaURL = dataDirectory.appendingPathComponent("pg_hba.conf")
        for (from, to) in [(certificate, cert), (key, keyURL)] {
            try? FileManager.default.removeItem(at: to)
            try FileManager.default.copyItem(atPath: from, toPath: to.path)
            try handToServerUser(to)
        }
        chmod(keyURL.path, 0o600)  // the server refuses a key others can read
        try hba.write(to: hbaURL, atomically: false, encoding: .utf8)
        try handToServerUser(hbaURL)
        try await psql("ALTER SYSTEM SET ssl = on")
        try await psql("SELECT pg_reload_conf()")
        // The postmaster applies the reload by itself; wait (bounded) until a new session reports it.
        let deadline = Date().addingTimeInterval(30)
        while try await psql("SHOW ssl").trimmingCharacters(in: .whitespacesAndNewlines) != "on" {
            guard Date() < deadline else { throw TestSupportError.peerFailed("ssl did not turn on within 30 s: \(log)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Running as the postgres user

    static var runningAsRoot: Bool { getuid() == 0 }

    /// As root: `setpriv` to the `postgres` user (it execs the program in place); otherwise the program itself.
    func commandAsServerUser(_ program: String, _ arguments: [String]) -> (String, [String]) {
        guard Self.runningAsRoot else { return (program, arguments) }
        return ("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", program] + arguments)
    }

    func runAsServerUser(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let (exe, args) = commandAsServerUser(binDirectory.appendingPathComponent(tool).path, arguments)
        return try runBlocking(exe, args)
    }

    /// As root, gives `url` to the `postgres` user (initdb and the server need to own their directories).
    func handToServerUser(_ url: URL) throws {
        guard Self.runningAsRoot else { return }
        guard let pw = getpwnam("postgres") else {
            throw TestSupportError.peerFailed("running as root but there is no `postgres` user (make deps installs Debian's postgresql)")
        }
        guard chown(url.path, pw.pointee.pw_uid, pw.pointee.pw_gid) == 0 else {
            throw TestSupportError.peerFailed("chown postgres \(url.path): errno \(errno)")
        }
    }
}

/// Runs `body` with a fresh PostgreSQL cluster and removes it afterwards, whether `body` returns or throws.
public func withPostgres<T: Sendable>(_ body: (PostgresServer) async throws -> T) async throws -> T {
    let server = try await PostgresServer.start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// Runs a blocking closure on its own thread, never on the cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { cont in
        Thread.detachNewThread {
            do { cont.resume(returning: try work()) } catch { cont.resume(throwing: error) }
        }
    }
}

func offPool(_ work: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
        Thread.detachNewThread {
            work()
            cont.resume()
        }
    }
}

/// Runs a program to completion on the calling thread; stdout and stderr together.
func runBlocking(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
