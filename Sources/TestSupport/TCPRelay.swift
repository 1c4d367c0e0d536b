// Test support: a TCP relay on a free loopback port to a target port (mosquitto, PostgreSQL), which a test can cut
// (every live connection closed on both sides, and new ones accepted and closed at once, as a partitioned WAN link
// whose routers answer with a reset would) and heal. The chaos soak puts one between each site's edge node and the
// broker, and between the hub and the broker and PostgreSQL (docs/fleet.md, "Chaos soak").
//
// Plain blocking sockets on threads of their own, never the cooperative pool: one thread accepts, and each
// connection is two threads, each copying one direction (read, then write all of it). Cutting shuts both sockets
// down, which ends both threads' blocking calls; the last of the two closes the descriptors, so a descriptor is never
// closed while another thread may still use it.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

public final class TCPRelay: @unchecked Sendable {
    /// Where clients connect (127.0.0.1).
    public let port: Int
    /// Where the relay connects for each client (127.0.0.1).
    public let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var isCut = false
    private var stopped = false
    /// Live connections: (client, target) descriptors.
    private var pairs: [ObjectIdentifier: Pair] = [:]
    private var acceptorDone = false
    private let acceptorExited = NSCondition()
    /// Connections forwarded, and connections refused because the relay was cut (or the target refused).
    private var counts = (forwarded: 0, refused: 0, severed: 0)

    final class Pair: @unchecked Sendable {
        let client: Int32
        let target: Int32
        /// Copy threads still running (guarded by the relay's lock); the last one closes both descriptors.
        var running = 2
        init(client: Int32, target: Int32) {
            self.client = client
            self.target = target
        }
    }

    /// Listens on a free loopback port and starts accepting.
    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError.peerFailed("relay socket: \(errnoText(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw TestSupportError.peerFailed("relay bind/listen 127.0.0.1:0: \(errnoText(e))")
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// (forwarded, refused while cut or by the target, severed by a cut) so far.
    public var statistics: (forwarded: Int, refused: Int, severed: Int) { lock.withLock { counts } }

    /// Connections being forwarded now.
    public var liveConnections: Int { lock.withLock { pairs.count } }

    public var cut: Bool { lock.withLock { isCut } }

    /// The link goes down: every live connection is shut down on both sides (each peer reads end of file at once),
    /// and until `heal()` new connections are accepted and closed at once.
    public func cutLink() {
        let live = lock.withLock { () -> [Pair] in
            isCut = true
            return Array(pairs.values)
        }
        sever(live)
    }

    /// Every live connection is shut down on both sides, and new ones are forwarded as before (a peer restarting).
    public func severConnections() {
        sever(lock.withLock { Array(pairs.values) })
    }

    /// The link is back: new connections are forwarded again (the peers reconnect by themselves).
    public func heal() {
        lock.withLock { isCut = false }
    }

    /// Stops accepting, severs every connection and waits for the accepting thread to end. Safe to call twice.
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true; isCut = true }
            return !stopped
        }
        guard first else { return }
        sever(lock.withLock { Array(pairs.values) })
        // Ends the blocking accept (Linux: EINVAL on a listening socket shut down).
        shutdown(listener, Int32(SHUT_RDWR))
        acceptorExited.lock()
        while !acceptorDone { acceptorExited.wait() }
        acceptorExited.unlock()
        close(listener)
    }

    deinit { stop() }

    private func sever(_ live: [Pair]) {
        lock.withLock { counts.severed += live.count }
        // shutdown, not close: the copy threads may be inside read or send on these descriptors.
        for p in live {
            shutdown(p.client, Int32(SHUT_RDWR))
            shutdown(p.target, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop() {
        defer {
            acceptorExited.lock()
            acceptorDone = true
            acceptorExited.signal()
            acceptorExited.unlock()
        }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let (refuse, done) = lock.withLock { (isCut, stopped) }
            if done { close(client); return }
            guard !refuse, let target = Self.connectLoopback(port: targetPort) else {
                lock.withLock { counts.refused += 1 }
                close(client)
                continue
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(target, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let pair = Pair(client: client, target: target)
            // Cut between the check above and here: sever it at once.
            let cutMeanwhile = lock.withLock { () -> Bool in
                pairs[ObjectIdentifier(pair)] = pair
                counts.forwarded += 1
                return isCut
            }
            if cutMeanwhile { sever([pair]) }
            Thread.detachNewThread { [self] in copy(pair, from: client, to: target) }
            Thread.detachNewThread { [self] in copy(pair, from: target, to: client) }
        }
    }

    /// One direction of a connection until either side ends; then both sides are shut down (a half-closed relay
    /// would hide the loss from the other peer), and the second thread to finish closes both descriptors.
    private func copy(_ pair: Pair, from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        outer: while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m < 0, errno == EINTR { continue }
                if m <= 0 { break outer }
                sent += m
            }
        }
        shutdown(pair.client, Int32(SHUT_RDWR))
        shutdown(pair.target, Int32(SHUT_RDWR))
        let last = lock.withLock { () -> Bool in
            pair.running -= 1
            if pair.running == 0 { pairs[ObjectIdentifier(pair)] = nil }
            return pair.running == 0
        }
        if last {
            close(pair.client)
            close(pair.target)
        }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    static func connectLoopback(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = loopback(port: port)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !ok { close(fd); return nil }
        return fd
    }
}
