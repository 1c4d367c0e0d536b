import Foundation
import Hummingbird
import HummingbirdTesting
import Store
import Testing
import TestSupport
@testable import API

@Suite("Fuzzed JSON bodies")
struct FuzzTests {
    static let seeds: [String] = [
        #"{"cap_kw":2000,"until":1784120400,"reason":"x"}"#, #"{"mode":"manual","setpoint_kw":300,"for_s":60}"#,
        #"{"yaml":"site: {}","comment":"c"}"#, #"{"version":1}"#, #"{"name":"n","role":"viewer"}"#, #"{"yaml":"a: 1"}"#,
    ]

    static func mutate(_ s: String, _ rng: inout SeededRandom) -> [UInt8] {
        var b = Array(s.utf8)
        switch rng.next() % 7 {
        case 0: return (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 1: if !b.isEmpty { b.removeSubrange(Int(rng.next() % UInt64(b.count))...) }
        case 2: for _ in 0..<3 where !b.isEmpty { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
        case 3: return Array(#"{"cap_kw":"lots","until":null,"reason":7,"mode":[],"yaml":{},"version":-1e308,"role":"god"}"#.utf8)
        case 4: return Array((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)
        case 5: return Array(#"{"cap_kw":1e400,"until":-1,"reason":"","setpoint_kw":-5,"for_s":1e12,"name":"../../etc","expires_in_s":0}"#.utf8)
        default: b.insert(contentsOf: Array(#","x":{"#.utf8), at: b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count)))
        }
        return b
    }

    /// No crash, and always a 4xx with a message, for every mutating route.
    @Test func mutatingRoutesAnswer4xxWithAMessage() async throws {
        let h = try Harness.make()
        let routes = buildRouter(h.deps).routes.filter { $0.method == .post || $0.method == .put }
        try await h.app().test(.router) { client in
          try await whileTicking(h) {
            var rng = SeededRandom(seed: 0x5eed)
            for route in routes {
                var hdr = bearer(h.tokens[.admin]); hdr[.ifMatch] = "1"
                for i in 0..<60 {
                    let body = Self.mutate(Self.seeds[i % Self.seeds.count], &rng)
                    let uri = AuthMatrixTests.path(route.path).replacingOccurrences(of: "nope", with: "asic-1")
                    let (status, msg) = try await client.execute(uri: uri, method: route.method, headers: hdr, body: ByteBuffer(bytes: body)) {
                        ($0.status, errorMessage($0.body))
                    }
                    if (200..<300).contains(status.code) { continue }  // a mutation can still be a valid request
                    #expect((400..<500).contains(status.code), "\(route) body \(String(decoding: body.prefix(80), as: UTF8.self)) → \(status)")
                    #expect(msg?.isEmpty == false, "\(route) → \(status) without a message")
                }
            }
          }
        }
    }
}
