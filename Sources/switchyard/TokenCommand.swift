// `switchyard token create|list|revoke`: offline on the box (--state-dir, straight
// into the database) or remotely through the admin API.

import API
import ArgumentParser
import Foundation
import Store

extension Switchyard {
    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "token", abstract: "Create, list and revoke API tokens.",
                                                        subcommands: [Create.self, List.self, Revoke.self])

        struct Where: ParsableArguments {
            @Option(name: .customLong("state-dir"), help: ArgumentHelp("Work offline on this daemon state directory (on the box).", valueName: "DIR"))
            var stateDir: String?
            @OptionGroup var remote: RemoteOptions

            func openStore() throws -> Store {
                do { return try Store.open(directory: stateDir!) } catch {
                    printError("error: \(error)")
                    throw ExitCode(ExitCodes.unreachable)
                }
            }
        }

        static var localActor: String { "local:" + (ProcessInfo.processInfo.environment["USER"] ?? "root") }

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
                    let t = try Tokens.create(in: store, name: name, role: Role(rawValue: role)!, createdBy: Token.localActor, creatorRole: "local",
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

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke a token by id.")
            @OptionGroup var where_: Where
            @Argument(help: "Token id (tok_…).") var id: String

            func run() async throws {
                if where_.stateDir != nil {
                    let now = Date().timeIntervalSince1970
                    let ok = try where_.openStore().revokeToken(id: id, at: now, audit: AuditEntry(at: now, actor: Token.localActor, role: "local",
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
}
