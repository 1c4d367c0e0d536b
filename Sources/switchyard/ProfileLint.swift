// `switchyard profile lint`.

import ArgumentParser
import Foundation
import HardwareProfiles

extension Switchyard.Profile {
    struct Lint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check profiles and print every error as file:line:column: error: sentence.",
            discussion: """
                Exits 0 when every file is valid, 1 when any has an error. SunSpec model files \
                (sunspec/model-<id>.yaml) are checked as models.
                """
        )

        @Argument(help: ArgumentHelp("Profile files to check.", valueName: "FILE"))
        var files: [String]

        @Flag(name: .shortAndLong, help: "Print nothing for valid files.")
        var quiet = false

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one profile file") }
        }

        func run() async throws {
            var errorCount = 0
            var badFiles = 0
            for file in files {
                let diagnostics: [Diagnostic]
                var summary = ""
                let url = URL(fileURLWithPath: file)
                if url.lastPathComponent.hasPrefix("model-"), url.deletingLastPathComponent().lastPathComponent == "sunspec" {
                    let (model, d) = SunSpecModelLibrary.loadModel(url: url)
                    diagnostics = d
                    if let model { summary = "SunSpec model \(model.id), \(model.points.count) points, L = \(model.length)" }
                } else {
                    let (profile, d) = ProfileLoader.load(path: file)
                    diagnostics = d
                    if let profile { summary = "\(profile.id), \(profile.kind.rawValue), \(profile.points.count) points" }
                }
                for d in diagnostics { print(d.description) }
                let errors = diagnostics.filter { $0.severity == .error }.count
                errorCount += errors
                if errors > 0 { badFiles += 1 } else if !quiet { print("ok: \(file) (\(summary))") }
            }
            if errorCount > 0 {
                print("\(errorCount) error\(errorCount == 1 ? "" : "s") in \(badFiles) of \(files.count) file\(files.count == 1 ? "" : "s")")
                throw ExitCode(1)
            }
        }
    }
}
