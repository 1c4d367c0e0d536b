import ArgumentParser
import Foundation
import HardwareProfiles

extension Switchyard {
    /// `switchyard profile lint FILE…`: validate hardware profiles.
    struct Profile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "profile",
            abstract: "Work with hardware profiles (register maps as YAML).",
            subcommands: [Lint.self]
        )
    }
}

extension Switchyard.Profile {
}
