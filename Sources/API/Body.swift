// Reading JSON request bodies: bounded size, and one clear 400 line on any error.

import Foundation
import Hummingbird

/// A request body with a closed set of keys (snake_case, as on the wire): any other key is
/// refused with 422 naming it, so a misspelt field never silently falls back to a default.
protocol StrictBody: Decodable {
    static var keys: [String] { get }
}

extension CreateEventRequest: StrictBody { static let keys = ["id", "cap_kw", "from", "until", "reason"] }
extension ModeRequest: StrictBody { static let keys = ["mode", "setpoint_kw", "for_s"] }
extension ConfigFileRequest: StrictBody { static let keys = ["yaml", "file"] }
extension ApplyConfigRequest: StrictBody { static let keys = ["yaml", "file", "comment", "dry_run"] }
extension RollbackRequest: StrictBody { static let keys = ["version", "comment"] }
extension CreateTokenRequest: StrictBody { static let keys = ["name", "role", "expires_in_s"] }

enum Body {
    static let maxBytes = 4 << 20

    static func decode<T: StrictBody>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: maxBytes) } catch {
            throw APIError(.contentTooLarge, "request body larger than \(maxBytes >> 20) MiB")
        }
        return try decode(type, from: Data(buffer: buffer))
    }

    static func decode<T: StrictBody>(_ type: T.Type, from data: Data) throws -> T {
        if data.isEmpty { throw APIError(.badRequest, "missing JSON body") }
        if let object = try? JSONSerialization.jsonObject(with: data) {
            guard let fields = object as? [String: Any] else { throw APIError(.badRequest, "invalid JSON body: expected an object") }
            if let unknown = fields.keys.sorted().first(where: { !T.keys.contains($0) }) {
                throw APIError(.unprocessableContent, "unknown key '\(unknown)' in the request body (allowed: \(T.keys.joined(separator: ", ")))")
            }
        }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do { return try d.decode(T.self, from: data) } catch let e as DecodingError {
            throw APIError(.badRequest, "invalid JSON body: \(describe(e))")
        } catch {
            throw APIError(.badRequest, "invalid JSON body")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let p = keys.map { k in k.intValue.map { "[\($0)]" } ?? snake(k.stringValue) }.joined(separator: ".")
            return p.isEmpty ? "body" : "'\(p)'"
        }
        switch e {
        case .keyNotFound(let k, let c): return "missing field '\(snake(k.stringValue))'" + (c.codingPath.isEmpty ? "" : " in \(path(c.codingPath))")
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)) should be \(typeName(t))"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)) should be \(typeName(t)), not null"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "cannot decode"
        }
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Double.Type, is Int.Type, is Float.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "an object or a list"
        }
    }

    static func snake(_ s: String) -> String {
        var out = ""
        for c in s { if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) } }
        return out
    }
}

/// A JSON response with a status and extra headers.
struct JSONResponse<T: Encodable & Sendable>: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    var headers: HTTPFields = [:]
    var body: T

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder.apiResponse.encode(body)
        var h = headers
        h[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
