// Bearer-token authentication with roles, rate limiting of failed attempts,
// and the audit trail of mutating calls.

import Basics
@_exported import HTTPBasics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Store
import Synchronization

/// Verifies `Authorization: Bearer <token>` against the token repository and
/// sets `context.identity`. Missing, unknown, revoked or expired → 401; too many
/// failures from one address → 429.
public struct BearerAuthMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let tokens: any TokenRepository
    let limiter: FailedAuthLimiter
    let clock: @Sendable () -> Double
    let logger: Logger

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        let now = clock()
        let client = context.clientKey
        if let wait = limiter.retryAfter(client, now: now) {
            throw APIError(.tooManyRequests, "too many failed authentications; retry in \(Int(wait.rounded(.up))) s",
                           headers: [.retryAfter: "\(Int(wait.rounded(.up)))"])
        }
        func reject(_ why: String) -> APIError {
            limiter.recordFailure(client, now: now)
            logger.notice("authentication failed", metadata: ["client": "\(client)", "reason": "\(why)",
                                                              "http.path": "\(request.uri.path)"])
            return APIError(.unauthorized, why, headers: [.wwwAuthenticate: "Bearer realm=\"switchyard\""])
        }
        let secret: String
        switch BearerToken.parse(request.headers[.authorization]) {
        case .success(let s): secret = s
        case .failure(.missing): throw reject("missing bearer token")
        case .failure(.malformed): throw reject(BearerToken.malformedMessage)
        }
        let hash = Tokens.hash(secret)
        let record: TokenRecord?
        // GRDB's async read: a slow disk holds this request, not a cooperative thread every other task needs.
        do { record = try await tokens.tokenAsync(hash: hash) } catch {
            throw APIError(.internalServerError, "token store unavailable: \(error)")
        }
        guard let record, constantTimeEquals(record.secretHash, hash) else { throw reject("unknown token") }
        if record.revokedAt != nil { throw reject("token \(record.id) is revoked") }
        if let exp = record.expiresAt, now >= exp { throw reject("token \(record.id) has expired") }
        var context = context
        context.identity = Identity(tokenID: record.id, name: record.name, role: record.role)
        return try await next(request, context)
    }
}

/// 403 unless the caller's role is at least `minimum`.
public struct RequireRole: RouterMiddleware {
    public typealias Context = APIRequestContext
    let minimum: Role

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let id = context.identity else { throw APIError(.unauthorized, "not authenticated") }
        guard id.role >= minimum else {
            throw APIError(.forbidden, "role '\(id.role.rawValue)' may not do this; needs '\(minimum.rawValue)'")
        }
        return try await next(request, context)
    }
}

/// Writes one audit row per mutating call: who, what, when, and the resulting status.
/// (Config applies and token creation write their row inside the same transaction as
/// the change, and mark the request so it is not written twice.)
public struct AuditMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let audit: any AuditRepository
    let clock: @Sendable () -> Double
    let logger: Logger

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method != .get, request.method != .head else { return try await next(request, context) }
        let action = "\(request.method.rawValue) \(request.uri.path)"
        let who = context.identity
        func write(_ status: Int, _ detail: String) async {
            do {
                try await audit.auditAsync(AuditEntry(at: clock(), actor: who?.actor ?? "anonymous", role: who?.role.rawValue ?? "",
                                           action: action, target: request.uri.path, status: status, detail: detail))
            } catch {
                logger.error("audit row not written", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            }
        }
        do {
            let response = try await next(request, context)
            if response.headers[AuditMiddleware.auditedHeader] == nil { await write(Int(response.status.code), "") }
            var r = response
            r.headers[AuditMiddleware.auditedHeader] = nil
            return r
        } catch let e as APIError {
            await write(Int(e.status.code), e.message)
            throw e
        } catch let e as HTTPError {
            await write(Int(e.status.code), e.body ?? "")
            throw e
        } catch {
            await write(500, "\(error)")
            throw error
        }
    }

    /// Set by a handler that already wrote its audit row transactionally.
    static let auditedHeader = HTTPField.Name("X-Switchyard-Audited")!
}
