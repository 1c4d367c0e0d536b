// `switchyard config diff`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the semantic difference between a file and the running config.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "The site file.") var file: String

        func run() async throws {
            let yaml = try readFile(file)
            let c = try remote.client()
            let r = try await c.call("POST", "/v1/config/diff", body: ConfigFileRequest(yaml: yaml, file: file))
            if remote.json { printJSON(r.body); return }
            let d = try c.decode(DiffResultDTO.self, r)
            if d.changes.isEmpty { print("no changes from running v\(d.runningVersion)") } else {
                print("against running v\(d.runningVersion):")
                for ch in d.changes { print("  \(terminalSafe(ch.line))") }
            }
        }
    }
}
