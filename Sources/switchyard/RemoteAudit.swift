// `switchyard audit`.

import API
import ArgumentParser
import Foundation

extension Switchyard {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "audit", abstract: "Who changed what: the audit log of mutating calls.")
        @OptionGroup var remote: RemoteOptions
        @Option(help: "How many rows, newest first.") var limit: Int = 50

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/audit?limit=\(limit)")
            if remote.json { printJSON(r.body); return }
            let rows = try c.decode([AuditDTO].self, r)
            printTable(["AT", "ACTOR", "ROLE", "ACTION", "STATUS", "DETAIL"],
                       rows.map { [isoTime($0.at), $0.actor, $0.role, $0.action, "\($0.status)", $0.detail] })
        }
    }
}
