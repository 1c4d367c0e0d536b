// `switchyard event create|list|cancel`: demand-response caps, remotely.

import API
import ArgumentParser
import Foundation

extension Switchyard {
    struct Event: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "event", abstract: "Create, list and cancel DR events (site import caps).",
                                                        subcommands: [Create.self, List.self, Cancel.self])
    }
}
