// `switchyard config rollback`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-apply an earlier version (stored as a new version).")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "The version to restore.") var version: Int
        @Option(help: "Why.") var comment: String?

        func run() async throws {
            let c = try remote.client()
            let cur = try c.decode(ConfigDTO.self, try await c.call("GET", "/v1/config"))
            let r = try await c.call("POST", "/v1/config/rollback", body: RollbackRequest(version: version, comment: comment),
                                     headers: ["If-Match": "\"\(cur.version)\""])
            if remote.json { printJSON(r.body); return }
            let a = try c.decode(ApplyResultDTO.self, r)
            print("rolled back to v\(version) as v\(a.version): \(a.changes.count) change(s)")
        }
    }
}
