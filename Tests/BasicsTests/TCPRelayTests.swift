// TestSupport.TCPRelay (the chaos soak's WAN link): bytes both ways; a cut ends live connections on both sides and
// refuses new ones until healed. Blocking sockets, so each test body runs on a thread of its own.

import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct TCPRelayTests {
    /// An echo server on a free loopback port (a thread per connection), until its listener is closed.
    static func echoServer() throws -> (port: Int, listener: Int32) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 8) == 0 else { throw TestSupportError.peerFailed("echo bind: errno \(errno)") }
        Thread.detachNewThread {
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }
                Thread.detachNewThread {
                    var b = [UInt8](repeating: 0, count: 4096)
                    while true {
                        let n = b.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                        if n <= 0 { break }
                        _ = b.withUnsafeBytes { send(c, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                    }
                    close(c)
                }
            }
        }
        return (Int(UInt16(bigEndian: addr.sin_port)), fd)
    }

    static func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        return ok ? fd : -1
    }

    /// Sends `text` and reads what comes back ("" on end of file).
    static func roundTrip(_ fd: Int32, _ text: String) -> String {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        var got: [UInt8] = []
        var b = [UInt8](repeating: 0, count: 4096)
        while got.count < bytes.count {
            let n = b.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += b[0..<n]
        }
        return String(decoding: got, as: UTF8.self)
    }

    static func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do { try body(); c.resume() } catch { c.resume(throwing: error) }
            }
        }
    }

    @Test func forwardsCutsAndHeals() async throws {
        try await Self.onThread {
            let echo = try Self.echoServer()
            defer { shutdown(echo.listener, Int32(SHUT_RDWR)); close(echo.listener) }
            let relay = try TCPRelay(targetPort: echo.port)
            defer { relay.stop() }
            let a = Self.connect(relay.port)
            #expect(a >= 0)
            #expect(Self.roundTrip(a, "hello") == "hello")
            #expect(relay.liveConnections == 1)

            relay.cutLink()
            // The client reads end of file at once (the relay shut both sides down).
            var b = [UInt8](repeating: 0, count: 16)
            #expect(b.withUnsafeMutableBytes { read(a, $0.baseAddress, $0.count) } == 0)
            close(a)
            // While cut, a new connection is accepted and closed at once.
            let refused = Self.connect(relay.port)
            #expect(Self.roundTrip(refused, "x") == "")
            close(refused)

            relay.heal()
            let c = Self.connect(relay.port)
            #expect(Self.roundTrip(c, "again") == "again")
            close(c)
            let stats = relay.statistics
            #expect(stats.forwarded == 2 && stats.refused == 1 && stats.severed == 1, "\(stats)")
        }
    }
}
