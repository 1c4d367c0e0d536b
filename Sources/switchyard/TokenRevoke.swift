// `switchyard token revoke`.

import API
import ArgumentParser
import Foundation
import Store

extension Switchyard.Token {
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by id.")
        @OptionGroup var where_: Where
        @Argument(help: "Token id (tok_…).") var id: String

        func run() async throws {
            if where_.stateDir != nil {
                let now = Date().timeIntervalSince1970
                let ok = try where_.openStore().revokeToken(id: id, at: now, audit: AuditEntry(at: now, actor: Switchyard.Token.localActor, role: "local",
                                                                                               action: "token revoke (offline)", status: 0))
                guard ok else { printError("error: no active token '\(id)'"); throw ExitCode(ExitCodes.notFound) }
            } else {
                let c = try where_.remote.client()
                _ = try await c.call("DELETE", "/v1/tokens/\(pathSegment(id))")
            }
            struct Revoked: Encodable { var ok = true; var id: String }
            if where_.remote.json { printJSON(Revoked(id: id)) } else { print("token \(id) revoked") }
        }
    }
}
