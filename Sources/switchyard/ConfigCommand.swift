// `switchyard config validate|diff|apply|history|rollback|show`.
// validate runs locally with the daemon's own validator; the rest talk to the daemon.

import API
import ArgumentParser
import Control
import Foundation
import HardwareProfiles
import Simulation
import Site

extension Switchyard {
    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Validate, diff, apply and roll back the site configuration.",
            subcommands: [Validate.self, Diff.self, Apply.self, History.self, Rollback.self, Show.self])

        /// The daemon's validator: the site parser, then the profiles and the loop's wiring.
        static func validateLocally(path: String, profilesDir: String?) throws -> (Site, String) {
            let yaml: String
            do { yaml = try String(contentsOfFile: path, encoding: .utf8) } catch {
                printError("\(path): error: cannot read: \(error.localizedDescription)")
                throw ExitCode(ExitCodes.validation)
            }
            do {
                let site = try SiteValidator.validate(yaml: yaml, file: path) { site in
                    let profiles = try loadProfiles(for: site, registry: .standard(profilesDir: profilesDir))
                    _ = try ControlLoop(site: site, profiles: profiles, buses: [:], signals: try SiteSignalSource(site: site, signals: SiteSignals()))
                }
                return (site, yaml)
            } catch {
                printError(SiteValidator.oneLine(error, file: path))
                throw ExitCode(ExitCodes.validation)
            }
        }

        struct Validate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Validate a site file locally (file:line errors; exit 65 if invalid).")
            @Argument(help: "The site file.") var file: String
            @Option(name: .customLong("profiles-dir"), help: "Extra directory of hardware profiles.") var profilesDir: String?
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                let (site, _) = try Config.validateLocally(path: file, profilesDir: profilesDir)
                struct Valid: Encodable { var valid = true; var site: String; var devices: Int }
                if json { printJSON(Valid(site: site.id, devices: site.devices.count)) } else {
                    print("\(file): valid — site \(site.id), \(site.devices.count) devices")
                }
            }
        }

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
}

func readFile(_ path: String) throws -> String {
    do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
        printError("\(path): error: cannot read: \(error.localizedDescription)")
        throw ExitCode(ExitCodes.validation)
    }
}
