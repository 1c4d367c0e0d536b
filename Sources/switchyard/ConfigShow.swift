// `switchyard config show`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the running (or a stored) site file.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "A version (default: the running one).") var version: Int?

        func run() async throws {
            let c = try remote.client()
            let r = try await c.call("GET", version.map { "/v1/config/versions/\($0)" } ?? "/v1/config")
            if remote.json { printJSON(r.body); return }
            print(try c.decode(ConfigDTO.self, r).yaml ?? "", terminator: "")
        }
    }
}
