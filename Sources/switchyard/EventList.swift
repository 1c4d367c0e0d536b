// `switchyard event list`.

import API
import ArgumentParser
import Foundation

extension Switchyard.Event {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List current and future events.")
        @OptionGroup var remote: RemoteOptions
        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/events")
            if remote.json { printJSON(r.body); return }
            let es = try c.decode([EventDTO].self, r)
            printTable(["ID", "CAP_KW", "FROM", "UNTIL", "ACTIVE", "REASON"],
                       es.map { [$0.id, kw($0.capKw), isoTime($0.from), isoTime($0.until), $0.active ? "yes" : "no", $0.reason] })
        }
    }
}
