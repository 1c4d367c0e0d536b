// The mapping from async-http-client / NIO errors to "never sent" (the remote CLI's "cannot reach") and "may
// have been sent" (its "outcome unknown"), against real loopback sockets on free ports.

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Signals

/// Closes every connection as soon as the request's first bytes arrive: the request was sent, no reply comes.
private final class CloseOnRead: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.close(promise: nil) }
}

/// A loopback server on a free port that accepts connections and closes them after the request arrives.
private func acceptAndClose() async throws -> any Channel {
    try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { $0.pipeline.addHandler(CloseOnRead()) }
        .bind(host: "127.0.0.1", port: 0).get()
}

/// A free loopback port that refuses connections: a TCP socket bound to it (so nobody else takes it) that never
/// listens; connecting to it gets ECONNREFUSED. Close the returned descriptor when done.
private func refusingPort() throws -> (port: Int, fd: Int32) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { close(fd); throw IOError(errnoCode: errno, reason: "bind") }
    return (Int(UInt16(bigEndian: addr.sin_port)), fd)
}

@Suite("HTTP failures: never sent vs maybe sent")
struct HTTPFailureTests {
    /// Something that fails with the client's error for `url`.
    private func failure(_ method: String, _ url: String) async throws -> HTTPFailure? {
        try await withHTTPClient(timeout: 5) { client in
            var r = HTTPClientRequest(url: url)
            r.method = .init(rawValue: method)
            if method == "POST" { r.body = .bytes(ByteBuffer(string: "{}")) }
            do {
                _ = try await client.execute(r, deadline: .now() + .seconds(20))
                Issue.record("\(url) answered")
                return nil
            } catch {
                return HTTPFailure(error)
            }
        }
    }

    @Test func aRefusedConnectionWasNeverSent() async throws {
        let (port, fd) = try refusingPort()
        defer { close(fd) }
        let f = try #require(try await failure("POST", "http://127.0.0.1:\(port)/v1/config"))
        #expect(f.neverSent, "\(f)")
        #expect(f.text.contains("refused"), "\(f.text)")
    }

    @Test func aConnectionClosedAfterTheRequestMayHaveBeenSent() async throws {
        let server = try await acceptAndClose()
        let port = try #require(server.localAddress?.port)
        let f = try #require(try await failure("POST", "http://127.0.0.1:\(port)/v1/config"))
        try await server.close()
        #expect(!f.neverSent, "\(f)")
    }

    @Test func anUnknownHostWasNeverSent() async throws {
        let f = try #require(try await failure("GET", "http://does-not-exist.invalid/"))
        #expect(f.neverSent, "\(f)")
    }

    @Test func theTransportNamesTheRequestAndTheCause() async throws {
        let (port, fd) = try refusingPort()
        defer { close(fd) }
        do {
            _ = try await withHTTPClient { client in
                try await HTTPClientTransport(client: client).send(HTTPRequest(url: URL(string: "http://127.0.0.1:\(port)/prices")!))
            }
            Issue.record("no error")
        } catch let e as SignalsError {
            #expect(e.kind == .io)
            #expect(e.message == "GET http://127.0.0.1:\(port)/prices failed: connection refused", "\(e)")
        }
    }
}
