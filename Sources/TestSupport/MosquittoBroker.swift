// Test support: Debian's mosquitto on a free loopback port, with a throwaway config and
// directory. Used only by tests.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A loopback port that was free a moment ago (bound to port 0, then released).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError.peerFailed("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw TestSupportError.peerFailed("bind 127.0.0.1:0: errno \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A mosquitto broker started for one test: `mosquitto -c <tmp>/mosquitto.conf` listening on
/// 127.0.0.1:`port`, logging to `<tmp>/mosquitto.log`. `stop()` (or deinit) ends it and removes the directory.
public final class MosquittoBroker: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    /// The running mosquitto (a new one after `restart()`).
    public var process: Process { lock.withLock { current } }
    private var current: Process
    private let lock = NSLock()

    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("mosquitto.log"), encoding: .utf8)) ?? "" }

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.current = process
    }

    /// A TLS listener: the broker's certificate and key, and the CA its clients' certificates must chain to
    /// (`require_certificate`; the certificate's CN becomes the client's username).
    public struct TLSListener: Sendable {
        public var caFile: String
        public var certFile: String
        public var keyFile: String
        public init(caFile: String, certFile: String, keyFile: String) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    /// Password authentication and an ACL: `users` (name → password, hashed into a password file with Debian's
    /// `mosquitto_passwd`) and the ACL file's text (mosquitto's `user`/`topic`/`pattern` lines). Anonymous clients
    /// are refused.
    public struct Auth: Sendable {
        public var users: [String: String]
        public var acl: String
        public init(users: [String: String], acl: String) {
            self.users = users
            self.acl = acl
        }
    }

    /// Starts the broker and waits (off the cooperative pool) until it accepts TCP connections.
    /// `debugLog` adds mosquitto's debug lines (every PUBLISH in and out) to the log; `tls` makes the
    /// listener TLS-only with client certificates required; `auth` requires a user and password and applies an ACL.
    public static func start(port requested: Int? = nil, debugLog: Bool = false, tls: TLSListener? = nil, auth: Auth? = nil) async throws -> MosquittoBroker {
        try await withCheckedThrowingContinuation { cont in
            Thread.detachNewThread {
                do { cont.resume(returning: try startBlocking(port: requested, debugLog: debugLog, tls: tls, auth: auth)) } catch { cont.resume(throwing: error) }
            }
        }
    }

    static func startBlocking(port requested: Int?, debugLog: Bool, tls: TLSListener? = nil, auth: Auth? = nil) throws -> MosquittoBroker {
        let port = try requested ?? freeLoopbackPort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-mosquitto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let logPath = dir.appendingPathComponent("mosquitto.log").path
        var access = "allow_anonymous true"
        if let auth {
            let passwords = dir.appendingPathComponent("passwords").path
            for (i, (user, password)) in auth.users.sorted(by: { $0.key < $1.key }).enumerated() {
                let r = try runBlocking("/usr/bin/mosquitto_passwd", (i == 0 ? ["-c"] : []) + ["-b", passwords, user, password])
                guard r.status == 0 else { throw TestSupportError.peerFailed("mosquitto_passwd exited \(r.status): \(r.output)") }
            }
            let aclPath = dir.appendingPathComponent("acl").path
            try auth.acl.write(toFile: aclPath, atomically: true, encoding: .utf8)
            // mosquitto drops to its own user as root: it must read both.
            chmod(passwords, 0o644)
            chmod(aclPath, 0o644)
            access = "allow_anonymous false\npassword_file \(passwords)\nacl_file \(aclPath)"
        }
        let conf = """
        listener \(port) 127.0.0.1
        \(access)
        \(tls.map { "cafile \($0.caFile)\ncertfile \($0.certFile)\nkeyfile \($0.keyFile)\nrequire_certificate true\nuse_identity_as_username true" } ?? "")
        persistence false
        log_dest file \(logPath)
        log_type error
        log_type warning
        log_type notice
        log_type information
        \(debugLog ? "log_type debug" : "")
        log_timestamp_format %H:%M:%S

        """
        let confURL = dir.appendingPathComponent("mosquitto.conf")
        try conf.write(to: confURL, atomically: true, encoding: .utf8)
        // mosquitto started as root drops to the `mosquitto` user: let it write its log here.
        chmod(dir.path, 0o777)
        let broker = MosquittoBroker(port: port, directory: dir, process: try launch(directory: dir))
        do {
            try broker.waitUntilListening()
        } catch {
            broker.stop()
            throw error
        }
        return broker
    }

    static func launch(directory: URL) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        p.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Readiness: a TCP connect succeeds (bounded: 10 s).
    func waitUntilListening() throws {
        let p = process
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !p.isRunning { throw TestSupportError.peerFailed("mosquitto exited \(p.terminationStatus): \(log)") }
            if Self.canConnect(port: port) { return }
            usleep(20_000)
        }
        throw TestSupportError.peerFailed("mosquitto did not listen on 127.0.0.1:\(port) within 10 s: \(log)")
    }

    /// A broker restart: stops mosquitto (SIGTERM, as a service restart does; `persistence false`, so every session and
    /// retained message is gone) and starts it again on the same port and configuration, waiting (off the cooperative
    /// pool) until it accepts connections.
    public func restart() async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    self.terminate()
                    let p = try Self.launch(directory: self.directory)
                    self.lock.withLock { self.current = p }
                    try self.waitUntilListening()
                    cont.resume()
                } catch { cont.resume(throwing: error) }
            }
        }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Stops the broker (SIGTERM, then SIGKILL after 3 s) and removes its directory.
    public func stop() {
        terminate()
        try? FileManager.default.removeItem(at: directory)
    }

    private func terminate() {
        let process = self.process
        if process.isRunning {
            let pid = process.processIdentifier
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
