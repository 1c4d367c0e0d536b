// What the site API and the fleet hub's API share that needs neither the control loop nor a store: the error
// shape ({"error": {"message": …, "status": …}}), the response encoder, the parse of the Authorization header and
// the limiter of failed authentications.

import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

extension JSONEncoder {
    /// The APIs' response encoder: snake_case keys, sorted, so responses are stable.
    public static var apiResponse: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

/// The parse of an `Authorization: Bearer <token>` header.
public enum BearerToken {
    /// The longest token accepted (a longer one is malformed, not looked up).
    public static let maxLength = 256
    /// The message for a header that is present but not `Bearer <token>`.
    public static let malformedMessage = "malformed Authorization header: expected 'Bearer <token>'"

    public enum ParseError: Error, Equatable {
        /// No Authorization header.
        case missing
        /// A header that is not `Bearer <token>` (scheme case-insensitive, token 1…256 characters).
        case malformed
    }

    /// The token in `header` (the Authorization header's value, nil when absent).
    public static func parse(_ header: String?) -> Result<String, ParseError> {
        guard let header else { return .failure(.missing) }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty, parts[1].count <= maxLength else {
            return .failure(.malformed)
        }
        return .success(String(parts[1]))
    }
}

/// Limits failed authentications per client address: after `maxFailures` within
/// `windowS`, the client gets 429 until the oldest failure leaves the window.
public final class FailedAuthLimiter: Sendable {
    public let maxFailures: Int
    public let windowS: Double
    let failures = Mutex<[String: [Double]]>([:])

    public init(maxFailures: Int = 10, windowS: Double = 300) {
        self.maxFailures = maxFailures
        self.windowS = windowS
    }

    /// Seconds until `client` may try again, or nil if it may try now.
    public func retryAfter(_ client: String, now: Double) -> Double? {
        failures.withLock { f in
            let recent = (f[client] ?? []).filter { now - $0 < windowS }
            f[client] = recent.isEmpty ? nil : recent
            guard recent.count >= maxFailures, let oldest = recent.first else { return nil }
            return max(1, oldest + windowS - now)
        }
    }

    public func recordFailure(_ client: String, now: Double) {
        failures.withLock { f in
            var recent = (f[client] ?? []).filter { now - $0 < windowS }
            recent.append(now)
            if recent.count > maxFailures { recent.removeFirst(recent.count - maxFailures) }
            f[client] = recent
            // Bound memory under a spray of addresses: forget the quietest clients.
            if f.count > 10_000 { f = f.filter { now - ($0.value.last ?? 0) < windowS } }
        }
    }
}

/// An error with a status and one clear line, rendered as {"error": {"message": …}}.
public struct APIError: HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public var description: String { message }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(ErrorBody(error: .init(message: message, status: Int(status.code))))
        var h = headers
        h[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

struct ErrorBody: Encodable {
    struct E: Encodable { var message: String; var status: Int }
    var error: E
}
