// `switchyard token list`.

import API
import ArgumentParser
import Foundation
import Store

extension Switchyard.Token {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var where_: Where

        func run() async throws {
            var rows: [(id: String, name: String, role: String, created: Double, expires: Double?, revoked: Double?)] = []
            if where_.stateDir != nil {
                let ts = try where_.openStore().tokens()
                if where_.remote.json {
                    let e = JSONEncoder(); e.keyEncodingStrategy = .convertToSnakeCase; e.outputFormatting = [.prettyPrinted, .sortedKeys]
                    let safe = ts.map { t in var t = t; t.secretHash = ""; return t }
                    print(String(decoding: try e.encode(safe), as: UTF8.self)); return
                }
                rows = ts.map { ($0.id, $0.name, $0.role.rawValue, $0.createdAt, $0.expiresAt, $0.revokedAt) }
            } else {
                let c = try where_.remote.client()
                let r = try await c.call("GET", "/v1/tokens")
                if where_.remote.json { printJSON(r.body); return }
                rows = try c.decode([TokenDTO].self, r).map { ($0.id, $0.name, $0.role, $0.createdAt, $0.expiresAt, $0.revokedAt) }
            }
            printTable(["ID", "NAME", "ROLE", "CREATED", "EXPIRES", "STATE"], rows.map {
                [$0.id, $0.name, $0.role, isoTime($0.created), $0.expires.map(isoTime) ?? "never",
                 $0.revoked != nil ? "revoked" : ($0.expires.map { $0 <= Date().timeIntervalSince1970 } == true ? "expired" : "active")]
            })
        }
    }
}
