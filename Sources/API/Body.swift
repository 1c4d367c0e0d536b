// Reading JSON request bodies: bounded size, and one clear 400 line on any error.

import Foundation
import Hummingbird

enum Body {
    static let maxBytes = 4 << 20

    static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: maxBytes) } catch {
            throw APIError(.contentTooLarge, "request body larger than \(maxBytes >> 20) MiB")
        }
        let data = Data(buffer: buffer)
        if data.isEmpty { throw APIError(.badRequest, "missing JSON body") }
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
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        let data = try e.encode(body)
        var h = headers
        h[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
