// HTTP behind a small protocol: production uses URLSession; tests may swap in
// anything (they use real loopback HTTP against tests' peers).

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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

/// `HTTPTransport` over Foundation's URLSession (FoundationNetworking on Linux).
public final class URLSessionTransport: HTTPTransport, @unchecked Sendable {
    // URLSession is thread-safe; it is created once and never mutated.
    private let session: URLSession

    /// `timeout` bounds each request (connect plus response).
    public init(timeout: TimeInterval = 10) {
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.timeoutIntervalForResource = timeout
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: config)
    }

    deinit { session.finishTasksAndInvalidate() }

    public func send(_ request: HTTPRequest) async throws(SignalsError) -> HTTPResponse {
        var r = URLRequest(url: request.url)
        r.httpMethod = request.method
        for (k, v) in request.headers { r.setValue(v, forHTTPHeaderField: k) }
        r.httpBody = request.body
        do {
            let (data, response) = try await session.data(for: r)
            guard let http = response as? HTTPURLResponse else {
                throw SignalsError(.http, "\(request.method) \(request.url.absoluteString): not an HTTP response", at: SignalSource(file: request.url.absoluteString))
            }
            var headers: [String: String] = [:]
            for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
            return HTTPResponse(status: http.statusCode, headers: headers, body: data)
        } catch let e as SignalsError {
            throw e
        } catch {
            throw SignalsError(.io, "\(request.method) \(request.url.absoluteString) failed: \(error.localizedDescription)", at: SignalSource(file: request.url.absoluteString))
        }
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
