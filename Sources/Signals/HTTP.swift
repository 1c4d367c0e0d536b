// HTTP behind a small protocol: production uses async-http-client (one `HTTPClient`, owned and shut down by
// whoever opens it with `withHTTPClient`); tests may swap in anything (they use real loopback HTTP against
// tests' peers).

import AsyncHTTPClient
import Basics
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

public struct HTTPRequest: Sendable, Hashable {
    public var method: String
    public var url: URL
    public var headers: [String: String]
    public var body: Data?

    public init(method: String = "GET", url: URL, headers: [String: String] = [:], body: Data? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct HTTPResponse: Sendable, Hashable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Sends one request and returns the response (any status). Throws only when no response arrives.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws(SignalsError) -> HTTPResponse
}

/// Opens one `HTTPClient` for `body` and shuts it down when `body` returns or throws (structured: the client
/// never outlives the scope). `timeout` bounds connecting and each wait for data; connection attempts are not
/// retried inside the client, so a refused connection fails at once (the callers poll and retry themselves).
/// TLS: the client's defaults (certificates verified against the system's trust roots, host name checked).
public func withHTTPClient<T: Sendable>(timeout: TimeInterval = 10, isolation: isolated (any Actor)? = #isolation,
                                        _ body: (HTTPClient) async throws -> T) async throws -> T {
    var configuration = HTTPClient.Configuration()
    configuration.timeout = .init(connect: .nanoseconds(Int64(timeout * 1e9)), read: .nanoseconds(Int64(timeout * 1e9)))
    configuration.connectionPool.retryConnectionEstablishment = false
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    let result: Result<T, any Error>
    do { result = .success(try await body(client)) } catch { result = .failure(error) }
    try? await client.shutdown()
    return try result.get()
}

/// `HTTPTransport` over async-http-client. The client is borrowed: its owner shuts it down.
public struct HTTPClientTransport: HTTPTransport {
    public let client: HTTPClient
    /// Bounds each request as a whole (connect plus response).
    public let timeout: TimeInterval
    /// Largest body read; a longer one is an error.
    public let maxBodyBytes: Int

    public init(client: HTTPClient, timeout: TimeInterval = 10, maxBodyBytes: Int = 32 << 20) {
        self.client = client
        self.timeout = timeout
        self.maxBodyBytes = maxBodyBytes
    }

    public func send(_ request: HTTPRequest) async throws(SignalsError) -> HTTPResponse {
        var r = HTTPClientRequest(url: request.url.absoluteString)
        r.method = .init(rawValue: request.method)
        for (k, v) in request.headers { r.headers.replaceOrAdd(name: k, value: v) }
        if let body = request.body { r.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await client.execute(r, timeout: .nanoseconds(Int64(timeout * 1e9)))
            let body = try await response.body.collect(upTo: maxBodyBytes)
            var headers: [String: String] = [:]
            for (k, v) in response.headers {
                let key = k.lowercased()
                headers[key] = headers[key].map { $0 + ", " + v } ?? v
            }
            return HTTPResponse(status: Int(response.status.code), headers: headers, body: Data(body.readableBytesView))
        } catch {
            throw SignalsError(.io, "\(request.method) \(request.url.absoluteString) failed: \(HTTPFailure(error).text)",
                               at: SignalSource(file: request.url.absoluteString))
        }
    }
}

/// What an HTTP client error means for the caller: whether the request can have reached the server, and a short
/// text for messages. "Never sent" covers failures before a connection existed: refused, no route, name not
/// found, connect timeout, TLS handshake (certificate) failures, a malformed URL. Everything else (read
/// timeout, the connection closed before the reply, the deadline) may have happened after the server got it.
public struct HTTPFailure: Sendable, Hashable {
    public var neverSent: Bool
    public var text: String

    public init(_ error: any Error) {
        switch error {
        case let e as HTTPClientError:
            switch e {
            case .connectTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout:
                (neverSent, text) = (true, "connect timed out")
            case .getConnectionFromPoolTimeout:
                (neverSent, text) = (true, "no connection became available in time")
            case .invalidURL, .emptyHost, .emptyScheme, .missingSocketPath:
                (neverSent, text) = (true, "bad URL")
            case .readTimeout:
                (neverSent, text) = (false, "read timed out")
            case .remoteConnectionClosed:
                (neverSent, text) = (false, "the connection was closed before the reply")
            case .deadlineExceeded:
                (neverSent, text) = (false, "timed out")
            default:
                (neverSent, text) = (false, "\(e)")
            }
        case let e as NIOConnectionError:
            // Every address failed, or the name did not resolve: nothing was connected.
            if e.connectionErrors.isEmpty {
                (neverSent, text) = (true, "host \(e.host) not found")
            } else {
                (neverSent, text) = (true, e.connectionErrors.map { Self.describe($0.error) }.joined(separator: "; "))
            }
        case let e as IOError where [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL].contains(e.errnoCode):
            (neverSent, text) = (true, Self.describe(e))
        case let e as IOError where e.errnoCode == ECONNRESET || e.errnoCode == EPIPE:
            (neverSent, text) = (false, Self.describe(e))
        case ChannelError.connectTimeout(_):
            (neverSent, text) = (true, "connect timed out")
        case is SocketAddressError:
            (neverSent, text) = (true, "host not found")
        case let e as NIOSSLError:
            (neverSent, text) = (true, "TLS handshake failed: \(e)")
        case let e as BoringSSLError:
            (neverSent, text) = (true, "TLS handshake failed: \(e)")
        case let e as NIOSSLExtraError:
            (neverSent, text) = (true, "TLS handshake failed: \(e)")
        default:
            (neverSent, text) = (false, "\(error)")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? IOError {
            return e.errnoCode == ECONNREFUSED ? "connection refused" : errnoText(e.errnoCode)
        }
        if case ChannelError.connectTimeout(_) = error { return "connect timed out" }
        return "\(error)"
    }
}

extension HTTPResponse {
    /// Throws unless the status is 2xx, quoting a short piece of the body.
    func requireSuccess(_ request: HTTPRequest) throws(SignalsError) {
        guard (200..<300).contains(status) else {
            let snippet = text.prefix(200).replacingOccurrences(of: "\n", with: " ")
            throw SignalsError(status == 401 || status == 403 ? .auth : .http,
                               "\(request.method) \(request.url.path) answered HTTP \(status)\(snippet.isEmpty ? "" : ": \(snippet)")",
                               at: SignalSource(file: request.url.absoluteString))
        }
    }
}
