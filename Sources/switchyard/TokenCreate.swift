// `switchyard token create`.

import Basics
import API
import ArgumentParser
import Foundation
import Store

extension Switchyard.Token {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; prints the secret once.")
        @OptionGroup var where_: Where
        @Option(help: "viewer, operator or admin.") var role: String
        @Option(help: "A name for the holder (letters, digits, . _ -).") var name: String
        @Option(name: .customLong("expires-in"), help: ArgumentHelp("Expiry: 30d, 12h … (default: never).", valueName: "DURATION")) var expiresIn: String?

        func validate() throws {
            if Role(rawValue: role) == nil { throw ValidationError("--role must be viewer, operator or admin, not '\(role)'") }
            if let expiresIn, parseDurationArg(expiresIn) == nil { throw ValidationError("--expires-in '\(expiresIn)' is not a duration like 12h or 30d") }
            if name.isEmpty || name.count > 64 || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
                throw ValidationError("--name must be 1…64 of A-Z a-z 0-9 . _ -")
            }
        }

        func run() async throws {
            let expires = expiresIn.flatMap(parseDurationArg)
            if where_.stateDir != nil {
                let store = try where_.openStore()
                let t = try Tokens.create(in: store, name: name, role: Role(rawValue: role)!, createdBy: Switchyard.Token.localActor, creatorRole: "local",
                                          at: Date().timeIntervalSince1970, validForS: expires, action: "token create (offline)", status: 0)
                output(id: t.record.id, secret: t.secret, expiresAt: t.record.expiresAt)
                return
            }
            let c = try where_.remote.client()
            let r = try await c.call("POST", "/v1/tokens", body: CreateTokenRequest(name: name, role: role, expiresInS: expires))
            let t = try c.decode(TokenDTO.self, r)
            if where_.remote.json { printJSON(r.body); return }
            output(id: t.id, secret: t.token ?? "", expiresAt: t.expiresAt)
        }

        func output(id: String, secret: String, expiresAt: Double?) {
            if where_.remote.json {
                printJSON(["id": id, "role": role, "name": name, "token": secret])
                return
            }
            print(secret)
            printError("token \(id) (\(role), \(name))\(expiresAt.map { " expires \(isoTime($0))" } ?? ""): shown once, store it now")
        }
    }
}
