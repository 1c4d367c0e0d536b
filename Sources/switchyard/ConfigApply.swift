// `switchyard config apply`.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard.Config {
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate, store as a new version and apply at the next tick boundary.",
            discussion: "Uses the running version for If-Match (or --if-match N): if someone else applied first, exits 75 and changes nothing.")
        @OptionGroup var remote: RemoteOptions
        @Argument(help: "The site file.") var file: String
        @Option(help: "Why (kept in the history).") var comment: String
        @Flag(name: .customLong("dry-run"), help: "Validate and diff only.") var dryRun = false
        @Option(name: .customLong("if-match"), help: "Apply only if the running version is this one.") var ifMatch: Int?

        func validate() throws {
            if comment.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--comment must not be empty") }
        }

        func run() async throws {
            let yaml = try readFile(file)
            let c = try remote.client()
            var expected = ifMatch
            if expected == nil {
                let cur = try await c.call("GET", "/v1/config")
                expected = try c.decode(ConfigDTO.self, cur).version
            }
            let r = try await c.call("PUT", "/v1/config", body: ApplyConfigRequest(yaml: yaml, file: file, comment: comment, dryRun: dryRun),
                                     headers: ["If-Match": "\"\(expected!)\""])
            if remote.json { printJSON(r.body); return }
            let a = try c.decode(ApplyResultDTO.self, r)
            if a.dryRun { print("dry run: valid; \(a.changes.count) change(s) from v\(a.version); nothing stored") } else {
                print("applied v\(a.version) (sha256 \(a.sha256.prefix(12))…): \(a.changes.count) change(s)")
            }
            for ch in a.changes { print("  \(terminalSafe(ch.line))") }
        }
    }
}
