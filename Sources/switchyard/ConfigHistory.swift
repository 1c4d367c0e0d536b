// `switchyard config history`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List stored versions, newest first.")
        @OptionGroup var remote: RemoteOptions
        @Option(help: "How many.") var limit: Int = 20

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", "/v1/config/history?limit=\(limit)")
            if remote.json { printJSON(r.body); return }
            let vs = try c.decode([ConfigDTO].self, r)
            printTable(["VERSION", "AT", "AUTHOR", "SHA256", "COMMENT"],
                       vs.map { ["v\($0.version)", isoTime($0.createdAt), $0.author, String($0.sha256.prefix(12)), $0.comment] })
        }
    }
}
