// `switchyard token create|list|revoke`: offline on the box (--state-dir, straight
// into the database) or remotely through the admin API.

import API
import ArgumentParser
import Foundation
import Store

extension Switchyard {
    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "token", abstract: "Create, list and revoke API tokens.",
                                                        subcommands: [Create.self, List.self, Revoke.self])

        struct Where: ParsableArguments {
            @Option(name: .customLong("state-dir"), help: ArgumentHelp("Work offline on this daemon state directory (on the box).", valueName: "DIR"))
            var stateDir: String?
            @OptionGroup var remote: RemoteOptions

            func openStore() throws -> Store {
                do { return try Store.open(directory: stateDir!) } catch {
                    printError("error: \(error)")
                    throw ExitCode(ExitCodes.unreachable)
                }
            }
        }

        static var localActor: String { "local:" + (ProcessInfo.processInfo.environment["USER"] ?? "root") }
    }
}
